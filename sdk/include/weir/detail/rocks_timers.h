// Timers of keyed operators on the RocksDB backend (see timers.h for the TimerQueue contract).
//
// RocksTimerQueue keeps timers in a KvStore column, one empty-valued row per timer:
//   key = key group (u16 BE) ‖ time (u64 BE, sign bit flipped) ‖ Serde<K>(key) ‖ Serde<N>(ns)
// so each key group's timers are contiguous and in time order, and a timer is unique per (key,
// time, namespace). A small per-key-group cache of the earliest time, with a tournament tree over
// it, answers peekTime without touching the store; a key group whose earliest timer was removed
// is re-read lazily (one seek). Firing reads a key group's due timers in batches.
//
// HeapBytesTimerQueue keeps them on the heap instead (state.backend.rocksdb.timer-service.factory
// = heap): per key group, an ordered set of the same bytes without the key group.
//
// Both make the timer's key current through the RocksKeyedBackend before calling fire, and both
// are iterable by key group (forEachInGroup).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "weir/detail/rocks_state.h"
#include "weir/detail/timers.h"

namespace weir::detail {

// The minimum of one value per key group (index), updated in O(log n), read in O(1). Empty key
// groups hold kNoDeadline.
class KeyGroupMinTree {
 public:
  explicit KeyGroupMinTree(int n) {
    while (leaves_ < static_cast<std::size_t>(std::max(n, 1)))
      leaves_ *= 2;
    nodes_.assign(2 * leaves_, kNoDeadline);
  }
  void set(int index, std::int64_t v) {
    std::size_t p = leaves_ + static_cast<std::size_t>(index);
    nodes_[p] = v;
    for (p /= 2; p >= 1; p /= 2)
      nodes_[p] = std::min(nodes_[2 * p], nodes_[2 * p + 1]);
  }
  std::int64_t get(int index) const { return nodes_[leaves_ + static_cast<std::size_t>(index)]; }
  std::int64_t min() const { return nodes_[1]; }
  // The (leftmost) index holding min().
  int argmin() const {
    std::size_t p = 1;
    while (p < leaves_)
      p = nodes_[2 * p] <= nodes_[2 * p + 1] ? 2 * p : 2 * p + 1;
    return static_cast<int>(p - leaves_);
  }

 private:
  std::size_t leaves_ = 1;
  std::vector<std::int64_t> nodes_;
};

template <class K, class N>
class RocksTimerQueue final : public TimerQueue<N> {
 public:
  // `column_name` tells the event-time and processing-time queues apart.
  RocksTimerQueue(RocksKeyedBackend<K>& backend, const std::string& column_name)
      : backend_(backend),
        what_("timers '" + column_name + "'"),
        column_(backend.openColumn(column_name, what_)),
        groups_(std::max(backend.range().size(), 0)),
        tree_(groups_),
        state_(static_cast<std::size_t>(groups_), kEmpty) {
    row_.reserve(64);
  }

  bool add(std::int64_t time, const N& ns) override {
    buildRow(time, ns);
    if (exists()) return false;
    static const std::uint8_t kNothing = 0;  // timers carry no value
    backend_.check(backend_.store().put(column_, rocks::slice(row_), KvSlice(&kNothing, 0)), what_);
    ++size_;
    const int i = backend_.groupIndex();
    if (firing_ && i == firing_index_) batch_added_min_ = std::min(batch_added_min_, time);
    if (state_[i] == kEmpty) {
      state_[i] = kExact;
      tree_.set(i, time);
    } else if (time < tree_.get(i)) {
      tree_.set(i, time);  // exact stays exact; a lower bound stays one
    }
    return true;
  }

  bool remove(std::int64_t time, const N& ns) override {
    buildRow(time, ns);
    if (!exists()) return false;
    backend_.check(backend_.store().remove(column_, rocks::slice(row_)), what_);
    --size_;
    ++removals_;
    const int i = backend_.groupIndex();
    // The earliest timer of its key group went: find the next one when it is needed.
    if (state_[i] == kExact && time == tree_.get(i)) state_[i] = kStale;
    return true;
  }

  std::int64_t peekTime() override {
    // Called where nothing may throw (the task asks for its next deadline): on a store error,
    // answer with the lower bound; the firing that follows reports the error.
    try {
      for (;;) {
        const std::int64_t t = tree_.min();
        if (size_ == 0 || t == kNoDeadline) return kNoDeadline;
        const int i = tree_.argmin();
        if (state_[i] != kStale) return t;
        refresh(i);
      }
    } catch (...) {
      return tree_.min();
    }
  }

  void fireUntil(std::int64_t limit,
                 const std::function<void(std::int64_t, const N&)>& fire) override {
    int i = 0;
    std::int64_t first = 0;
    while (nextDue(limit, i, first)) {
      collectBatch(i, first, limit);
      const std::uint64_t removals = removals_;
      firing_ = true;
      firing_index_ = i;
      batch_added_min_ = kNoDeadline;
      try {
        for (std::size_t b = 0; b < batch_size_; ++b) {
          // A timer removed meanwhile may be in the batch, and one added may be due earlier: read
          // again.
          if (b > 0 && (removals_ != removals || tree_.min() < batch_times_[b])) break;
          fireOne(i, b, fire);
        }
      } catch (...) {
        firing_ = false;
        throw;
      }
      firing_ = false;
    }
  }

  std::size_t size() const override { return size_; }

  // Timers of key group `kg` in time order: f(time, key, ns).
  template <class F>
  void forEachInGroup(int kg, F&& f) {
    K key{};
    N ns{};
    backend_.forEachInGroup(
        column_, kg,
        [&](KvSlice k, KvSlice) {
          const std::int64_t time = decodeTimer(k, key, ns);
          f(time, static_cast<const K&>(key), static_cast<const N&>(ns));
        },
        what_);
  }
  int column() const { return column_; }

 private:
  enum : std::uint8_t { kEmpty, kExact, kStale };  // what the tree knows of a key group
  static constexpr std::size_t kBatch = 128;
  static constexpr std::size_t kPrefix = rocks::kKeyGroupBytes + rocks::kTimestampBytes;

  // row_ = kg ‖ time ‖ current key ‖ ns.
  void buildRow(std::int64_t time, const N& ns) {
    const std::string& key = backend_.currentKeyBytes();
    row_.assign(key, 0, rocks::kKeyGroupBytes);
    rocks::appendBigEndian64(row_, rocks::orderedTime(time));
    row_.append(key, rocks::kKeyGroupBytes, std::string::npos);
    rocks::appendSerde(row_, ns);
  }
  bool exists() {
    bool found = false;
    backend_.check(backend_.store().get(column_, rocks::slice(row_), scratch_, found), what_);
    return found;
  }
  std::int64_t decodeTimer(KvSlice k, K& key, N& ns) const {
    if (k.size < kPrefix) RocksBackendBase::corrupt(what_);
    const std::uint8_t* end = k.data + k.size;
    const std::uint8_t* p = Serde<K>::read(k.data + kPrefix, end, key);
    if (p == nullptr || Serde<N>::read(p, end, ns) != end) RocksBackendBase::corrupt(what_);
    return rocks::timeFromOrdered(rocks::readBigEndian64(k.data + rocks::kKeyGroupBytes));
  }

  // The key group (index) holding the earliest timer if it is due by `limit`, with its exact
  // time; re-reads key groups whose earliest time is unknown.
  bool nextDue(std::int64_t limit, int& index, std::int64_t& time) {
    if (size_ == 0) return false;
    for (;;) {
      const std::int64_t t = tree_.min();
      if (t > limit) return false;
      int i = tree_.argmin();
      if (t == kNoDeadline) {
        // kNoDeadline marks empty key groups too: look for a real timer at that time.
        i = -1;
        for (int j = 0; j < groups_; ++j) {
          if (state_[j] != kEmpty) {
            i = j;
            break;
          }
        }
        if (i < 0) return false;
      }
      if (state_[i] == kStale) {
        refresh(i);
        continue;
      }
      index = i;
      time = t;
      return true;
    }
  }

  // Reads the earliest timer of key group index i.
  void refresh(int i) {
    const int kg = backend_.range().start + i;
    begin_.clear();
    rocks::appendKeyGroup(begin_, kg);
    end_.clear();
    rocks::appendKeyGroup(end_, kg + 1);
    std::unique_ptr<KvIterator> it;
    backend_.check(backend_.store().scan(column_, rocks::slice(begin_), rocks::slice(end_), it),
                   what_);
    if (it->valid()) {
      const KvSlice k = it->key();
      if (k.size < kPrefix) RocksBackendBase::corrupt(what_);
      state_[i] = kExact;
      tree_.set(i, rocks::timeFromOrdered(rocks::readBigEndian64(k.data + 2)));
    } else {
      backend_.check(it->status(), what_);
      state_[i] = kEmpty;
      tree_.set(i, kNoDeadline);
    }
  }

  // Reads up to kBatch timers of key group index i due by `limit`, from its earliest (`first`).
  void collectBatch(int i, std::int64_t first, std::int64_t limit) {
    const int kg = backend_.range().start + i;
    begin_.clear();
    rocks::appendKeyGroup(begin_, kg);
    rocks::appendBigEndian64(begin_, rocks::orderedTime(first));
    end_.clear();
    rocks::appendKeyGroup(end_, kg + 1);
    std::unique_ptr<KvIterator> it;
    backend_.check(backend_.store().scan(column_, rocks::slice(begin_), rocks::slice(end_), it),
                   what_);
    batch_size_ = 0;
    for (; it->valid() && batch_size_ < kBatch; it->next()) {
      const KvSlice k = it->key();
      if (k.size < kPrefix) RocksBackendBase::corrupt(what_);
      const std::int64_t t = rocks::timeFromOrdered(rocks::readBigEndian64(k.data + 2));
      if (t > limit) break;
      if (batch_.size() == batch_size_) batch_.emplace_back();
      if (batch_times_.size() == batch_size_) batch_times_.emplace_back();
      batch_[batch_size_].assign(reinterpret_cast<const char*>(k.data), k.size);
      batch_times_[batch_size_] = t;
      ++batch_size_;
    }
    backend_.check(it->status(), what_);
    if (batch_size_ == 0) {
      // The tree said a timer was due here: it was not (cannot happen unless the store changed
      // behind our back). Re-read rather than loop.
      refresh(i);
    }
  }

  void fireOne(int i, std::size_t b, const std::function<void(std::int64_t, const N&)>& fire) {
    const std::string& k = batch_[b];
    backend_.check(backend_.store().remove(column_, rocks::slice(k)), what_);
    --size_;
    // The key group's earliest timer now: the next of the batch (or one added since), else
    // unknown until read again.
    if (b + 1 < batch_size_) {
      state_[i] = kExact;
      tree_.set(i, std::min(batch_times_[b + 1], batch_added_min_));
    } else {
      state_[i] = kStale;
      tree_.set(i, std::min(batch_times_[b], batch_added_min_));
    }
    const std::uint8_t* p = rocks::bytes(k);
    const std::uint8_t* end = p + k.size();
    const std::uint8_t* after_key =
        backend_.setCurrentKeyFromBytes(rocks::readKeyGroup(p), p + kPrefix, end);
    if (Serde<N>::read(after_key, end, ns_) != end) RocksBackendBase::corrupt(what_);
    fire(batch_times_[b], ns_);
  }

  RocksKeyedBackend<K>& backend_;
  std::string what_;
  int column_;
  int groups_;
  KeyGroupMinTree tree_;
  std::vector<std::uint8_t> state_;  // by key group index
  std::size_t size_ = 0;
  std::uint64_t removals_ = 0;
  // While a batch fires: its key group, and the earliest time added to it since.
  bool firing_ = false;
  int firing_index_ = -1;
  std::int64_t batch_added_min_ = kNoDeadline;
  std::vector<std::string> batch_;  // row keys, reused
  std::vector<std::int64_t> batch_times_;
  std::size_t batch_size_ = 0;
  std::string row_;
  std::string scratch_;
  std::string begin_;
  std::string end_;
  N ns_{};
};

// Timers on the heap for the RocksDB backend: keys as bytes, ordered per key group.
template <class K, class N>
class HeapBytesTimerQueue final : public TimerQueue<N> {
 public:
  explicit HeapBytesTimerQueue(RocksKeyedBackend<K>& backend)
      : backend_(backend),
        groups_(static_cast<std::size_t>(std::max(backend.range().size(), 0))),
        tree_(static_cast<int>(groups_.size())) {}

  bool add(std::int64_t time, const N& ns) override {
    buildEntry(time, ns);
    const int i = backend_.groupIndex();
    auto& g = groups_[static_cast<std::size_t>(i)];
    if (!g.insert(entry_).second) return false;
    ++size_;
    updateTree(i);
    return true;
  }

  bool remove(std::int64_t time, const N& ns) override {
    buildEntry(time, ns);
    const int i = backend_.groupIndex();
    if (groups_[static_cast<std::size_t>(i)].erase(entry_) == 0) return false;
    --size_;
    updateTree(i);
    return true;
  }

  std::int64_t peekTime() override { return size_ == 0 ? kNoDeadline : tree_.min(); }

  void fireUntil(std::int64_t limit,
                 const std::function<void(std::int64_t, const N&)>& fire) override {
    while (size_ > 0 && tree_.min() <= limit) {
      int i = tree_.argmin();
      if (tree_.min() == kNoDeadline) {
        // kNoDeadline marks empty key groups too: find one with a timer at that time.
        while (groups_[static_cast<std::size_t>(i)].empty())
          ++i;
      }
      auto& g = groups_[static_cast<std::size_t>(i)];
      auto first = g.begin();
      entry_.assign(*first);
      g.erase(first);
      --size_;
      updateTree(i);
      const std::uint8_t* p = rocks::bytes(entry_);
      const std::uint8_t* end = p + entry_.size();
      const std::int64_t time = rocks::timeFromOrdered(rocks::readBigEndian64(p));
      const std::uint8_t* after_key = backend_.setCurrentKeyFromBytes(
          backend_.range().start + i, p + rocks::kTimestampBytes, end);
      if (Serde<N>::read(after_key, end, ns_) != end) RocksBackendBase::corrupt("heap timers");
      fire(time, ns_);
    }
  }

  std::size_t size() const override { return size_; }

  // Timers of key group `kg` in time order: f(time, key, ns).
  template <class F>
  void forEachInGroup(int kg, F&& f) const {
    K key{};
    N ns{};
    for (const std::string& e : groups_[static_cast<std::size_t>(kg - backend_.range().start)]) {
      const std::uint8_t* p = rocks::bytes(e);
      const std::uint8_t* end = p + e.size();
      const std::uint8_t* after_key = Serde<K>::read(p + rocks::kTimestampBytes, end, key);
      if (after_key == nullptr || Serde<N>::read(after_key, end, ns) != end) {
        RocksBackendBase::corrupt("heap timers");
      }
      f(rocks::timeFromOrdered(rocks::readBigEndian64(p)), static_cast<const K&>(key),
        static_cast<const N&>(ns));
    }
  }

 private:
  // entry_ = time ‖ current key (without its key group) ‖ ns.
  void buildEntry(std::int64_t time, const N& ns) {
    entry_.clear();
    rocks::appendBigEndian64(entry_, rocks::orderedTime(time));
    entry_.append(backend_.currentKeyBytes(), rocks::kKeyGroupBytes, std::string::npos);
    rocks::appendSerde(entry_, ns);
  }
  void updateTree(int i) {
    const auto& g = groups_[static_cast<std::size_t>(i)];
    tree_.set(i, g.empty()
                     ? kNoDeadline
                     : rocks::timeFromOrdered(rocks::readBigEndian64(rocks::bytes(*g.begin()))));
  }

  RocksKeyedBackend<K>& backend_;
  std::vector<std::set<std::string>> groups_;  // by key group index
  KeyGroupMinTree tree_;
  std::size_t size_ = 0;
  std::string entry_;
  N ns_{};
};

}  // namespace weir::detail
