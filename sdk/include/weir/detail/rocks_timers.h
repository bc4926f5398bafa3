// Timers of keyed operators on the RocksDB backend (see timers.h for the TimerQueue contract).
//
// RocksTimerQueue keeps timers in a KvStore column, one empty-valued row per timer:
//   key = key group (u16 BE) ‖ time (u64 BE, sign bit flipped) ‖ Serde<K>(key) ‖ Serde<N>(ns)
// so each key group's timers are contiguous and in time order, and a timer is unique per (key,
// time, namespace). Each key group's earliest timers (up to 8..128, by the number of key groups)
// are cached in memory, with a tournament tree over the groups' earliest times: peekTime never
// reads the store, firing reads a group again only when its cache ran empty, and most duplicate
// and deletion checks are answered by the cache.
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
        groups_(static_cast<std::size_t>(std::max(backend.range().size(), 0))),
        tree_(static_cast<int>(groups_.size())),
        capacity_(std::clamp<std::size_t>(kCacheBudget / std::max<std::size_t>(groups_.size(), 1),
                                          kMinCache, kMaxCache)) {
    entry_.reserve(64);
    row_.reserve(64);
  }

  bool add(std::int64_t time, const N& ns) override {
    const int i = backend_.groupIndex();
    Group& g = groups_[static_cast<std::size_t>(i)];
    buildEntry(time, ns);
    if (g.cache.count(entry_) != 0) return false;
    const bool beyond_cache = !g.complete && (g.cache.empty() || entry_ > *g.cache.rbegin());
    if (beyond_cache && exists(i)) return false;
    backend_.check(backend_.store().put(column_, rowKey(i), KvSlice(&kNothing, 0)), what_);
    ++size_;
    if (!beyond_cache) {
      // The cache holds the group's earliest timers: the new one belongs there.
      g.cache.insert(entry_);
      if (g.cache.size() > capacity_) {
        g.cache.erase(std::prev(g.cache.end()));
        g.complete = false;
      }
      updateTree(i);
    }
    return true;
  }

  bool remove(std::int64_t time, const N& ns) override {
    const int i = backend_.groupIndex();
    Group& g = groups_[static_cast<std::size_t>(i)];
    buildEntry(time, ns);
    auto it = g.cache.find(entry_);
    if (it == g.cache.end()) {
      const bool beyond_cache = !g.complete && (g.cache.empty() || entry_ > *g.cache.rbegin());
      if (!beyond_cache || !exists(i)) return false;
    }
    backend_.check(backend_.store().remove(column_, rowKey(i)), what_);
    --size_;
    if (it != g.cache.end()) {
      g.cache.erase(it);
      settle(i);
    }
    return true;
  }

  // Never reads the store (so never fails): every key group's earliest timer is cached.
  std::int64_t peekTime() override { return size_ == 0 ? kNoDeadline : tree_.min(); }

  void fireUntil(std::int64_t limit,
                 const std::function<void(std::int64_t, const N&)>& fire) override {
    while (size_ > 0 && tree_.min() <= limit) {
      int i = tree_.argmin();
      if (tree_.min() == kNoDeadline) {
        // kNoDeadline marks empty key groups too: find one with a timer at that time.
        while (groups_[static_cast<std::size_t>(i)].cache.empty())
          ++i;
      }
      Group& g = groups_[static_cast<std::size_t>(i)];
      firing_.assign(*g.cache.begin());
      backend_.check(backend_.store().remove(column_, rowKey(i, firing_)), what_);
      --size_;
      g.cache.erase(g.cache.begin());
      settle(i);
      const std::uint8_t* p = rocks::bytes(firing_);
      const std::uint8_t* end = p + firing_.size();
      const std::uint8_t* after_key = backend_.setCurrentKeyFromBytes(
          backend_.range().start + i, p + rocks::kTimestampBytes, end);
      if (Serde<N>::read(after_key, end, ns_) != end) RocksBackendBase::corrupt(what_);
      fire(rocks::timeFromOrdered(rocks::readBigEndian64(p)), ns_);
    }
  }

  std::size_t size() const override { return size_; }

  // Timers of key group `kg` in time order, read from the store: f(time, key, ns).
  template <class F>
  void forEachInGroup(int kg, F&& f) {
    K key{};
    N ns{};
    backend_.forEachInGroup(
        column_, kg,
        [&](KvSlice k, KvSlice) {
          if (k.size < kPrefix) RocksBackendBase::corrupt(what_);
          const std::uint8_t* end = k.data + k.size;
          const std::uint8_t* p = Serde<K>::read(k.data + kPrefix, end, key);
          if (p == nullptr || Serde<N>::read(p, end, ns) != end) RocksBackendBase::corrupt(what_);
          f(rocks::timeFromOrdered(rocks::readBigEndian64(k.data + rocks::kKeyGroupBytes)),
            static_cast<const K&>(key), static_cast<const N&>(ns));
        },
        what_);
  }
  int column() const { return column_; }
  // Timers of key group index `i` held in memory (tests).
  std::size_t cachedInGroup(int i) const {
    return groups_[static_cast<std::size_t>(i)].cache.size();
  }

 private:
  // Per key group: its earliest timers as [time ‖ key ‖ ns] (byte order is time order), and
  // whether they are all of its timers. A new store's groups are empty and complete.
  struct Group {
    std::set<std::string> cache;
    bool complete = true;
  };
  static constexpr std::size_t kPrefix = rocks::kKeyGroupBytes + rocks::kTimestampBytes;
  // Cached timers per queue, spread over its key groups (each holding kMinCache to kMaxCache).
  static constexpr std::size_t kCacheBudget = 64 * 1024;
  static constexpr std::size_t kMinCache = 8;
  static constexpr std::size_t kMaxCache = 128;
  static constexpr std::uint8_t kNothing = 0;  // timers carry no value

  // entry_ = time ‖ current key (without its key group) ‖ ns.
  void buildEntry(std::int64_t time, const N& ns) {
    entry_.clear();
    rocks::appendBigEndian64(entry_, rocks::orderedTime(time));
    entry_.append(backend_.currentKeyBytes(), rocks::kKeyGroupBytes, std::string::npos);
    rocks::appendSerde(entry_, ns);
  }
  // The store key of `entry` (default: entry_) in key group index i: kg ‖ entry.
  KvSlice rowKey(int i) { return rowKey(i, entry_); }
  KvSlice rowKey(int i, const std::string& entry) {
    row_.clear();
    rocks::appendKeyGroup(row_, backend_.range().start + i);
    row_.append(entry);
    return rocks::slice(row_);
  }
  bool exists(int i) {
    bool found = false;
    backend_.check(backend_.store().get(column_, rowKey(i), scratch_, found), what_);
    return found;
  }
  // After a cached timer went: reload the cache if it emptied while the store holds more, and
  // publish the group's earliest time.
  void settle(int i) {
    Group& g = groups_[static_cast<std::size_t>(i)];
    if (g.cache.empty() && !g.complete) reload(i);
    updateTree(i);
  }
  // Reads the group's earliest timers (up to the capacity) from the store.
  void reload(int i) {
    Group& g = groups_[static_cast<std::size_t>(i)];
    const int kg = backend_.range().start + i;
    begin_.clear();
    rocks::appendKeyGroup(begin_, kg);
    end_.clear();
    rocks::appendKeyGroup(end_, kg + 1);
    std::unique_ptr<KvIterator> it;
    backend_.check(backend_.store().scan(column_, rocks::slice(begin_), rocks::slice(end_), it),
                   what_);
    g.cache.clear();
    for (; it->valid() && g.cache.size() < capacity_; it->next()) {
      const KvSlice k = it->key();
      if (k.size < kPrefix) RocksBackendBase::corrupt(what_);
      g.cache.emplace(reinterpret_cast<const char*>(k.data) + rocks::kKeyGroupBytes,
                      k.size - rocks::kKeyGroupBytes);
    }
    backend_.check(it->status(), what_);
    g.complete = !it->valid();
  }
  void updateTree(int i) {
    const auto& cache = groups_[static_cast<std::size_t>(i)].cache;
    tree_.set(i, cache.empty() ? kNoDeadline
                               : rocks::timeFromOrdered(
                                     rocks::readBigEndian64(rocks::bytes(*cache.begin()))));
  }

  RocksKeyedBackend<K>& backend_;
  std::string what_;
  int column_;
  std::vector<Group> groups_;  // by key group index
  KeyGroupMinTree tree_;
  std::size_t capacity_;
  std::size_t size_ = 0;
  std::string entry_;
  std::string row_;
  std::string firing_;
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

  void snapshotGroup(int kg, std::string& out) override {
    snapshotTimers<K, N>([&](auto&& f) { forEachInGroup(kg, f); }, out);
  }
  void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) override {
    if (!backend_.range().contains(kg)) {
      throw std::out_of_range("key group " + std::to_string(kg) +
                              " is outside this backend's range");
    }
    addTimers(backend_, *this, kg, decodeTimers<K, N>(kg, backend_.maxParallelism(), p, end));
  }

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
