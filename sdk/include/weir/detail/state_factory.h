// Creating keyed state for the backend an operator runs with, and the RuntimeContext accessors that
// user functions call.
#pragma once

#include <memory>
#include <stdexcept>

#include "weir/context.h"
#include "weir/detail/heap_state.h"
#include "weir/detail/keyed_backend.h"

namespace weir::detail {

[[noreturn]] inline void backendUnavailable(StateBackendKind kind) {
  throw std::logic_error(std::string("state backend '") + stateBackendName(kind) +
                         "' cannot create this state");
}

template <class N, class V>
InternalValueState<N, V>& createState(KeyedBackendBase& b, const ValueStateDescriptor<V>& d) {
  if (b.kind() != StateBackendKind::kHeap) backendUnavailable(b.kind());
  return b.registerState<HeapValueState<N, V>>(d.name, StateKind::kValue, [&] {
    return std::make_unique<HeapValueState<N, V>>(static_cast<HeapBackendBase&>(b), d);
  });
}

template <class N, class V>
InternalListState<N, V>& createState(KeyedBackendBase& b, const ListStateDescriptor<V>& d) {
  if (b.kind() != StateBackendKind::kHeap) backendUnavailable(b.kind());
  return b.registerState<HeapListState<N, V>>(d.name, StateKind::kList, [&] {
    return std::make_unique<HeapListState<N, V>>(static_cast<HeapBackendBase&>(b), d);
  });
}

template <class N, class UK, class UV>
InternalMapState<N, UK, UV>& createState(KeyedBackendBase& b,
                                         const MapStateDescriptor<UK, UV>& d) {
  if (b.kind() != StateBackendKind::kHeap) backendUnavailable(b.kind());
  return b.registerState<HeapMapState<N, UK, UV>>(d.name, StateKind::kMap, [&] {
    return std::make_unique<HeapMapState<N, UK, UV>>(static_cast<HeapBackendBase&>(b), d);
  });
}

template <class N, class V, class F>
InternalReducingState<N, V>& createState(KeyedBackendBase& b,
                                         const ReducingStateDescriptor<V, F>& d) {
  if (b.kind() != StateBackendKind::kHeap) backendUnavailable(b.kind());
  return b.registerState<HeapReducingState<N, V, F>>(d.name, StateKind::kReducing, [&] {
    return std::make_unique<HeapReducingState<N, V, F>>(static_cast<HeapBackendBase&>(b), d);
  });
}

template <class N, class In, class F>
InternalAggregatingState<N, In, AccumulatorOf<F>, AggregateResultOf<F>>& createState(
    KeyedBackendBase& b, const AggregatingStateDescriptor<In, F>& d) {
  if (b.kind() != StateBackendKind::kHeap) backendUnavailable(b.kind());
  return b.registerState<HeapAggregatingState<N, In, F>>(d.name, StateKind::kAggregating, [&] {
    return std::make_unique<HeapAggregatingState<N, In, F>>(static_cast<HeapBackendBase&>(b), d);
  });
}

}  // namespace weir::detail

namespace weir {

inline detail::KeyedBackendBase& RuntimeContext::keyedBackend() const {
  if (keyed_backend_ == nullptr) {
    throw std::logic_error("keyed state is only available in functions on a keyed stream "
                           "(after keyBy), task '" + task_name_ + "'");
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
