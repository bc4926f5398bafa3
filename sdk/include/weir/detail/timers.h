// Timers of a keyed operator: (time, key, namespace), at most one per combination, deletable, and
// partitioned by key group. One queue for event time (fired by watermarks) and one for processing
// time (fired by the TaskManager's clock).
//
// Heap queue: the timers of each key group in a hash set (the truth, for deduplication, deletion
// and iteration by key group), plus one binary heap over all of them ordered by time. Deleting a
// timer leaves its heap entry behind as a tombstone, skipped when it surfaces; the heap is rebuilt
// when tombstones outnumber live timers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "weir/detail/keyed_backend.h"

namespace weir::detail {

template <class N>
class TimerQueue {
 public:
  virtual ~TimerQueue() = default;
  // For the backend's current key. Returns false when that timer already existed / did not.
  virtual bool add(std::int64_t time, const N& ns) = 0;
  virtual bool remove(std::int64_t time, const N& ns) = 0;
  // Time of the earliest timer, or kNoDeadline.
  virtual std::int64_t peekTime() = 0;
  // Fires timers with time <= limit in time order: makes each timer's key current, then calls
  // fire(time, ns). Timers added by `fire` with a time <= limit fire in the same call.
  virtual void fireUntil(std::int64_t limit,
                         const std::function<void(std::int64_t, const N&)>& fire) = 0;
  virtual std::size_t size() const = 0;

  // The timers of key group `kg` as self-delimiting bytes (heap queues; see snapshotTimers).
  virtual void snapshotGroup(int kg, std::string& out) {
    (void)kg;
    (void)out;
    throw std::logic_error("this timer queue cannot be snapshotted per key group");
  }
  // The timers as they are now, to be written per key group later (heap queues; see
  // frozen_state.h), while the queue goes on changing.
  virtual std::unique_ptr<FrozenState> freeze() {
    throw std::logic_error("this timer queue cannot be frozen for a snapshot");
  }
  // Adds the timers of key group `kg` in [p, end). The bytes are checked before any timer is
  // added; bad bytes throw SnapshotFormatError. Moves the backend's current key.
  virtual void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) {
    (void)kg;
    (void)p;
    (void)end;
    throw std::logic_error("this timer queue cannot be restored per key group");
  }
};

// Timer bytes of one key group: u64 count, then per timer i64 time, Serde key, Serde namespace.
// for_each(f) calls f(time, key, ns) for every timer.
template <class K, class N, class ForEach>
void snapshotTimers(ForEach&& for_each, std::string& out) {
  if constexpr (Serializable<K> && Serializable<N>) {
    std::uint64_t n = 0;
    for_each([&](std::int64_t, const K&, const N&) { ++n; });
    appendSerde(out, n);
    for_each([&](std::int64_t time, const K& key, const N& ns) {
      appendSerde(out, time);
      appendSerde(out, key);
      appendSerde(out, ns);
    });
  } else {
    (void)for_each;
    (void)out;
    throw std::logic_error(
        "timers cannot be snapshotted: the key or namespace type has no weir::Serde");
  }
}

template <class K, class N>
struct DecodedTimer {
  std::int64_t time;
  K key;
  N ns;
};

// Decodes timer bytes of key group `kg` (checking every key belongs to it).
template <class K, class N>
std::vector<DecodedTimer<K, N>> decodeTimers(int kg, int max_parallelism, const std::uint8_t* p,
                                             const std::uint8_t* end) {
  if constexpr (Serializable<K> && Serializable<N>) {
    std::vector<DecodedTimer<K, N>> timers;
    std::uint64_t n = 0;
    p = readSnapshot(p, end, n, "timer count");
    for (std::uint64_t i = 0; i < n; ++i) {
      DecodedTimer<K, N> t{0, K{}, N{}};
      p = readSnapshot(p, end, t.time, "timer time");
      p = readSnapshot(p, end, t.key, "timer key");
      p = readSnapshot(p, end, t.ns, "timer namespace");
      if (weir::keyGroupOf(t.key, max_parallelism) != kg) {
        throw SnapshotFormatError("a timer key in the snapshot does not belong to key group " +
                                  std::to_string(kg));
      }
      timers.push_back(std::move(t));
    }
    if (p != end) throw SnapshotFormatError("timer snapshot is corrupt: trailing bytes");
    return timers;
  } else {
    (void)kg;
    (void)max_parallelism;
    (void)p;
    (void)end;
    throw std::logic_error(
        "timers cannot be restored: the key or namespace type has no weir::Serde");
  }
}

// Adds decoded timers to `queue` through `backend` (whose current key is kept).
template <class Backend, class K, class N>
void addTimers(Backend& backend, TimerQueue<N>& queue, int kg,
               const std::vector<DecodedTimer<K, N>>& timers) {
  backend.beforeRestore();
  for (const DecodedTimer<K, N>& t : timers) {
    backend.setCurrentKey(t.key, kg);
    queue.add(t.time, t.ns);
  }
  backend.afterRestore();
}

template <class K, class N>
class HeapTimerQueue final : public TimerQueue<N> {
 public:
  explicit HeapTimerQueue(HeapKeyedBackend<K>& backend)
      : backend_(backend),
        groups_(static_cast<std::size_t>(std::max(backend.range().size(), 0))) {}

  bool add(std::int64_t time, const N& ns) override {
    const std::uint32_t id = backend_.materializeCurrentKey();
    if (id < recent_.size() && recent_[id].live && recent_[id].time == time &&
        recent_[id].ns == ns) {
      return false;
    }
    Timer t{time, id, ns};
    const bool inserted =
        groups_.write(static_cast<std::size_t>(backend_.groupIndex())).tryEmplace(t).second;
    remember(t);
    if (!inserted) return false;
    backend_.ref(id);
    heap_.push_back(t);
    std::push_heap(heap_.begin(), heap_.end(), Later{});
    ++live_;
    return true;
  }

  bool remove(std::int64_t time, const N& ns) override {
    const std::uint32_t id = backend_.currentKeyId();
    if (id == kNoKeyId) return false;
    forget(Timer{time, id, ns});
    const auto g = static_cast<std::size_t>(backend_.groupIndex());
    if (!groups_.write(g).erase(Timer{time, id, ns})) return false;
    --live_;
    backend_.unref(id);
    if (heap_.size() > 1024 && heap_.size() > 2 * live_) rebuild();
    return true;
  }

  std::int64_t peekTime() override {
    dropTombstones();
    return heap_.empty() ? kNoDeadline : heap_.front().time;
  }

  void fireUntil(std::int64_t limit,
                 const std::function<void(std::int64_t, const N&)>& fire) override {
    for (;;) {
      dropTombstones();
      if (heap_.empty() || heap_.front().time > limit) return;
      std::pop_heap(heap_.begin(), heap_.end(), Later{});
      const Timer t = heap_.back();
      heap_.pop_back();
      groups_.write(groupOf(t)).erase(t);
      forget(t);
      --live_;
      backend_.setCurrentKeyById(t.key_id);
      fire(t.time, t.ns);
      backend_.unref(t.key_id);  // after the callback: the key's state stays reachable in it
    }
  }

  std::size_t size() const override { return live_; }

  void snapshotGroup(int kg, std::string& out) override {
    if (!backend_.range().contains(kg)) {
      throw std::out_of_range("key group " + std::to_string(kg) +
                              " is outside this backend's range");
    }
    freeze()->writeGroup(static_cast<std::size_t>(kg - backend_.range().start), backend_, out);
  }
  // The timers as they are now, with keys named by ids (snapshotTimers' bytes once written).
  std::unique_ptr<FrozenState> freeze() override {
    if constexpr (Serializable<K> && Serializable<N>) {
      return std::make_unique<FrozenTimers>(groups_.freeze());
    } else {
      throw std::logic_error(
          "timers cannot be snapshotted: the key or namespace type has no weir::Serde");
    }
  }
  void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) override {
    if (!backend_.range().contains(kg)) {
      throw std::out_of_range("key group " + std::to_string(kg) +
                              " is outside this backend's range");
    }
    addTimers(backend_, *this, kg, decodeTimers<K, N>(kg, backend_.maxParallelism(), p, end));
  }

  // Timers of key group `kg`: f(time, key, ns).
  template <class F>
  void forEachInGroup(int kg, F&& f) const {
    for (const Timer& t : groups_.read(static_cast<std::size_t>(kg - backend_.range().start)))
      f(t.time, backend_.keyOf(t.key_id), t.ns);
  }

 private:
  struct Timer {
    std::int64_t time;
    std::uint32_t key_id;
    N ns;
    bool operator==(const Timer& o) const {
      return time == o.time && key_id == o.key_id && ns == o.ns;
    }
  };
  struct Hash {
    std::size_t operator()(const Timer& t) const {
      return hashCombine(hashCombine(std::hash<std::int64_t>{}(t.time), t.key_id), ns_hash(t.ns));
    }
    ValueHash<N> ns_hash;
  };
  using TimerSet = CowHashSet<Timer, Hash>;

  class FrozenTimers final : public FrozenState {
   public:
    explicit FrozenTimers(typename CowGroups<TimerSet>::Frozen groups)
        : groups_(std::move(groups)) {}
    void writeGroup(std::size_t g, const KeyWriter& keys, std::string& out) const override {
      if (!groups_[g]) throw std::logic_error("a frozen key group was written twice");
      appendSerde(out, static_cast<std::uint64_t>(groups_[g]->size()));
      for (const Timer& t : *groups_[g]) {
        appendSerde(out, t.time);
        keys.writeKey(t.key_id, out);
        appendSerde(out, t.ns);
      }
    }
    void release(std::size_t g) override { groups_[g].reset(); }

   private:
    typename CowGroups<TimerSet>::Frozen groups_;
  };

  std::size_t groupOf(const Timer& t) const {
    return static_cast<std::size_t>(backend_.keyGroupOf(t.key_id) - backend_.range().start);
  }
  // Orders the heap's front to the earliest time.
  struct Later {
    bool operator()(const Timer& a, const Timer& b) const { return a.time > b.time; }
  };

  bool isLive(const Timer& t) const {
    return groups_.read(groupOf(t)).find(t) != nullptr;
  }
  void dropTombstones() {
    while (!heap_.empty() && !isLive(heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), Later{});
      heap_.pop_back();
    }
  }
  void rebuild() {
    heap_.clear();
    for (std::size_t g = 0; g < groups_.size(); ++g)
      heap_.insert(heap_.end(), groups_.read(g).begin(), groups_.read(g).end());
    std::make_heap(heap_.begin(), heap_.end(), Later{});
  }

  // Each key's most recently added timer while it is pending: windows register the same timer
  // for every record of a key and window, and this skips the set probe.
  struct Recent {
    std::int64_t time = 0;
    N ns{};
    bool live = false;
  };
  void remember(const Timer& t) {
    if (t.key_id >= recent_.size()) {
      recent_.resize(std::max<std::size_t>(t.key_id + 1, recent_.size() * 2));
    }
    recent_[t.key_id] = Recent{t.time, t.ns, true};
  }
  void forget(const Timer& t) {
    if (t.key_id < recent_.size() && recent_[t.key_id].time == t.time &&
        recent_[t.key_id].ns == t.ns) {
      recent_[t.key_id].live = false;
    }
  }

  HeapKeyedBackend<K>& backend_;
  CowGroups<TimerSet> groups_;  // by key group
  std::vector<Recent> recent_;  // by key id
  std::vector<Timer> heap_;
  std::size_t live_ = 0;
};

}  // namespace weir::detail
