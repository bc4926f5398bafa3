// Heap keyed state frozen at a checkpoint, so that it can be written out on another thread while
// the task goes on changing it.
//
// Every per-key-group table of the heap backend (keys, state cells, timers) is a CowHashTable in
// CowGroups: freezing hands the checkpoint each group as it is (nothing is copied), and a change
// while the checkpoint may still read the group copies only what it touches: the entry, a chunk of
// slot pointers and the group's chunk directory. See cow_hash_table.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weir/detail/cow_hash_table.h"

namespace weir::detail {

template <class Group>
class CowGroups {
 public:
  // By group; a group is reset once written (released).
  using Frozen = std::vector<std::optional<typename Group::Snapshot>>;

  explicit CowGroups(std::size_t n) : size_(n), groups_(std::make_unique<Group[]>(n)) {}

  std::size_t size() const { return size_; }
  // Group g to read, or to change (each table copies on write itself).
  const Group& read(std::size_t g) const { return groups_[g]; }
  Group& write(std::size_t g) { return groups_[g]; }
  // Every group as it is now. Later writes leave what this returns untouched.
  Frozen freeze() {
    Frozen frozen;
    frozen.reserve(size_);
    for (std::size_t g = 0; g < size_; ++g)
      frozen.emplace_back(groups_[g].freeze());
    return frozen;
  }

 private:
  std::size_t size_;
  std::unique_ptr<Group[]> groups_;
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
