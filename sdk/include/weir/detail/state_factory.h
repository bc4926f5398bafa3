// Creating keyed state for the backend an operator runs with, and the RuntimeContext accessors that
// user functions call.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "weir/context.h"
#include "weir/detail/heap_state.h"
#include "weir/detail/keyed_backend.h"
#include "weir/detail/rocks_state.h"

namespace weir::detail {

[[noreturn]] inline void backendUnavailable(StateBackendKind kind) {
  throw std::logic_error(std::string("state backend '") + stateBackendName(kind) +
                         "' cannot create this state");
}

[[noreturn]] inline void notSerializable(const std::string& name) {
  throw std::logic_error("keyed state '" + name +
                         "' cannot live in the rocksdb state backend: its value (or map key, or "
                         "namespace) type has no weir::Serde (declare WEIR_SERDE_FIELDS or a "
                         "Serde specialisation, or run the job with state.backend=heap)");
}

// The heap state `Heap` or the RocksDB state `Rocks` for backend `b`, registered under the
// descriptor's name. A RocksDB state needs Serde for the types it stores (`serializable`); state
// types without one still compile and run on the heap.
template <class Interface, class Heap, class Rocks, bool serializable, class D>
Interface& createFor(KeyedBackendBase& b, const D& d) {
  switch (b.kind()) {
    case StateBackendKind::kHeap:
      return static_cast<Interface&>(b.registerState<Heap>(d.name, D::kKind, [&] {
        return std::make_unique<Heap>(static_cast<HeapBackendBase&>(b), d);
      }));
    case StateBackendKind::kRocksDb:
      if constexpr (serializable) {
        return static_cast<Interface&>(b.registerState<Rocks>(d.name, D::kKind, [&] {
          return std::make_unique<Rocks>(static_cast<RocksBackendBase&>(b), d);
        }));
      } else {
        notSerializable(d.name);
      }
  }
  backendUnavailable(b.kind());
}

template <class N, class V>
InternalValueState<N, V>& createState(KeyedBackendBase& b, const ValueStateDescriptor<V>& d) {
  return createFor < InternalValueState<N, V>, HeapValueState<N, V>, RocksValueState<N, V>,
         Serializable<N> && Serializable < V >> (b, d);
}

template <class N, class V>
InternalListState<N, V>& createState(KeyedBackendBase& b, const ListStateDescriptor<V>& d) {
  return createFor < InternalListState<N, V>, HeapListState<N, V>, RocksListState<N, V>,
         Serializable<N> && Serializable < V >> (b, d);
}

template <class N, class UK, class UV>
InternalMapState<N, UK, UV>& createState(KeyedBackendBase& b, const MapStateDescriptor<UK, UV>& d) {
  return createFor < InternalMapState<N, UK, UV>, HeapMapState<N, UK, UV>, RocksMapState<N, UK, UV>,
         Serializable<N> && Serializable<UK> && Serializable < UV >> (b, d);
}

template <class N, class V, class F>
InternalReducingState<N, V>& createState(KeyedBackendBase& b,
                                         const ReducingStateDescriptor<V, F>& d) {
  return createFor < InternalReducingState<N, V>, HeapReducingState<N, V, F>,
         RocksReducingState<N, V, F>, Serializable<N> && Serializable < V >> (b, d);
}

template <class N, class In, class F>
InternalAggregatingState<N, In, AccumulatorOf<F>, AggregateResultOf<F>>& createState(
    KeyedBackendBase& b, const AggregatingStateDescriptor<In, F>& d) {
  return createFor < InternalAggregatingState<N, In, AccumulatorOf<F>, AggregateResultOf<F>>,
         HeapAggregatingState<N, In, F>, RocksAggregatingState<N, In, F>,
         Serializable<N> && Serializable < AccumulatorOf < F >>> (b, d);
}

}  // namespace weir::detail

namespace weir {

inline detail::KeyedBackendBase& RuntimeContext::keyedBackend() const {
  if (keyed_backend_ == nullptr) {
    throw std::logic_error(
        "keyed state is only available in functions on a keyed stream "
        "(after keyBy), task '" +
        task_name_ + "'");
  }
  return *keyed_backend_;
}

template <class V>
ValueState<V>& RuntimeContext::getState(const ValueStateDescriptor<V>& d) const {
  return detail::createState<VoidNamespace>(keyedBackend(), d);
}
template <class V>
ListState<V>& RuntimeContext::getListState(const ListStateDescriptor<V>& d) const {
  return detail::createState<VoidNamespace>(keyedBackend(), d);
}
template <class UK, class UV>
MapState<UK, UV>& RuntimeContext::getMapState(const MapStateDescriptor<UK, UV>& d) const {
  return detail::createState<VoidNamespace>(keyedBackend(), d);
}
template <class V, class F>
ReducingState<V>& RuntimeContext::getReducingState(const ReducingStateDescriptor<V, F>& d) const {
  return detail::createState<VoidNamespace>(keyedBackend(), d);
}
template <class In, class F>
AggregatingState<In, AggregateResultOf<F>>& RuntimeContext::getAggregatingState(
    const AggregatingStateDescriptor<In, F>& d) const {
  return detail::createState<VoidNamespace>(keyedBackend(), d);
}

}  // namespace weir
