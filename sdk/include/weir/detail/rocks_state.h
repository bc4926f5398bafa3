// Keyed state on the RocksDB backend: the same Internal* interfaces as the heap states
// (heap_state.h), over the engine's byte store (weir/kv_store.h), with keys and values serialised
// by Serde<T>.
//
// Layout, one KvStore column per state ("state.<name>"):
//   current key  = key group (u16, big endian) ‖ Serde<K>(key)
//   row key      = current key ‖ Serde<N>(namespace) [‖ Serde<UK>(user key), map state]
//   value        = [8-byte last-access time, big endian, only with TTL] ‖ Serde<V>(value)
//   list value   = elements, each [varint length ‖ [8-byte time, with TTL] ‖ Serde<V>(element)];
//                  list add appends an element with KvStore::append, never reading the list
// Every Serde encoding is self-delimiting (a decoder knows where a value ends without looking at
// what follows), so no key's bytes are a prefix of another key's, and a scan of the prefix
// "current key ‖ namespace" finds exactly that namespace's map entries. Namespace types need a
// Serde<N> with that property (any built-in or WEIR_SERDE_FIELDS Serde has it) whose bytes are
// equal exactly when the namespaces are equal.
//
// Reads decode into a value cached in the state object: pointers returned by get() stay valid
// until the next access of that state. Buffers are reused, so the per-record path does not
// allocate once warm (scans, used by map iteration and clear, create an iterator).
//
// A failing store operation throws std::runtime_error naming the state; the operator turns it
// into a task failure.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weir/detail/heap_state.h"
#include "weir/detail/keyed_backend.h"
#include "weir/functions.h"
#include "weir/kv_store.h"
#include "weir/serde.h"
#include "weir/state.h"

namespace weir::detail {

namespace rocks {

inline constexpr std::size_t kKeyGroupBytes = 2;
inline constexpr std::size_t kTimestampBytes = 8;

inline const std::uint8_t* bytes(const std::string& s) {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}
inline std::uint8_t* bytes(std::string& s) {
  return reinterpret_cast<std::uint8_t*>(s.data());
}
inline KvSlice slice(const std::string& s) {
  return {bytes(s), s.size()};
}

inline void appendKeyGroup(std::string& s, int kg) {
  s.push_back(static_cast<char>((kg >> 8) & 0xff));
  s.push_back(static_cast<char>(kg & 0xff));
}
inline int readKeyGroup(const std::uint8_t* p) {
  return (static_cast<int>(p[0]) << 8) | static_cast<int>(p[1]);
}

inline void writeBigEndian64(std::uint64_t v, std::uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
}
inline std::uint64_t readBigEndian64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | p[i];
  return v;
}
inline void appendBigEndian64(std::string& s, std::uint64_t v) {
  const std::size_t at = s.size();
  s.resize(at + 8);
  writeBigEndian64(v, bytes(s) + at);
}

// Times as unsigned big-endian numbers with the sign bit flipped: byte order is time order.
inline std::uint64_t orderedTime(std::int64_t t) {
  return static_cast<std::uint64_t>(t) ^ (std::uint64_t{1} << 63);
}
inline std::int64_t timeFromOrdered(std::uint64_t v) {
  return static_cast<std::int64_t>(v ^ (std::uint64_t{1} << 63));
}

template <class T>
void appendSerde(std::string& s, const T& v) {
  const std::size_t n = Serde<T>::size(v);
  const std::size_t at = s.size();
  s.resize(at + n);
  Serde<T>::write(v, bytes(s) + at);
}

// Keys are compared as bytes: equal keys must serialise equally (-0.0 is the key 0.0, as in
// KeyHasher).
template <class K>
void appendKey(std::string& s, const K& key) {
  if constexpr (std::is_floating_point_v<K>) {
    const K normalized = key == K(0) ? K(0) : key;
    appendSerde(s, normalized);
  } else {
    appendSerde(s, key);
  }
}

inline void appendVarint(std::string& s, std::uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>(static_cast<std::uint8_t>(v) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}

// The smallest key greater than every key starting with `prefix` (prefix is never all 0xff here:
// it starts with a key group below 0x8000).
inline void prefixEnd(const std::string& prefix, std::string& out) {
  out = prefix;
  while (!out.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(out.back());
    if (last != 0xff) {
      ++last;
      return;
    }
    out.pop_back();
  }
}

}  // namespace rocks

// The part of the RocksDB backend that does not depend on the key type: the store, the current
// key's bytes, and error reporting.
class RocksBackendBase : public KeyedBackendBase {
 public:
  RocksBackendBase(TaskEnvironment* env, KeyGroupRange range, int max_parallelism, KvStore& store)
      : KeyedBackendBase(StateBackendKind::kRocksDb, env, range, max_parallelism), store_(&store) {
    key_bytes_.reserve(64);
  }

  KvStore& store() const { return *store_; }
  // [key group u16 BE][Serde<K>] of the current key.
  const std::string& currentKeyBytes() const { return key_bytes_; }

  // Decodes the key starting at `p` (a key's Serde bytes, as stored after its key group) and
  // makes it current in key group `kg`; returns where the key's bytes end. Throws when they do
  // not decode.
  virtual const std::uint8_t* setCurrentKeyFromBytes(int kg, const std::uint8_t* p,
                                                     const std::uint8_t* end) = 0;

  // The column of a state or timer queue (created on first use). Throws on failure.
  int openColumn(const std::string& column_name, const std::string& what) {
    int column = -1;
    check(store_->openColumn(column_name, column), what);
    return column;
  }

  // Every entry of `column` in key group `kg`, in key order: f(KvSlice key, KvSlice value).
  // Entries of one key group are contiguous (keys start with the key group).
  template <class F>
  void forEachInGroup(int column, int kg, F&& f, const std::string& what) {
    std::string begin;
    std::string end;
    rocks::appendKeyGroup(begin, kg);
    rocks::appendKeyGroup(end, kg + 1);
    std::unique_ptr<KvIterator> it;
    check(store_->scan(column, rocks::slice(begin), rocks::slice(end), it), what);
    for (; it->valid(); it->next())
      f(it->key(), it->value());
    check(it->status(), what);
  }

  static void check(const Status& s, const std::string& what) {
    if (!s.isOk()) fail(what, s.message());
  }
  [[noreturn]] static void fail(const std::string& what, const std::string& message) {
    throw std::runtime_error(what + " (RocksDB state backend): " + message);
  }
  [[noreturn]] static void corrupt(const std::string& what) {
    fail(what,
         "stored bytes do not decode as the state's type (did the type or its Serde "
         "change?)");
  }

 protected:
  KvStore* store_;
  std::string key_bytes_;
};

template <class K>
class RocksKeyedBackend final : public RocksBackendBase {
 public:
  using RocksBackendBase::RocksBackendBase;

  // Makes `key` (in key group `kg`, which the caller checked is in range) the current key. `key`
  // must stay alive while it is current.
  void setCurrentKey(const K& key, int kg) {
    current_kg_ = kg;
    current_key_ = &key;
    key_bytes_.clear();
    rocks::appendKeyGroup(key_bytes_, kg);
    rocks::appendKey(key_bytes_, key);
  }
  const K& currentKey() const { return *current_key_; }

  void beforeRestore() override {
    saved_kg_ = current_kg_;
    saved_key_ = current_key_;
  }
  void afterRestore() override {
    if (saved_key_ != nullptr) setCurrentKey(*saved_key_, saved_kg_);
  }

  const std::uint8_t* setCurrentKeyFromBytes(int kg, const std::uint8_t* p,
                                             const std::uint8_t* end) override {
    const std::uint8_t* after = Serde<K>::read(p, end, decoded_key_);
    if (after == nullptr) corrupt("the key of a timer");
    current_kg_ = kg;
    current_key_ = &decoded_key_;
    key_bytes_.clear();
    rocks::appendKeyGroup(key_bytes_, kg);
    key_bytes_.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(after - p));
    return after;
  }

  // Decodes a current-key prefix of a stored key ([kg][Serde<K>]...): f(key group, key).
  template <class F>
  static void decodeKey(KvSlice stored, K& key, F&& f) {
    if (stored.size < rocks::kKeyGroupBytes) corrupt("a stored key");
    const std::uint8_t* p = stored.data + rocks::kKeyGroupBytes;
    if (Serde<K>::read(p, stored.data + stored.size, key) == nullptr) corrupt("a stored key");
    f(rocks::readKeyGroup(stored.data), key);
  }

 private:
  const K* current_key_ = nullptr;
  K decoded_key_{};  // the current key when it came from bytes (timers)
  int saved_kg_ = 0;
  const K* saved_key_ = nullptr;
};

// What every RocksDB state has: its column, row key building and TTL policy.
template <class N>
class RocksStateCore {
 public:
  RocksStateCore(RocksBackendBase& backend, const std::string& name, const StateTtlConfig& ttl)
      : backend_(backend),
        what_("keyed state '" + name + "'"),
        column_(backend.openColumn("state." + name, what_)),
        ttl_(ttl, backend) {
    row_.reserve(64);
  }

  // row_ = current key ‖ namespace.
  void buildRow(const N& ns) {
    row_.assign(backend_.currentKeyBytes());
    rocks::appendSerde(row_, ns);
  }
  // Reads row_ into buf_; false when absent.
  bool fetchRow() {
    bool found = false;
    backend_.check(backend_.store().get(column_, rocks::slice(row_), buf_, found), what_);
    return found;
  }
  void putRow(const std::string& value) {
    backend_.check(backend_.store().put(column_, rocks::slice(row_), rocks::slice(value)), what_);
  }
  void removeRow() { backend_.check(backend_.store().remove(column_, rocks::slice(row_)), what_); }

  template <class T>
  void decode(const std::uint8_t* p, const std::uint8_t* end, T& out) const {
    if (Serde<T>::read(p, end, out) != end) RocksBackendBase::corrupt(what_);
  }
  // The TTL timestamp of a stored value (when TTL is on); advances p past it.
  std::int64_t readTimestamp(const std::uint8_t*& p, const std::uint8_t* end) const {
    if (end - p < static_cast<std::ptrdiff_t>(rocks::kTimestampBytes)) {
      RocksBackendBase::corrupt(what_);
    }
    const auto ts = static_cast<std::int64_t>(rocks::readBigEndian64(p));
    p += rocks::kTimestampBytes;
    return ts;
  }
  // out = [timestamp now, with TTL] ‖ Serde(value).
  template <class T>
  void encodeValue(const T& value, std::string& out) const {
    out.clear();
    if (ttl_.enabled()) rocks::appendBigEndian64(out, static_cast<std::uint64_t>(ttl_.now()));
    rocks::appendSerde(out, value);
  }

  RocksBackendBase& backend_;
  std::string what_;
  int column_;
  TtlPolicy ttl_;
  std::string row_;  // the row key of the last access
  std::string buf_;  // the bytes read last
  std::string out_;  // the bytes to write
};

// ---- value / reducing / aggregating: one value per (key, namespace) ----

template <class N, class V>
class RocksSingleCell {
 public:
  RocksSingleCell(RocksBackendBase& backend, const std::string& name, const StateTtlConfig& ttl)
      : core_(backend, name, ttl) {}

  // The live value for ns (decoded into the cache), or null. Expired values are removed, and
  // returned this once when the TTL visibility allows; reads refresh the TTL when configured.
  V* read(const N& ns) {
    core_.buildRow(ns);
    if (!core_.fetchRow()) return nullptr;
    const std::uint8_t* p = rocks::bytes(core_.buf_);
    const std::uint8_t* end = p + core_.buf_.size();
    if (core_.ttl_.enabled()) {
      std::uint8_t* ts_at = rocks::bytes(core_.buf_);
      const std::int64_t ts = core_.readTimestamp(p, end);
      const std::int64_t now = core_.ttl_.now();
      if (core_.ttl_.expired(ts, now)) {
        core_.removeRow();
        if (!core_.ttl_.returnExpired()) return nullptr;
        core_.decode(p, end, value_);
        return &value_;
      }
      if (core_.ttl_.refreshOnRead()) {
        rocks::writeBigEndian64(static_cast<std::uint64_t>(now), ts_at);
        core_.putRow(core_.buf_);
      }
    }
    core_.decode(p, end, value_);
    return &value_;
  }
  // The value for ns to modify, then store(): the stored one, or value-initialised when absent
  // or expired (`created` says which).
  V& load(const N& ns, bool& created) {
    core_.buildRow(ns);
    created = !core_.fetchRow();
    if (!created) {
      const std::uint8_t* p = rocks::bytes(core_.buf_);
      const std::uint8_t* end = p + core_.buf_.size();
      if (core_.ttl_.enabled()) {
        const std::int64_t ts = core_.readTimestamp(p, end);
        created = core_.ttl_.expired(ts, core_.ttl_.now());
      }
      if (!created) {
        core_.decode(p, end, value_);
        return value_;
      }
    }
    value_ = V{};
    return value_;
  }
  // Writes the value returned by the last load() (TTL timestamp: now).
  void store() {
    core_.encodeValue(value_, core_.out_);
    core_.putRow(core_.out_);
  }
  void put(const N& ns, const V& value) {
    core_.buildRow(ns);
    core_.encodeValue(value, core_.out_);
    core_.putRow(core_.out_);
  }
  void erase(const N& ns) {
    core_.buildRow(ns);
    core_.removeRow();
  }
  int column() const { return core_.column_; }

 private:
  RocksStateCore<N> core_;
  V value_{};
};

template <class N, class V>
class RocksValueState final : public InternalValueState<N, V> {
 public:
  RocksValueState(RocksBackendBase& backend, const ValueStateDescriptor<V>& d)
      : cells_(backend, d.name, d.ttl) {}
  const V* get() override { return cells_.read(*this->ns_); }
  void update(const V& value) override { cells_.put(*this->ns_, value); }
  void clear() override { cells_.erase(*this->ns_); }
  int column() const { return cells_.column(); }

 private:
  RocksSingleCell<N, V> cells_;
};

template <class N, class V, class F>
class RocksReducingState final : public InternalReducingState<N, V> {
 public:
  RocksReducingState(RocksBackendBase& backend, const ReducingStateDescriptor<V, F>& d)
      : cells_(backend, d.name, d.ttl), fn_(d.fn) {}
  const V* get() override { return cells_.read(*this->ns_); }
  void add(const V& value) override {
    bool created = false;
    V& acc = cells_.load(*this->ns_, created);
    acc = created ? value : callReduce(fn_, acc, value);
    cells_.store();
  }
  void clear() override { cells_.erase(*this->ns_); }
  void mergeNamespaces(const N& target, const std::vector<N>& sources) override {
    for (const N& s : sources) {
      if (s == target) continue;
      V* v = cells_.read(s);
      if (v == nullptr) continue;
      V moved = std::move(*v);
      cells_.erase(s);
      bool created = false;
      V& acc = cells_.load(target, created);
      acc = created ? std::move(moved) : callReduce(fn_, acc, moved);
      cells_.store();
    }
  }

 private:
  RocksSingleCell<N, V> cells_;
  F fn_;
};

template <class N, class In, class F>
class RocksAggregatingState final
    : public InternalAggregatingState<N, In, AccumulatorOf<F>, AggregateResultOf<F>> {
 public:
  using Acc = AccumulatorOf<F>;
  using Out = AggregateResultOf<F>;

  RocksAggregatingState(RocksBackendBase& backend, const AggregatingStateDescriptor<In, F>& d)
      : cells_(backend, d.name, d.ttl), fn_(d.fn) {}
  std::optional<Out> get() override {
    const Acc* acc = cells_.read(*this->ns_);
    if (acc == nullptr) return std::nullopt;
    return fn_.getResult(*acc);
  }
  void add(const In& value) override {
    bool created = false;
    Acc& acc = cells_.load(*this->ns_, created);
    if (created) acc = fn_.createAccumulator();
    aggregateAdd(fn_, value, acc);
    cells_.store();
  }
  void clear() override { cells_.erase(*this->ns_); }
  const Acc* accumulator() override { return cells_.read(*this->ns_); }
  void mergeNamespaces(const N& target, const std::vector<N>& sources) override {
    for (const N& s : sources) {
      if (s == target) continue;
      Acc* a = cells_.read(s);
      if (a == nullptr) continue;
      Acc moved = std::move(*a);
      cells_.erase(s);
      bool created = false;
      Acc& into = cells_.load(target, created);
      if (created) {
        into = std::move(moved);
      } else {
        aggregateMerge(fn_, moved, into);
      }
      cells_.store();
    }
  }

 private:
  RocksSingleCell<N, Acc> cells_;
  F fn_;
};

// ---- list: self-delimiting elements, appended without reading ----

template <class N, class V>
class RocksListState final : public InternalListState<N, V> {
 public:
  RocksListState(RocksBackendBase& backend, const ListStateDescriptor<V>& d)
      : core_(backend, d.name, d.ttl) {}

  const std::vector<V>& get() override {
    core_.buildRow(*this->ns_);
    count_ = 0;
    if (!core_.fetchRow()) return finish();
    const std::uint8_t* p = rocks::bytes(core_.buf_);
    const std::uint8_t* end = p + core_.buf_.size();
    if (!core_.ttl_.enabled()) {
      while (p != end) {
        const std::uint8_t* elem_end = nullptr;
        p = element(p, end, elem_end);
        core_.decode(p, elem_end, slot());
        p = elem_end;
      }
      return finish();
    }
    // Expired elements are removed; with "return expired" they are returned this once. The
    // others are refreshed when reads count as access.
    const std::int64_t now = core_.ttl_.now();
    const bool give_expired = core_.ttl_.returnExpired();
    const bool refresh = core_.ttl_.refreshOnRead();
    bool changed = refresh;
    core_.out_.clear();
    while (p != end) {
      const std::uint8_t* elem_start = p;
      const std::uint8_t* elem_end = nullptr;
      p = element(p, end, elem_end);
      std::uint8_t* ts_at = const_cast<std::uint8_t*>(p);
      const std::int64_t ts = core_.readTimestamp(p, elem_end);
      const bool expired = core_.ttl_.expired(ts, now);
      if (!expired || give_expired) core_.decode(p, elem_end, slot());
      if (expired) {
        changed = true;
      } else {
        if (refresh) rocks::writeBigEndian64(static_cast<std::uint64_t>(now), ts_at);
        core_.out_.append(reinterpret_cast<const char*>(elem_start),
                          static_cast<std::size_t>(elem_end - elem_start));
      }
      p = elem_end;
    }
    if (changed) {
      if (core_.out_.empty()) {
        core_.removeRow();
      } else {
        core_.putRow(core_.out_);
      }
    }
    return finish();
  }
  void add(const V& value) override {
    core_.buildRow(*this->ns_);
    core_.out_.clear();
    appendElement(value, core_.ttl_.enabled() ? core_.ttl_.now() : 0);
    append();
  }
  void addAll(const std::vector<V>& values) override {
    if (values.empty()) return;
    core_.buildRow(*this->ns_);
    core_.out_.clear();
    const std::int64_t now = core_.ttl_.enabled() ? core_.ttl_.now() : 0;
    for (const V& v : values)
      appendElement(v, now);
    append();
  }
  void update(const std::vector<V>& values) override {
    if (values.empty()) {
      clear();
      return;
    }
    core_.buildRow(*this->ns_);
    core_.out_.clear();
    const std::int64_t now = core_.ttl_.enabled() ? core_.ttl_.now() : 0;
    for (const V& v : values)
      appendElement(v, now);
    core_.putRow(core_.out_);
  }
  void clear() override {
    core_.buildRow(*this->ns_);
    core_.removeRow();
  }
  // Moves the elements of `sources` behind those of `target` (bytes as stored, timestamps
  // included).
  void mergeNamespaces(const N& target, const std::vector<N>& sources) override {
    for (const N& s : sources) {
      if (s == target) continue;
      core_.buildRow(s);
      if (!core_.fetchRow()) continue;
      core_.removeRow();
      core_.buildRow(target);
      core_.backend_.check(core_.backend_.store().append(core_.column_, rocks::slice(core_.row_),
                                                         rocks::slice(core_.buf_)),
                           core_.what_);
    }
  }
  int column() const { return core_.column_; }

 private:
  // Reads an element's length prefix at p; returns where its bytes start, sets elem_end.
  const std::uint8_t* element(const std::uint8_t* p, const std::uint8_t* end,
                              const std::uint8_t*& elem_end) const {
    std::size_t n = 0;
    p = serde_detail::readLength(p, end, 1, n);
    if (p == nullptr) RocksBackendBase::corrupt(core_.what_);
    elem_end = p + n;
    return p;
  }
  void appendElement(const V& v, std::int64_t now) {
    const std::size_t size =
        Serde<V>::size(v) + (core_.ttl_.enabled() ? rocks::kTimestampBytes : 0);
    rocks::appendVarint(core_.out_, size);
    if (core_.ttl_.enabled()) {
      rocks::appendBigEndian64(core_.out_, static_cast<std::uint64_t>(now));
    }
    rocks::appendSerde(core_.out_, v);
  }
  void append() {
    core_.backend_.check(core_.backend_.store().append(core_.column_, rocks::slice(core_.row_),
                                                       rocks::slice(core_.out_)),
                         core_.what_);
  }
  // The next element of the cache (its capacity reused).
  V& slot() {
    if (count_ == values_.size()) values_.emplace_back();
    return values_[count_++];
  }
  const std::vector<V>& finish() {
    values_.resize(count_);
    return values_;
  }

  RocksStateCore<N> core_;
  std::vector<V> values_;  // the elements read last
  std::size_t count_ = 0;
};

// ---- map: one row per entry, under the prefix current key ‖ namespace ----

template <class N, class UK, class UV>
class RocksMapState final : public InternalMapState<N, UK, UV> {
 public:
  RocksMapState(RocksBackendBase& backend, const MapStateDescriptor<UK, UV>& d)
      : core_(backend, d.name, d.ttl) {}

  const UV* get(const UK& key) override {
    entryRow(key);
    if (!core_.fetchRow()) return nullptr;
    const std::uint8_t* p = rocks::bytes(core_.buf_);
    const std::uint8_t* end = p + core_.buf_.size();
    if (core_.ttl_.enabled()) {
      std::uint8_t* ts_at = rocks::bytes(core_.buf_);
      const std::int64_t ts = core_.readTimestamp(p, end);
      const std::int64_t now = core_.ttl_.now();
      if (core_.ttl_.expired(ts, now)) {
        core_.removeRow();
        if (!core_.ttl_.returnExpired()) return nullptr;
        core_.decode(p, end, value_);
        return &value_;
      }
      if (core_.ttl_.refreshOnRead()) {
        rocks::writeBigEndian64(static_cast<std::uint64_t>(now), ts_at);
        core_.putRow(core_.buf_);
      }
    }
    core_.decode(p, end, value_);
    return &value_;
  }
  void put(const UK& key, const UV& value) override {
    entryRow(key);
    core_.encodeValue(value, core_.out_);
    core_.putRow(core_.out_);
  }
  void remove(const UK& key) override {
    entryRow(key);
    core_.removeRow();
  }
  bool contains(const UK& key) override { return get(key) != nullptr; }
  bool isEmpty() override {
    bool empty = true;
    // Without TTL the first entry answers; with it, expired entries are removed on the way.
    scan([&](KvSlice k, KvSlice v) {
      if (core_.ttl_.enabled()) {
        const std::uint8_t* p = v.data;
        if (core_.ttl_.expired(core_.readTimestamp(p, v.data + v.size), now_)) {
          removeKey(k);
          return true;
        }
      }
      empty = false;
      return core_.ttl_.enabled();  // keep pruning
    });
    return empty;
  }
  void clear() override {
    scan([&](KvSlice k, KvSlice) {
      removeKey(k);
      return true;
    });
  }
  // In key-byte order (Serde<UK> bytes).
  void forEach(const std::function<void(const UK&, const UV&)>& f) override {
    scan([&](KvSlice k, KvSlice v) {
      const std::uint8_t* p = v.data;
      const std::uint8_t* end = v.data + v.size;
      if (core_.ttl_.enabled()) {
        const std::uint8_t* ts_at = p;
        const std::int64_t ts = core_.readTimestamp(p, end);
        if (core_.ttl_.expired(ts, now_)) {
          if (core_.ttl_.returnExpired()) visit(k, p, end, f);
          removeKey(k);
          return true;
        }
        if (core_.ttl_.refreshOnRead()) {
          refreshed_.assign(reinterpret_cast<const char*>(ts_at), v.size);
          rocks::writeBigEndian64(static_cast<std::uint64_t>(now_), rocks::bytes(refreshed_));
          core_.backend_.check(
              core_.backend_.store().put(core_.column_, k, rocks::slice(refreshed_)), core_.what_);
        }
      }
      visit(k, p, end, f);
      return true;
    });
  }
  int column() const { return core_.column_; }

 private:
  void entryRow(const UK& key) {
    core_.buildRow(*this->ns_);
    rocks::appendSerde(core_.row_, key);
  }
  void removeKey(KvSlice k) {
    core_.backend_.check(core_.backend_.store().remove(core_.column_, k), core_.what_);
  }
  void visit(KvSlice k, const std::uint8_t* p, const std::uint8_t* end,
             const std::function<void(const UK&, const UV&)>& f) {
    if (k.size < prefix_size_) RocksBackendBase::corrupt(core_.what_);
    core_.decode(k.data + prefix_size_, k.data + k.size, iter_key_);
    core_.decode(p, end, iter_value_);
    f(iter_key_, iter_value_);
  }
  // Calls f(key, value) for the entries of the current key and namespace while it returns true.
  // The store may be changed meanwhile: the iterator reads a snapshot.
  template <class F>
  void scan(F&& f) {
    core_.buildRow(*this->ns_);
    prefix_size_ = core_.row_.size();
    rocks::prefixEnd(core_.row_, scan_end_);
    now_ = core_.ttl_.now();
    std::unique_ptr<KvIterator> it;
    core_.backend_.check(core_.backend_.store().scan(core_.column_, rocks::slice(core_.row_),
                                                     rocks::slice(scan_end_), it),
                         core_.what_);
    for (; it->valid(); it->next()) {
      if (!f(it->key(), it->value())) break;
    }
    core_.backend_.check(it->status(), core_.what_);
  }

  RocksStateCore<N> core_;
  UV value_{};  // get()'s result
  UK iter_key_{};
  UV iter_value_{};  // what forEach hands out
  std::string scan_end_;
  std::string refreshed_;
  std::size_t prefix_size_ = 0;
  std::int64_t now_ = 0;
};

}  // namespace weir::detail
