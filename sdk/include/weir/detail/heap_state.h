// Keyed state on the heap: typed values in per-key-group hash tables keyed by (key id,
// namespace). See keyed_backend.h for key ids.
//
// Every state implements its public interface (ValueState<V>, ...) for the namespace set with
// setNamespace(); user functions always see VoidNamespace, windows set the window.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weir/detail/keyed_backend.h"
#include "weir/functions.h"
#include "weir/state.h"

namespace weir::detail {

// Time-to-live bookkeeping shared by all state types: whether an entry last touched at `ts` has
// expired, and what a read or write makes of its timestamp.
class TtlPolicy {
 public:
  TtlPolicy(const StateTtlConfig& config, const KeyedBackendBase& backend)
      : config_(config), backend_(backend) {}
  bool enabled() const { return config_.enabled(); }
  std::int64_t now() const { return enabled() ? backend_.processingTime() : 0; }
  bool expired(std::int64_t ts, std::int64_t now) const {
    return enabled() && now - ts >= config_.ttl.count();
  }
  bool returnExpired() const {
    return config_.visibility == StateTtlConfig::Visibility::kReturnExpiredIfNotCleanedUp;
  }
  bool refreshOnRead() const {
    return config_.update_type == StateTtlConfig::UpdateType::kOnReadAndWrite;
  }

 private:
  StateTtlConfig config_;
  const KeyedBackendBase& backend_;
};

// The (key id, namespace) -> Cell table behind one heap state, partitioned by key group (copied on
// write per cell after a freeze(): see frozen_state.h).
template <class N, class Cell>
class HeapTable {
  struct Entry;
  struct Hash;

 public:
  using Group = CowHashMap<Entry, Cell, Hash>;
  using Frozen = typename CowGroups<Group>::Frozen;
  using FrozenGroup = typename Group::Snapshot;

  explicit HeapTable(HeapBackendBase& backend)
      : backend_(backend), groups_(static_cast<std::size_t>(std::max(backend.range().size(), 0))) {}

  Cell* find(const N& ns) {
    const std::uint32_t id = backend_.currentKeyId();
    if (id == kNoKeyId) return nullptr;
    if (Cell* c = recent(id, ns)) return c;
    auto* e = group().findMutable(Entry{id, ns});
    if (e == nullptr) return nullptr;
    remember(id, ns, &e->second);
    return &e->second;
  }
  // The cell for ns, to read only (a frozen cell is not copied), or null.
  const Cell* peek(const N& ns) {
    const std::uint32_t id = backend_.currentKeyId();
    if (id == kNoKeyId) return nullptr;
    if (const Cell* c = recent(id, ns)) return c;
    const auto* e =
        groups_.read(static_cast<std::size_t>(backend_.groupIndex())).find(Entry{id, ns});
    return e == nullptr ? nullptr : &e->second;
  }
  Cell& findOrCreate(const N& ns, bool& created) {
    const std::uint32_t id = backend_.materializeCurrentKey();
    if (Cell* c = recent(id, ns)) {
      created = false;
      return *c;
    }
    auto [e, inserted] = group().tryEmplace(Entry{id, ns});
    created = inserted;
    if (inserted) backend_.ref(id);
    remember(id, ns, &e->second);
    return e->second;
  }
  void erase(const N& ns) {
    const std::uint32_t id = backend_.currentKeyId();
    if (id == kNoKeyId) return;
    if (id < recent_.size() && recent_[id].cell != nullptr && recent_[id].ns == ns) {
      recent_[id].cell = nullptr;
    }
    if (group().erase(Entry{id, ns})) backend_.unref(id);
  }
  std::size_t size() const {
    std::size_t n = 0;
    for (std::size_t g = 0; g < groups_.size(); ++g)
      n += groups_.read(g).size();
    return n;
  }
  // Every group as it is now; a later change copies the cell it changes first. Cells remembered
  // for the fast path may be frozen, so they are all forgotten.
  Frozen freeze() {
    ++epoch_;
    return groups_.freeze();
  }
  // The entries of a frozen group: f(key id, namespace, cell).
  template <class F>
  static void forEach(const FrozenGroup& group, F&& f) {
    for (const auto& [e, cell] : group)
      f(e.id, e.ns, cell);
  }

 private:
  struct Entry {
    std::uint32_t id;
    N ns;
    bool operator==(const Entry& o) const { return id == o.id && ns == o.ns; }
  };
  struct Hash {
    std::size_t operator()(const Entry& e) const {
      if constexpr (std::is_same_v<N, VoidNamespace>) {
        return e.id;
      } else {
        return hashCombine(e.id, ns_hash(e.ns));
      }
    }
    ValueHash<N> ns_hash;
  };
  // The cell of each key's most recently used namespace: a record's key usually touches the same
  // window (or, for VoidNamespace, the only cell) as its previous record, and this skips the hash
  // probe. Table nodes never move, erase() clears a slot before its cell goes, and a slot
  // remembered before the last freeze() (its epoch) is not used: its cell may be copied since.
  struct Recent {
    N ns{};
    Cell* cell = nullptr;
    std::uint32_t epoch = 0;
  };

  Group& group() { return groups_.write(static_cast<std::size_t>(backend_.groupIndex())); }
  Cell* recent(std::uint32_t id, const N& ns) {
    if (id >= recent_.size()) return nullptr;
    const Recent& r = recent_[id];
    return r.cell != nullptr && r.epoch == epoch_ && r.ns == ns ? r.cell : nullptr;
  }
  void remember(std::uint32_t id, const N& ns, Cell* cell) {
    if (id >= recent_.size()) recent_.resize(std::max<std::size_t>(id + 1, recent_.size() * 2));
    recent_[id].ns = ns;
    recent_[id].cell = cell;
    recent_[id].epoch = epoch_;
  }

  HeapBackendBase& backend_;
  CowGroups<Group> groups_;
  std::vector<Recent> recent_;  // by key id
  std::uint32_t epoch_ = 0;     // freeze() calls
};

template <class V>
struct TimedCell {
  V value{};
  std::int64_t ts = 0;  // last write (or read, per TTL config); processing time
};

// ---- key group snapshots ----
//
// A state's bytes for one key group: u8 TTL flag, u64 entry count, then per (key, namespace):
// Serde key, Serde namespace, and the cell's body (value / elements / map entries, each preceded
// by its TTL timestamp when the flag is set).

[[noreturn]] inline void notSnapshottable(const std::string& name) {
  throw std::logic_error("keyed state '" + name +
                         "' cannot be snapshotted: its key, namespace or value (or map key) type "
                         "has no weir::Serde (declare WEIR_SERDE_FIELDS or a Serde "
                         "specialisation)");
}

// A heap state's entries frozen at a checkpoint; write_body(cell, out) appends a cell's body.
template <class N, class Cell, class WriteBody>
class FrozenCells final : public FrozenState {
 public:
  FrozenCells(typename HeapTable<N, Cell>::Frozen groups, bool ttl, WriteBody write_body)
      : groups_(std::move(groups)), ttl_(ttl), write_body_(std::move(write_body)) {}

  void writeGroup(std::size_t g, const KeyWriter& keys, std::string& out) const override {
    if (!groups_[g]) throw std::logic_error("a frozen key group was written twice");
    const auto& group = *groups_[g];
    appendSerde(out, static_cast<std::uint8_t>(ttl_ ? 1 : 0));
    appendSerde(out, static_cast<std::uint64_t>(group.size()));
    HeapTable<N, Cell>::forEach(group, [&](std::uint32_t id, const N& ns, const Cell& cell) {
      keys.writeKey(id, out);
      appendSerde(out, ns);
      write_body_(cell, out);
    });
  }
  void release(std::size_t g) override { groups_[g].reset(); }

 private:
  typename HeapTable<N, Cell>::Frozen groups_;
  bool ttl_;
  WriteBody write_body_;
};

template <class N, class Cell, class WriteBody>
std::unique_ptr<FrozenState> freezeCells(const StateHandle& s, HeapBackendBase& b,
                                         HeapTable<N, Cell>& table, bool ttl,
                                         WriteBody write_body) {
  if (!b.keySerializable()) notSnapshottable(s.name);
  return std::make_unique<FrozenCells<N, Cell, WriteBody>>(table.freeze(), ttl,
                                                           std::move(write_body));
}

// Decodes everything first, then applies: bad bytes leave the state as it was. read_body(p, end,
// ttl in bytes, cell) fills a cell and returns past it. Restored cells replace existing ones.
template <class N, class Cell, class ReadBody>
void restoreCells(const StateHandle& s, HeapBackendBase& b, HeapTable<N, Cell>& table, int kg,
                  const std::uint8_t* p, const std::uint8_t* end, ReadBody read_body) {
  if (!b.keySerializable()) notSnapshottable(s.name);
  for (const bool apply : {false, true}) {
    const std::uint8_t* q = p;
    std::uint8_t ttl = 0;
    q = readSnapshot(q, end, ttl, "TTL flag");
    if (ttl > 1) throw SnapshotFormatError("key group snapshot is corrupt: bad TTL flag");
    std::uint64_t n = 0;
    q = readSnapshot(q, end, n, "entry count");
    for (std::uint64_t i = 0; i < n; ++i) {
      q = b.readKey(kg, q, end, apply);
      N ns{};
      q = readSnapshot(q, end, ns, "namespace");
      Cell cell{};
      q = read_body(q, end, ttl != 0, cell);
      if (apply) {
        bool created = false;
        table.findOrCreate(ns, created) = std::move(cell);
      }
    }
    if (q != end) throw SnapshotFormatError("key group snapshot is corrupt: trailing bytes");
  }
}

// Reads an optional TTL timestamp: the snapshot's when it has one, else now.
inline const std::uint8_t* readTimestamp(const std::uint8_t* p, const std::uint8_t* end,
                                         bool in_bytes, const TtlPolicy& ttl, std::int64_t& ts) {
  ts = ttl.now();
  if (in_bytes) {
    std::int64_t v = 0;
    p = readSnapshot(p, end, v, "TTL timestamp");
    if (ttl.enabled()) ts = v;
  }
  return p;
}

// ---- value / reducing / aggregating: one cell per (key, namespace) ----

template <class N, class V>
class HeapSingleCell {
 public:
  HeapSingleCell(HeapBackendBase& backend, const StateTtlConfig& ttl)
      : backend_(backend), table_(backend), ttl_(ttl, backend) {}

  // The live cell for ns, or null (expired cells are removed, and returned once when the TTL
  // visibility allows).
  V* read(const N& ns) {
    TimedCell<V>* c = table_.find(ns);
    if (c == nullptr) return nullptr;
    if (ttl_.enabled()) {
      const std::int64_t now = ttl_.now();
      if (ttl_.expired(c->ts, now)) {
        if (ttl_.returnExpired()) {
          expired_ = std::move(c->value);
          table_.erase(ns);
          return &expired_;
        }
        table_.erase(ns);
        return nullptr;
      }
      if (ttl_.refreshOnRead()) c->ts = now;
    }
    return &c->value;
  }
  // The live cell for ns to read only, or null.
  const V* peek(const N& ns) {
    if (ttl_.enabled()) return read(ns);  // a read may remove or refresh the cell
    const TimedCell<V>* c = table_.peek(ns);
    return c == nullptr ? nullptr : &c->value;
  }
  // The cell for ns, created (value-initialised) if absent or expired; `created` tells which.
  V& write(const N& ns, bool& created) {
    TimedCell<V>& c = table_.findOrCreate(ns, created);
    if (ttl_.enabled()) {
      const std::int64_t now = ttl_.now();
      if (!created && ttl_.expired(c.ts, now)) {
        c.value = V{};
        created = true;
      }
      c.ts = now;
    }
    return c.value;
  }
  void erase(const N& ns) { table_.erase(ns); }
  HeapTable<N, TimedCell<V>>& table() { return table_; }

  std::unique_ptr<FrozenState> freeze(const StateHandle& s) {
    if constexpr (Serializable<N> && Serializable<V>) {
      const bool ttl = ttl_.enabled();
      return freezeCells(s, backend_, table_, ttl, [ttl](const TimedCell<V>& c, std::string& o) {
        if (ttl) appendSerde(o, c.ts);
        appendSerde(o, c.value);
      });
    } else {
      notSnapshottable(s.name);
    }
  }
  void restoreGroup(const StateHandle& s, int kg, const std::uint8_t* p, const std::uint8_t* end) {
    if constexpr (Serializable<N> && Serializable<V>) {
      restoreCells(s, backend_, table_, kg, p, end,
                   [this](const std::uint8_t* q, const std::uint8_t* e, bool ttl, TimedCell<V>& c) {
                     q = readTimestamp(q, e, ttl, ttl_, c.ts);
                     return readSnapshot(q, e, c.value, "value");
                   });
    } else {
      (void)kg;
      (void)p;
      (void)end;
      notSnapshottable(s.name);
    }
  }

 private:
  HeapBackendBase& backend_;
  HeapTable<N, TimedCell<V>> table_;
  TtlPolicy ttl_;
  V expired_{};
};

template <class N, class V>
class HeapValueState final : public InternalValueState<N, V> {
 public:
  HeapValueState(HeapBackendBase& backend, const ValueStateDescriptor<V>& d)
      : cells_(backend, d.ttl) {}
  const V* get() override { return cells_.peek(*this->ns_); }
  void update(const V& value) override {
    bool created = false;
    cells_.write(*this->ns_, created) = value;
  }
  void clear() override { cells_.erase(*this->ns_); }
  std::unique_ptr<FrozenState> freeze() override { return cells_.freeze(*this); }
  void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) override {
    cells_.restoreGroup(*this, kg, p, end);
  }

 private:
  HeapSingleCell<N, V> cells_;
};

template <class N, class V, class F>
class HeapReducingState final : public InternalReducingState<N, V> {
 public:
  HeapReducingState(HeapBackendBase& backend, const ReducingStateDescriptor<V, F>& d)
      : cells_(backend, d.ttl), fn_(d.fn) {}
  const V* get() override { return cells_.peek(*this->ns_); }
  void add(const V& value) override {
    bool created = false;
    V& acc = cells_.write(*this->ns_, created);
    acc = created ? value : callReduce(fn_, acc, value);
  }
  void clear() override { cells_.erase(*this->ns_); }
  std::unique_ptr<FrozenState> freeze() override { return cells_.freeze(*this); }
  void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) override {
    cells_.restoreGroup(*this, kg, p, end);
  }
  // Folds the values of `sources` into `target` and removes them (merging windows).
  void mergeNamespaces(const N& target, const std::vector<N>& sources) override {
    for (const N& s : sources) {
      if (s == target) continue;
      V* v = cells_.read(s);
      if (v == nullptr) continue;
      V moved = std::move(*v);
      cells_.erase(s);
      bool created = false;
      V& acc = cells_.write(target, created);
      acc = created ? std::move(moved) : callReduce(fn_, acc, moved);
    }
  }

 private:
  HeapSingleCell<N, V> cells_;
  F fn_;
};

template <class N, class In, class F>
class HeapAggregatingState final
    : public InternalAggregatingState<N, In, AccumulatorOf<F>, AggregateResultOf<F>> {
 public:
  using Acc = AccumulatorOf<F>;
  using Out = AggregateResultOf<F>;

  HeapAggregatingState(HeapBackendBase& backend, const AggregatingStateDescriptor<In, F>& d)
      : cells_(backend, d.ttl), fn_(d.fn) {}
  std::optional<Out> get() override {
    const Acc* acc = cells_.peek(*this->ns_);
    if (acc == nullptr) return std::nullopt;
    return fn_.getResult(*acc);
  }
  void add(const In& value) override {
    bool created = false;
    Acc& acc = cells_.write(*this->ns_, created);
    if (created) acc = fn_.createAccumulator();
    aggregateAdd(fn_, value, acc);
  }
  void clear() override { cells_.erase(*this->ns_); }
  std::unique_ptr<FrozenState> freeze() override { return cells_.freeze(*this); }
  void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) override {
    cells_.restoreGroup(*this, kg, p, end);
  }
  // The accumulator itself (windows read it without computing a result per pane).
  const Acc* accumulator() override { return cells_.peek(*this->ns_); }
  void mergeNamespaces(const N& target, const std::vector<N>& sources) override {
    for (const N& s : sources) {
      if (s == target) continue;
      Acc* a = cells_.read(s);
      if (a == nullptr) continue;
      Acc moved = std::move(*a);
      cells_.erase(s);
      bool created = false;
      Acc& into = cells_.write(target, created);
      if (created) {
        into = std::move(moved);
      } else {
        aggregateMerge(fn_, moved, into);
      }
    }
  }

 private:
  HeapSingleCell<N, Acc> cells_;
  F fn_;
};

// ---- list: the elements of a (key, namespace), each with its own TTL timestamp ----

template <class V>
struct ListCell {
  std::vector<V> values;
  std::vector<std::int64_t> ts;  // parallel to values, only with TTL
};

template <class N, class V>
class HeapListState final : public InternalListState<N, V> {
 public:
  HeapListState(HeapBackendBase& backend, const ListStateDescriptor<V>& d)
      : backend_(backend), table_(backend), ttl_(d.ttl, backend) {}

  std::unique_ptr<FrozenState> freeze() override {
    if constexpr (Serializable<N> && Serializable<V>) {
      const bool ttl = ttl_.enabled();
      return freezeCells(*this, backend_, table_, ttl, [ttl](const ListCell<V>& c, std::string& o) {
        appendSerde(o, static_cast<std::uint64_t>(c.values.size()));
        for (std::size_t i = 0; i < c.values.size(); ++i) {
          if (ttl) appendSerde(o, c.ts[i]);
          appendSerde(o, c.values[i]);
        }
      });
    } else {
      notSnapshottable(this->name);
    }
  }
  void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) override {
    if constexpr (Serializable<N> && Serializable<V>) {
      restoreCells(*this, backend_, table_, kg, p, end,
                   [this](const std::uint8_t* q, const std::uint8_t* e, bool ttl, ListCell<V>& c) {
                     std::uint64_t n = 0;
                     q = readSnapshot(q, e, n, "list length");
                     if (n == 0) throw SnapshotFormatError("key group snapshot has an empty list");
                     for (std::uint64_t i = 0; i < n; ++i) {
                       std::int64_t ts = 0;
                       q = readTimestamp(q, e, ttl, ttl_, ts);
                       c.values.emplace_back();
                       q = readSnapshot(q, e, c.values.back(), "list element");
                       if (ttl_.enabled()) c.ts.push_back(ts);
                     }
                     return q;
                   });
    } else {
      (void)kg;
      (void)p;
      (void)end;
      notSnapshottable(this->name);
    }
  }

  const std::vector<V>& get() override {
    if (!ttl_.enabled()) {
      const ListCell<V>* c = table_.peek(*this->ns_);
      return c == nullptr ? empty_ : c->values;
    }
    ListCell<V>* c = table_.find(*this->ns_);
    if (c == nullptr) return empty_;
    const std::int64_t now = ttl_.now();
    // Expired elements are removed; with "return expired" they are returned this once. Reads
    // refresh the others when the update type says so.
    if (ttl_.returnExpired()) {
      scratch_ = c->values;
      prune(*c, now);
      if (c->values.empty()) {
        table_.erase(*this->ns_);
      } else if (ttl_.refreshOnRead()) {
        std::fill(c->ts.begin(), c->ts.end(), now);
      }
      return scratch_;
    }
    prune(*c, now);
    if (c->values.empty()) {
      table_.erase(*this->ns_);
      return empty_;
    }
    if (ttl_.refreshOnRead()) std::fill(c->ts.begin(), c->ts.end(), now);
    return c->values;
  }
  void add(const V& value) override {
    ListCell<V>& c = cell();
    c.values.push_back(value);
    if (ttl_.enabled()) c.ts.push_back(ttl_.now());
  }
  void addAll(const std::vector<V>& values) override {
    if (values.empty()) return;
    ListCell<V>& c = cell();
    c.values.insert(c.values.end(), values.begin(), values.end());
    if (ttl_.enabled()) c.ts.resize(c.values.size(), ttl_.now());
  }
  void update(const std::vector<V>& values) override {
    if (values.empty()) {
      clear();
      return;
    }
    ListCell<V>& c = cell();
    c.values = values;
    if (ttl_.enabled()) c.ts.assign(values.size(), ttl_.now());
  }
  void clear() override { table_.erase(*this->ns_); }
  void mergeNamespaces(const N& target, const std::vector<N>& sources) override {
    for (const N& s : sources) {
      if (s == target) continue;
      ListCell<V>* c = table_.find(s);
      if (c == nullptr) continue;
      ListCell<V> moved = std::move(*c);
      table_.erase(s);
      bool created = false;
      ListCell<V>& into = table_.findOrCreate(target, created);
      into.values.insert(into.values.end(), std::make_move_iterator(moved.values.begin()),
                         std::make_move_iterator(moved.values.end()));
      into.ts.insert(into.ts.end(), moved.ts.begin(), moved.ts.end());
    }
  }

 private:
  ListCell<V>& cell() {
    bool created = false;
    return table_.findOrCreate(*this->ns_, created);
  }
  void prune(ListCell<V>& c, std::int64_t now) {
    std::size_t out = 0;
    for (std::size_t i = 0; i < c.values.size(); ++i) {
      if (ttl_.expired(c.ts[i], now)) continue;
      if (out != i) {
        c.values[out] = std::move(c.values[i]);
        c.ts[out] = c.ts[i];
      }
      ++out;
    }
    c.values.resize(out);
    c.ts.resize(out);
  }

  HeapBackendBase& backend_;
  HeapTable<N, ListCell<V>> table_;
  TtlPolicy ttl_;
  std::vector<V> empty_;
  std::vector<V> scratch_;
};

// ---- map: a hash map per (key, namespace), each entry with its own TTL timestamp ----

template <class N, class UK, class UV>
class HeapMapState final : public InternalMapState<N, UK, UV> {
 public:
  HeapMapState(HeapBackendBase& backend, const MapStateDescriptor<UK, UV>& d)
      : backend_(backend), table_(backend), ttl_(d.ttl, backend) {}

  std::unique_ptr<FrozenState> freeze() override {
    if constexpr (Serializable<N> && Serializable<UK> && Serializable<UV>) {
      const bool ttl = ttl_.enabled();
      return freezeCells(*this, backend_, table_, ttl, [ttl](const Map& m, std::string& o) {
        appendSerde(o, static_cast<std::uint64_t>(m.size()));
        for (const auto& [k, c] : m) {
          if (ttl) appendSerde(o, c.ts);
          appendSerde(o, k);
          appendSerde(o, c.value);
        }
      });
    } else {
      notSnapshottable(this->name);
    }
  }
  void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) override {
    if constexpr (Serializable<N> && Serializable<UK> && Serializable<UV>) {
      restoreCells(*this, backend_, table_, kg, p, end,
                   [this](const std::uint8_t* q, const std::uint8_t* e, bool ttl, Map& m) {
                     std::uint64_t n = 0;
                     q = readSnapshot(q, e, n, "map size");
                     if (n == 0) throw SnapshotFormatError("key group snapshot has an empty map");
                     for (std::uint64_t i = 0; i < n; ++i) {
                       TimedCell<UV> c;
                       q = readTimestamp(q, e, ttl, ttl_, c.ts);
                       UK k{};
                       q = readSnapshot(q, e, k, "map key");
                       q = readSnapshot(q, e, c.value, "map value");
                       m.insert_or_assign(std::move(k), std::move(c));
                     }
                     return q;
                   });
    } else {
      (void)kg;
      (void)p;
      (void)end;
      notSnapshottable(this->name);
    }
  }

  const UV* get(const UK& key) override {
    if (!ttl_.enabled()) {
      const Map* m = table_.peek(*this->ns_);
      if (m == nullptr) return nullptr;
      auto it = m->find(key);
      return it == m->end() ? nullptr : &it->second.value;
    }
    Map* m = table_.find(*this->ns_);
    if (m == nullptr) return nullptr;
    auto it = m->find(key);
    if (it == m->end()) return nullptr;
    if (ttl_.enabled()) {
      const std::int64_t now = ttl_.now();
      if (ttl_.expired(it->second.ts, now)) {
        const bool give = ttl_.returnExpired();
        if (give) expired_ = std::move(it->second.value);
        eraseEntry(*m, it);
        return give ? &expired_ : nullptr;
      }
      if (ttl_.refreshOnRead()) it->second.ts = now;
    }
    return &it->second.value;
  }
  void put(const UK& key, const UV& value) override {
    bool created = false;
    Map& m = table_.findOrCreate(*this->ns_, created);
    TimedCell<UV>& c = m[key];
    c.value = value;
    if (ttl_.enabled()) c.ts = ttl_.now();
  }
  void remove(const UK& key) override {
    const Map* present = table_.peek(*this->ns_);
    if (present == nullptr || present->find(key) == present->end()) return;
    Map* m = table_.find(*this->ns_);
    if (m == nullptr) return;
    auto it = m->find(key);
    if (it != m->end()) eraseEntry(*m, it);
  }
  bool contains(const UK& key) override { return get(key) != nullptr; }
  bool isEmpty() override {
    if (!ttl_.enabled()) return table_.peek(*this->ns_) == nullptr;
    Map* m = table_.find(*this->ns_);
    if (m == nullptr) return true;
    if (ttl_.enabled()) pruneAll(*m);
    return table_.find(*this->ns_) == nullptr;
  }
  void clear() override { table_.erase(*this->ns_); }
  void forEach(const std::function<void(const UK&, const UV&)>& f) override {
    if (!ttl_.enabled()) {
      if (const Map* m = table_.peek(*this->ns_)) {
        for (const auto& [k, c] : *m)
          f(k, c.value);
      }
      return;
    }
    Map* m = table_.find(*this->ns_);
    if (m == nullptr) return;
    // Expired entries are removed (and visited this once when the visibility allows); reads
    // refresh the others when the update type says so.
    const std::int64_t now = ttl_.now();
    for (auto it = m->begin(); it != m->end();) {
      if (ttl_.expired(it->second.ts, now)) {
        if (ttl_.returnExpired()) f(it->first, it->second.value);
        it = m->erase(it);
        continue;
      }
      if (ttl_.refreshOnRead()) it->second.ts = now;
      f(it->first, it->second.value);
      ++it;
    }
    if (m->empty()) table_.erase(*this->ns_);
  }

 private:
  using Map = std::unordered_map<UK, TimedCell<UV>, ValueHash<UK>>;

  void eraseEntry(Map& m, typename Map::iterator it) {
    m.erase(it);
    if (m.empty()) table_.erase(*this->ns_);
  }
  void pruneAll(Map& m) {
    const std::int64_t now = ttl_.now();
    for (auto it = m.begin(); it != m.end();) {
      it = ttl_.expired(it->second.ts, now) ? m.erase(it) : std::next(it);
    }
    if (m.empty()) table_.erase(*this->ns_);
  }

  HeapBackendBase& backend_;
  HeapTable<N, Map> table_;
  TtlPolicy ttl_;
  UV expired_{};
};

}  // namespace weir::detail
