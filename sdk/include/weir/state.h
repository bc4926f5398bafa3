// Keyed state, as in Flink: a keyed function declares its state with named descriptors in `open`
//
//   void open(const weir::RuntimeContext& ctx) {
//     count_ = &ctx.getState(weir::ValueStateDescriptor<long>("count"));
//   }
//
// and every access then reads or writes the value of the key of the record (or timer) being
// processed. State handles stay valid until `close`. State is partitioned by key group (see
// key_groups.h): the unit of ownership, snapshotting and rescaling.
//
// Backends (chosen per job, `state.backend: heap | rocksdb`): on the heap, values stay typed C++
// objects (no serialisation per access); with RocksDB, keys and values are serialised with
// Serde<T> into the TaskManager's RocksDB instance for this operator. Both give the same results.
//
// Pointers and references returned by reads (get(), ListState::get()) stay valid until the next
// access to the same state.
//
// ListState also serves operator state, which is not keyed: RuntimeContext::getOperatorListState
// and getUnionListState (see detail/operator_state.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace weir {

// Time-to-live of state entries, measured in processing time (Flink's StateTtlConfig).
struct StateTtlConfig {
  enum class UpdateType : std::uint8_t {
    kOnCreateAndWrite,  // writes refresh an entry's life
    kOnReadAndWrite,    // reads refresh it too
  };
  enum class Visibility : std::uint8_t {
    kNeverReturnExpired,           // an expired entry reads as absent
    kReturnExpiredIfNotCleanedUp,  // an expired entry may be returned until it is removed
  };

  std::chrono::milliseconds ttl{0};
  UpdateType update_type = UpdateType::kOnCreateAndWrite;
  Visibility visibility = Visibility::kNeverReturnExpired;

  static StateTtlConfig of(std::chrono::milliseconds ttl) {
    StateTtlConfig c;
    c.ttl = ttl;
    return c;
  }
  StateTtlConfig& setUpdateType(UpdateType t) {
    update_type = t;
    return *this;
  }
  StateTtlConfig& setStateVisibility(Visibility v) {
    visibility = v;
    return *this;
  }
  bool enabled() const { return ttl.count() > 0; }
};

enum class StateKind : std::uint8_t { kValue, kList, kMap, kReducing, kAggregating };

inline const char* stateKindName(StateKind k) {
  switch (k) {
    case StateKind::kValue:
      return "value";
    case StateKind::kList:
      return "list";
    case StateKind::kMap:
      return "map";
    case StateKind::kReducing:
      return "reducing";
    case StateKind::kAggregating:
      return "aggregating";
  }
  return "unknown";
}

// What every descriptor has.
struct StateDescriptorBase {
  explicit StateDescriptorBase(std::string n) : name(std::move(n)) {
    if (name.empty()) throw std::invalid_argument("state descriptors need a non-empty name");
  }
  std::string name;
  StateTtlConfig ttl;
  void enableTimeToLive(const StateTtlConfig& config) { ttl = config; }
};

// ---- value ----

template <class V>
class ValueState {
 public:
  virtual ~ValueState() = default;
  // The current key's value, or null when it has none.
  virtual const V* get() = 0;
  virtual void update(const V& value) = 0;
  virtual void clear() = 0;

  std::optional<V> value() {
    const V* v = get();
    return v ? std::optional<V>(*v) : std::nullopt;
  }
  V valueOr(V fallback) {
    const V* v = get();
    return v ? *v : std::move(fallback);
  }
};

template <class V>
struct ValueStateDescriptor : StateDescriptorBase {
  using StateType = ValueState<V>;
  static constexpr StateKind kKind = StateKind::kValue;
  explicit ValueStateDescriptor(std::string n) : StateDescriptorBase(std::move(n)) {}
};

// ---- list ----

template <class V>
class ListState {
 public:
  virtual ~ListState() = default;
  // The current key's elements in insertion order (empty when none).
  virtual const std::vector<V>& get() = 0;
  virtual void add(const V& value) = 0;
  virtual void addAll(const std::vector<V>& values) = 0;
  // Replaces the elements.
  virtual void update(const std::vector<V>& values) = 0;
  virtual void clear() = 0;
};

template <class V>
struct ListStateDescriptor : StateDescriptorBase {
  using StateType = ListState<V>;
  static constexpr StateKind kKind = StateKind::kList;
  explicit ListStateDescriptor(std::string n) : StateDescriptorBase(std::move(n)) {}
};

// ---- map ----

template <class UK, class UV>
class MapState {
 public:
  virtual ~MapState() = default;
  virtual const UV* get(const UK& key) = 0;
  virtual void put(const UK& key, const UV& value) = 0;
  virtual void remove(const UK& key) = 0;
  virtual bool contains(const UK& key) = 0;
  virtual bool isEmpty() = 0;
  virtual void clear() = 0;
  // Calls f(key, value) for every entry (in no particular order on the heap, in key-byte order
  // with RocksDB). The map must not be modified from inside f.
  virtual void forEach(const std::function<void(const UK&, const UV&)>& f) = 0;

  std::vector<std::pair<UK, UV>> entries() {
    std::vector<std::pair<UK, UV>> out;
    forEach([&](const UK& k, const UV& v) { out.emplace_back(k, v); });
    return out;
  }
};

template <class UK, class UV>
struct MapStateDescriptor : StateDescriptorBase {
  using StateType = MapState<UK, UV>;
  static constexpr StateKind kKind = StateKind::kMap;
  explicit MapStateDescriptor(std::string n) : StateDescriptorBase(std::move(n)) {}
};

// ---- reducing: one value, combined with every add ----

template <class V>
class ReducingState {
 public:
  virtual ~ReducingState() = default;
  virtual const V* get() = 0;
  virtual void add(const V& value) = 0;
  virtual void clear() = 0;
};

// F: V reduce(const V& accumulated, const V& value) (a lambda or a class with reduce()).
template <class V, class F>
struct ReducingStateDescriptor : StateDescriptorBase {
  using StateType = ReducingState<V>;
  static constexpr StateKind kKind = StateKind::kReducing;
  ReducingStateDescriptor(std::string n, F f) : StateDescriptorBase(std::move(n)), fn(std::move(f)) {}
  F fn;
};

// ---- aggregating: an accumulator, updated with every add ----

// An incremental aggregation (Flink's AggregateFunction), a class with
//   Acc createAccumulator()
//   void add(const In& value, Acc& acc)        or  Acc add(const In& value, Acc acc)
//   Out getResult(const Acc& acc)
//   void merge(const Acc& from, Acc& into)     or  Acc merge(const Acc& a, const Acc& b)
// merge is needed only where accumulators combine (session windows, sliding window slices).
template <class F>
using AccumulatorOf = std::remove_cvref_t<decltype(std::declval<F&>().createAccumulator())>;

template <class F, class In>
void aggregateAdd(F& f, const In& value, AccumulatorOf<F>& acc) {
  if constexpr (std::is_void_v<decltype(f.add(value, acc))>) {
    f.add(value, acc);
  } else {
    acc = f.add(value, std::move(acc));
  }
}

template <class F>
void aggregateMerge(F& f, const AccumulatorOf<F>& from, AccumulatorOf<F>& into) {
  if constexpr (requires(AccumulatorOf<F>& a) {
                  { f.merge(from, a) } -> std::same_as<void>;
                }) {
    f.merge(from, into);
  } else {
    into = f.merge(into, from);
  }
}

template <class F>
using AggregateResultOf = std::remove_cvref_t<decltype(std::declval<F&>().getResult(
    std::declval<const AccumulatorOf<F>&>()))>;

template <class In, class Out>
class AggregatingState {
 public:
  virtual ~AggregatingState() = default;
  // The result for the current key, or nullopt when nothing was added.
  virtual std::optional<Out> get() = 0;
  virtual void add(const In& value) = 0;
  virtual void clear() = 0;
};

template <class In, class F>
struct AggregatingStateDescriptor : StateDescriptorBase {
  using Out = AggregateResultOf<F>;
  using StateType = AggregatingState<In, Out>;
  static constexpr StateKind kKind = StateKind::kAggregating;
  AggregatingStateDescriptor(std::string n, F f)
      : StateDescriptorBase(std::move(n)), fn(std::move(f)) {}
  F fn;
};

}  // namespace weir
