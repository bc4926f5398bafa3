// The shapes of user functions, with readable compile errors for the wrong ones.
//
// Every operator accepts a lambda or a class. A class may name its method like Flink's interfaces
// (map, filter, flatMap, reduce, processElement, invoke) or use operator(); it may also declare
//   void open(const weir::RuntimeContext&)   called once per parallel instance before any record
//   void close()                             called once after the last record (also on failure)
// and, for checkpoints (Flink's CheckpointedFunction and CheckpointListener), on the task thread
// between records:
//   void snapshotState(const weir::CheckpointOptions&)   in the synchronous part of a checkpoint,
//                                        before the operator's state is written: bring operator
//                                        state (ctx.getOperatorListState) up to date here
//   void notifyCheckpointComplete(std::int64_t id)       checkpoint `id` (and every earlier one)
//                                        is durable for the whole job
//   void notifyCheckpointAborted(std::int64_t id)        checkpoint `id` was given up
// Sources, map, flatMap, filter, keyed process and keyed reduce functions, window process
// functions and sinks may declare them (a window's reduce or aggregate function is not asked). A
// sink may also declare
//   void endInput()                          all its input has arrived (before close)
// Each parallel instance gets its own copy of the function object given to the builder.
#pragma once

#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weir/collector.h"
#include "weir/context.h"

namespace weir {

template <class...>
inline constexpr bool kDependentFalse = false;

namespace fn_detail {

// Parameter types of a non-generic callable, for deducing output types from `Collector<R>&`.
template <class F>
struct CallTraits : CallTraits<decltype(&std::remove_cvref_t<F>::operator())> {};
template <class C, class R, class... A>
struct CallTraits<R (C::*)(A...) const> {
  using Args = std::tuple<A...>;
};
template <class C, class R, class... A>
struct CallTraits<R (C::*)(A...)> {
  using Args = std::tuple<A...>;
};
template <class C, class R, class... A>
struct CallTraits<R (C::*)(A...) const noexcept> {
  using Args = std::tuple<A...>;
};
template <class C, class R, class... A>
struct CallTraits<R (C::*)(A...) noexcept> {
  using Args = std::tuple<A...>;
};
template <class R, class... A>
struct CallTraits<R (*)(A...)> {
  using Args = std::tuple<A...>;
};

template <class F>
concept HasCallOperator = requires {
  &std::remove_cvref_t<F>::operator();
};

template <class P>
struct CollectorArg {
  using type = void;
};
template <class R>
struct CollectorArg<Collector<R>&> {
  using type = R;
};

// The R of the Collector<R>& parameter at position I of F's call operator, or void.
template <class F, std::size_t I>
struct CollectorOutput {
  using type = void;
};
template <class F, std::size_t I>
requires HasCallOperator<F> || std::is_function_v<std::remove_pointer_t<F>>
struct CollectorOutput<F, I> {
  using Args = typename CallTraits<F>::Args;
  using type = std::conditional_t<(I < std::tuple_size_v<Args>),
                                  typename CollectorArg<std::tuple_element_t<
                                      (I < std::tuple_size_v<Args> ? I : 0), Args>>::type,
                                  void>;
};

}  // namespace fn_detail

// Lifecycle hooks, called when the function declares them.
template <class F>
void openFunction(F& f, const RuntimeContext& ctx) {
  if constexpr (requires { f.open(ctx); }) f.open(ctx);
}
template <class F>
void closeFunction(F& f) {
  if constexpr (requires { f.close(); }) f.close();
}
template <class F>
void endInputFunction(F& f) {
  if constexpr (requires { f.endInput(); }) f.endInput();
}

// Checkpoint hooks, called when the function declares them.
template <class F>
void snapshotFunctionState(F& f, const CheckpointOptions& options) {
  if constexpr (requires { f.snapshotState(options); }) f.snapshotState(options);
}
template <class F>
void notifyFunctionCheckpointComplete(F& f, std::int64_t checkpoint_id) {
  if constexpr (requires { f.notifyCheckpointComplete(checkpoint_id); }) {
    f.notifyCheckpointComplete(checkpoint_id);
  }
}
template <class F>
void notifyFunctionCheckpointAborted(F& f, std::int64_t checkpoint_id) {
  if constexpr (requires { f.notifyCheckpointAborted(checkpoint_id); }) {
    f.notifyCheckpointAborted(checkpoint_id);
  }
}

// ---- map: R map(const T&) ----
template <class F, class T>
concept MapMethod = requires(F& f, const T& v) {
  f.map(v);
};
template <class F, class T>
concept MapFunction = MapMethod<F, T> || std::is_invocable_v<F&, const T&>;
template <class F, class T>
decltype(auto) callMap(F& f, const T& v) {
  if constexpr (MapMethod<F, T>) {
    return f.map(v);
  } else {
    return f(v);
  }
}
template <class F, class T>
using MapResult =
    std::remove_cvref_t<decltype(callMap(std::declval<F&>(), std::declval<const T&>()))>;

// ---- filter: bool filter(const T&) ----
template <class F, class T>
concept FilterMethod = requires(F& f, const T& v) {
  { f.filter(v) } -> std::convertible_to<bool>;
};
template <class F, class T>
concept FilterFunction = FilterMethod<F, T> || std::is_invocable_r_v<bool, F&, const T&>;
template <class F, class T>
bool callFilter(F& f, const T& v) {
  if constexpr (FilterMethod<F, T>) {
    return f.filter(v);
  } else {
    return f(v);
  }
}

// ---- flatMap: void flatMap(const T&, Collector<R>&) ----
template <class F, class T, class R>
concept FlatMapMethod = requires(F& f, const T& v, Collector<R>& out) {
  f.flatMap(v, out);
};
template <class F, class T, class R>
concept FlatMapFunction = FlatMapMethod<F, T, R> || std::is_invocable_v < F&,
        const T&, Collector<R>
& > ;
template <class F, class T, class R>
void callFlatMap(F& f, const T& v, Collector<R>& out) {
  if constexpr (FlatMapMethod<F, T, R>) {
    f.flatMap(v, out);
  } else {
    f(v, out);
  }
}
template <class F>
struct FlatMapMethodOutput {
  using type = void;
};
template <class F>
requires requires {
  &F::flatMap;
}
struct FlatMapMethodOutput<F> {
  using type = typename fn_detail::CollectorArg<
      std::tuple_element_t<1, typename fn_detail::CallTraits<decltype(&F::flatMap)>::Args>>::type;
};

// ---- reduce: T reduce(const T& accumulated, const T& value) ----
template <class F, class T>
concept ReduceMethod = requires(F& f, const T& a, const T& b) {
  { f.reduce(a, b) } -> std::convertible_to<T>;
};
template <class F, class T>
concept ReduceFunction = ReduceMethod<F, T> || std::is_invocable_r_v<T, F&, const T&, const T&>;
template <class F, class T>
T callReduce(F& f, const T& a, const T& b) {
  if constexpr (ReduceMethod<F, T>) {
    return f.reduce(a, b);
  } else {
    return f(a, b);
  }
}

// ---- keyed process: void processElement(const T&, KeyedContext<K>&, Collector<R>&) ----
template <class F, class T, class K, class R>
concept ProcessMethod = requires(F& f, const T& v, KeyedContext<K>& ctx, Collector<R>& out) {
  f.processElement(v, ctx, out);
};
template <class F, class T, class K, class R>
concept KeyedProcessFunction = ProcessMethod<F, T, K, R> || std::is_invocable_v < F&,
        const T&, KeyedContext<K>
&, Collector<R>& > ;
template <class F, class T, class K, class R>
void callProcess(F& f, const T& v, KeyedContext<K>& ctx, Collector<R>& out) {
  if constexpr (ProcessMethod<F, T, K, R>) {
    f.processElement(v, ctx, out);
  } else {
    f(v, ctx, out);
  }
}
template <class F>
struct ProcessMethodOutput {
  using type = void;
};
template <class F>
requires requires {
  &F::processElement;
}
struct ProcessMethodOutput<F> {
  using type = typename fn_detail::CollectorArg<std::tuple_element_t<
      2, typename fn_detail::CallTraits<decltype(&F::processElement)>::Args>>::type;
};

// ---- sink: void invoke(const T&) ----
template <class F, class T>
concept InvokeMethod = requires(F& f, const T& v) {
  f.invoke(v);
};
template <class F, class T>
concept SinkFunction = InvokeMethod<F, T> || std::is_invocable_v<F&, const T&>;
template <class F, class T>
void callSink(F& f, const T& v) {
  if constexpr (InvokeMethod<F, T>) {
    f.invoke(v);
  } else {
    f(v);
  }
}

// ---- key selector: K getKey(const T&) ----
template <class F, class T>
concept KeySelectorMethod = requires(F& f, const T& v) {
  f.getKey(v);
};
template <class F, class T>
concept KeySelector = KeySelectorMethod<F, T> || std::is_invocable_v<F&, const T&>;
template <class F, class T>
decltype(auto) callKey(F& f, const T& v) {
  if constexpr (KeySelectorMethod<F, T>) {
    return f.getKey(v);
  } else {
    return f(v);
  }
}
template <class F, class T>
using KeyOf = std::remove_cvref_t<decltype(callKey(std::declval<F&>(), std::declval<const T&>()))>;

// ---- sources ----
// A source function emits records when polled. One copy runs per parallel subtask; it decides from
// its RuntimeContext (subtask index, parallelism) which part of the input is its own.
//   weir::SourceStatus pollNext(weir::Collector<T>& out)   emit zero or more records, best no
//                                                           more than out.pollBudget()
//   bool bounded() const                                    optional; true when it ends by itself
// Bounded sources return kEndOfInput once exhausted; unbounded ones normally never do.
template <class F, class T>
concept SourceFunction = requires(F& f, Collector<T>& out) {
  { f.pollNext(out) } -> std::same_as<SourceStatus>;
};
template <class F>
bool isBoundedSource(const F& f) {
  if constexpr (requires { f.bounded(); }) {
    return f.bounded();
  } else {
    return true;
  }
}

}  // namespace weir
