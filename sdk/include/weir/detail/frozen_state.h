// Heap keyed state frozen at a checkpoint, so that it can be written out on another thread while
// the task goes on changing it.
//
// Every per-key-group table of the heap backend (keys, state cells, timers) lives in CowGroups:
// freezing hands the checkpoint the groups as they are (a shared pointer each, nothing is copied),
// and the first write to a group after that copies that group alone, if the checkpoint still
// holds it. Groups the task does not touch before the checkpoint is written are never copied.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::detail {

template <class Group>
class CowGroups {
 public:
  using Frozen = std::vector<std::shared_ptr<const Group>>;

  explicit CowGroups(std::size_t n) : shared_(n, 0) {
    groups_.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      groups_.push_back(std::make_shared<Group>());
  }

  std::size_t size() const { return groups_.size(); }
  const Group& read(std::size_t g) const { return *groups_[g]; }
  // Group g, to change: copied first when a frozen snapshot still holds it.
  Group& write(std::size_t g) {
    if (shared_[g] != 0) unshare(g);
    return *groups_[g];
  }
  // Every group as it is now. Later writes leave what this returns untouched.
  Frozen freeze() {
    std::fill(shared_.begin(), shared_.end(), std::uint8_t{1});
    return Frozen(groups_.begin(), groups_.end());
  }

 private:
  void unshare(std::size_t g) {
    shared_[g] = 0;
    if (groups_[g].use_count() > 1) {
      groups_[g] = std::make_shared<Group>(*groups_[g]);
    } else {
      // The snapshot that held it was released (on the writer's thread, with release order):
      // its reads happen before the writes that follow.
      std::atomic_thread_fence(std::memory_order_acquire);
    }
  }

  std::vector<std::shared_ptr<Group>> groups_;
  std::vector<std::uint8_t> shared_;  // by group: freeze() handed it out since the last write
};

// Appends the Serde bytes of the key with id `id`: the backend's keys now, or as they were frozen.
class KeyWriter {
 public:
  virtual ~KeyWriter() = default;
  virtual void writeKey(std::uint32_t id, std::string& out) const = 0;
};

// The backend's keys as they were frozen. release(g) lets go of key group g's keys once every
// entry of that group was written: the task then changes the group in place.
class FrozenKeys : public KeyWriter {
 public:
  virtual void release(std::size_t g) = 0;
};

// One state's (or timer queue's) entries, frozen. writeGroup appends group g's bytes (g counts from
// the start of the backend's key group range) in the state's snapshot format, naming keys through
// `keys`. It may run on any thread, and reads nothing the task changes. release(g) lets go of
// group g (it cannot be written afterwards).
class FrozenState {
 public:
  virtual ~FrozenState() = default;
  virtual void writeGroup(std::size_t g, const KeyWriter& keys, std::string& out) const = 0;
  virtual void release(std::size_t g) = 0;
};

}  // namespace weir::detail
