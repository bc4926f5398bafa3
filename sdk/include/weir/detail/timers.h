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
#include <unordered_set>
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
};

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
    const bool inserted = groups_[static_cast<std::size_t>(backend_.groupIndex())].insert(t).second;
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
    if (groups_[static_cast<std::size_t>(backend_.groupIndex())].erase(Timer{time, id, ns}) == 0) {
      return false;
    }
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
      groups_[static_cast<std::size_t>(backend_.keyGroupOf(t.key_id) - backend_.range().start)]
          .erase(t);
      forget(t);
      --live_;
      backend_.setCurrentKeyById(t.key_id);
      fire(t.time, t.ns);
      backend_.unref(t.key_id);  // after the callback: the key's state stays reachable in it
    }
  }

  std::size_t size() const override { return live_; }

  // Timers of key group `kg`: f(time, key, ns).
  template <class F>
  void forEachInGroup(int kg, F&& f) const {
    for (const Timer& t : groups_[static_cast<std::size_t>(kg - backend_.range().start)])
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
  // Orders the heap's front to the earliest time.
  struct Later {
    bool operator()(const Timer& a, const Timer& b) const { return a.time > b.time; }
  };

  bool isLive(const Timer& t) const {
    return groups_[static_cast<std::size_t>(backend_.keyGroupOf(t.key_id) - backend_.range().start)]
               .count(t) != 0;
  }
  void dropTombstones() {
    while (!heap_.empty() && !isLive(heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), Later{});
      heap_.pop_back();
    }
  }
  void rebuild() {
    heap_.clear();
    for (const auto& g : groups_)
      heap_.insert(heap_.end(), g.begin(), g.end());
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
  std::vector<std::unordered_set<Timer, Hash>> groups_;
  std::vector<Recent> recent_;  // by key id
  std::vector<Timer> heap_;
  std::size_t live_ = 0;
};

}  // namespace weir::detail
