// The job-builder API, in the spirit of Flink's DataStream API.
//
//   void build(weir::JobBuilder& job) {
//     job.readTextFile(job.args().get("input", "words.txt"))
//         .flatMap([](const std::string& line, weir::Collector<std::string>& out) { ... })
//         .map([](const std::string& w) { return std::pair<std::string, long>(w, 1); })
//         .keyBy([](const auto& p) { return p.first; })
//         .reduce([](const auto& a, const auto& b) { return std::pair(a.first, a.second +
//         b.second); }) .name("count") .print();
//   }
//
// The builder must be deterministic: given the same job arguments it must build the same graph,
// because every TaskManager runs it again to obtain the operators of its subtasks.
//
// name(), uid(), parallelism(), maxParallelism() and startNewChain() configure the operator that
// produced the stream they are called on. Misuse throws weir::JobDefinitionError, which fails the
// build with its message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weir/collector.h"
#include "weir/detail/builder_state.h"
#include "weir/detail/chain.h"
#include "weir/detail/exchange.h"
#include "weir/detail/keyed_operators.h"
#include "weir/detail/operators.h"
#include "weir/detail/watermark_operator.h"
#include "weir/detail/window_operator.h"
#include "weir/functions.h"
#include "weir/key_groups.h"
#include "weir/serde.h"
#include "weir/sinks.h"
#include "weir/sources.h"
#include "weir/two_phase_commit.h"
#include "weir/watermarks.h"
#include "weir/windows.h"

namespace weir {

template <class T>
class DataStream;
template <class T, class KeyF>
class KeyedStream;
template <class T, class KeyF, class A, class Tr, class Ev, bool kCustomTrigger>
class WindowedStream;

namespace detail {

// name/uid/parallelism setters shared by streams and sinks.
template <class Derived>
class VertexConfig {
 public:
  Derived& name(std::string n) {
    vertexOrThrow("name").name = std::move(n);
    return self();
  }
  Derived& uid(std::string u) {
    if (u.empty()) throw JobDefinitionError("uid must not be empty");
    VertexDef& v = vertexOrThrow("uid");
    v.uid = std::move(u);
    v.uid_set_by_user = true;
    return self();
  }
  Derived& parallelism(int p) {
    if (p < 1) {
      throw JobDefinitionError("parallelism must be at least 1, got " + std::to_string(p));
    }
    vertexOrThrow("parallelism").parallelism = p;
    return self();
  }
  Derived& maxParallelism(int p) {
    if (p < 1 || p > kUpperBoundMaxParallelism) {
      throw JobDefinitionError("max parallelism must be in [1, " +
                               std::to_string(kUpperBoundMaxParallelism) + "], got " +
                               std::to_string(p));
    }
    vertexOrThrow("maxParallelism").max_parallelism = p;
    return self();
  }
  // Do not chain this operator to its input.
  Derived& startNewChain() {
    vertexOrThrow("startNewChain").start_new_chain = true;
    return self();
  }

 protected:
  VertexConfig(BuilderState* state, std::vector<int> producers)
      : state_(state), producers_(std::move(producers)) {}

  VertexDef& vertexOrThrow(const char* what) {
    if (producers_.size() != 1) {
      throw JobDefinitionError(std::string(what) +
                               "() applies to one operator, but this stream is a union of " +
                               std::to_string(producers_.size()) + " streams");
    }
    return state_->vertex(producers_[0]);
  }
  Derived& self() { return static_cast<Derived&>(*this); }

  BuilderState* state_;
  std::vector<int> producers_;
};

template <class T, class KeyF>
WriterFactory writerFactory(KeyF key) {
  return [key](OutputGate& gate, const NetworkOutputSpec& spec, int subtask) {
    return std::unique_ptr<BatchConsumerBase>(
        std::make_unique<ExchangeWriter<T, KeyF>>(gate, spec, subtask, key));
  };
}

template <class T>
constexpr void checkRecordType() {
  static_assert(Serializable<T>,
                "records must have a weir::Serde<T>: use a trivially copyable type, std::string, a "
                "std container of such, or a struct with WEIR_SERDE_FIELDS(...)");
  static_assert(std::is_default_constructible_v<T> && std::is_copy_assignable_v<T>,
                "records must be default-constructible and copy-assignable");
}

}  // namespace detail

// The result of a sink; configures the sink vertex.
class DataStreamSink : public detail::VertexConfig<DataStreamSink> {
 public:
  DataStreamSink(detail::BuilderState* state, int id) : VertexConfig(state, {id}) {}
  int id() const { return producers_[0]; }
};

template <class T>
class DataStream : public detail::VertexConfig<DataStream<T>> {
  using Base = detail::VertexConfig<DataStream<T>>;

 public:
  using value_type = T;

  DataStream(detail::BuilderState* state, std::vector<int> producers,
             Partitioner partitioner = Partitioner::kDefault, std::string side_output = {})
      : Base(state, std::move(producers)),
        partitioner_(partitioner),
        side_output_(std::move(side_output)) {
    detail::checkRecordType<T>();
  }

  // R map(const T&)
  template <class F>
  auto map(F fn) {
    if constexpr (!MapFunction<F, T>) {
      static_assert(kDependentFalse<F>,
                    "map(f): f must be callable as `R f(const T&)` (or a class with `R map(const "
                    "T&)`) where T is the stream's record type");
      return *this;
    } else {
      using R = MapResult<F, T>;
      static_assert(!std::is_void_v<R>,
                    "map(f): f returns void; use flatMap to emit zero or more records");
      return DataStream<R>(this->state_, {addOneInput<R>("map", "Map", false, [fn] {
                             return std::make_unique<detail::MapOperator<T, R, F>>(fn);
                           })});
    }
  }

  // void flatMap(const T&, Collector<R>&); R is deduced from the Collector parameter of a
  // non-generic lambda or class, or given explicitly: flatMap<R>(f).
  template <class R = void, class F>
  auto flatMap(F fn) {
    using Deduced = std::conditional_t<
        !std::is_void_v<R>, R,
        std::conditional_t<!std::is_void_v<typename FlatMapMethodOutput<F>::type>,
                           typename FlatMapMethodOutput<F>::type,
                           typename fn_detail::CollectorOutput<F, 1>::type>>;
    if constexpr (std::is_void_v<Deduced>) {
      static_assert(kDependentFalse<F>,
                    "flatMap(f): cannot deduce the output type; write flatMap<R>(f) or give f the "
                    "signature `void f(const T&, weir::Collector<R>&)`");
      return *this;
    } else if constexpr (!FlatMapFunction<F, T, Deduced>) {
      static_assert(kDependentFalse<F>,
                    "flatMap(f): f must be callable as `void f(const T&, weir::Collector<R>&)` "
                    "(or a class with `void flatMap(const T&, weir::Collector<R>&)`)");
      return *this;
    } else {
      return DataStream<Deduced>(
          this->state_, {addOneInput<Deduced>("flat_map", "Flat Map", false, [fn] {
            return std::make_unique<detail::FlatMapOperator<T, Deduced, F>>(fn);
          })});
    }
  }

  // bool filter(const T&)
  template <class F>
  DataStream<T> filter(F fn) {
    static_assert(FilterFunction<F, T>,
                  "filter(f): f must be callable as `bool f(const T&)` (or a class with `bool "
                  "filter(const T&)`)");
    if constexpr (FilterFunction<F, T>) {
      return DataStream<T>(this->state_, {addOneInput<T>("filter", "Filter", false, [fn] {
                             return std::make_unique<detail::FilterOperator<T, F>>(fn);
                           })});
    }
    return *this;
  }

  // Gives records event timestamps and generates watermarks (see weir/watermarks.h). Chained to
  // its input, so applied right after a source it runs in the source's task.
  template <class G, class A>
  DataStream<T> assignTimestampsAndWatermarks(ConfiguredWatermarkStrategy<T, G, A> strategy) {
    return DataStream<T>(this->state_,
                         {addOneInput<T>("timestamps_watermarks", "Timestamps/Watermarks", false,
                                         [strategy] {
                                           return std::make_unique<
                                               detail::TimestampsAndWatermarksOperator<T, G, A>>(
                                               strategy);
                                         })});
  }

  // K getKey(const T&): partitions the stream by key for keyed operators.
  template <class F>
  auto keyBy(F key) {
    if constexpr (!KeySelector<F, T>) {
      static_assert(kDependentFalse<F>,
                    "keyBy(f): f must be callable as `K f(const T&)` (or a class with `K "
                    "getKey(const T&)`)");
      return *this;
    } else {
      using K = KeyOf<F, T>;
      static_assert(Serializable<K> && std::equality_comparable<K>,
                    "keyBy(f): the key type must be serialisable (weir::Serde) and comparable");
      return KeyedStream<T, F>(*this, std::move(key));
    }
  }

  // The records this stream's operator emitted to side output `tag` (see OutputTag).
  template <class X>
  DataStream<X> getSideOutput(const OutputTag<X>& tag) const {
    if (this->producers_.size() != 1) {
      throw JobDefinitionError("getSideOutput applies to one operator, not to a union");
    }
    if (tag.id().empty()) throw JobDefinitionError("side output tags need a non-empty id");
    return DataStream<X>(this->state_, this->producers_, Partitioner::kDefault, tag.id());
  }

  // The union of this stream with others of the same type (Flink's union).
  template <class... Others>
  DataStream<T> unionWith(const Others&... others) const {
    static_assert((std::is_same_v<Others, DataStream<T>> && ...),
                  "unionWith: every stream must have the same record type");
    std::vector<int> all = this->producers_;
    for (const DataStream<T>* o : {&others...}) {
      if (o->state_ != this->state_) throw JobDefinitionError("unionWith: streams of another job");
      if (o->partitioner_ != partitioner_) {
        throw JobDefinitionError("unionWith: streams must use the same partitioning");
      }
      if (o->side_output_ != side_output_) {
        throw JobDefinitionError("unionWith: side outputs cannot be united with other streams");
      }
      all.insert(all.end(), o->producers_.begin(), o->producers_.end());
    }
    return DataStream<T>(this->state_, std::move(all), partitioner_);
  }

  DataStream<T> rebalance() const { return withPartitioner(Partitioner::kRebalance); }
  DataStream<T> broadcast() const { return withPartitioner(Partitioner::kBroadcast); }
  DataStream<T> forward() const { return withPartitioner(Partitioner::kForward); }

  // void invoke(const T&), or a class derived from weir::TwoPhaseCommitSink<T, Txn> (exactly-once
  // output, see weir/two_phase_commit.h).
  template <class F>
  DataStreamSink addSink(F fn, std::string name = "Sink") {
    if constexpr (TwoPhaseCommitSinkClass<F>) {
      static_assert(std::is_same_v<typename F::RecordType, T>,
                    "addSink(sink): the TwoPhaseCommitSink's record type is not the stream's");
      using Fn = detail::TwoPhaseCommitFunction<F>;
      const int id = addOneInput<void>("sink", std::move(name), false, [fn] {
        return std::make_unique<detail::SinkOperator<T, Fn>>(Fn(fn));
      });
      return DataStreamSink(this->state_, id);
    } else {
      static_assert(SinkFunction<F, T>,
                    "addSink(f): f must be callable as `void f(const T&)` (or a class with `void "
                    "invoke(const T&)`)");
      const int id = addOneInput<void>("sink", std::move(name), false, [fn] {
        return std::make_unique<detail::SinkOperator<T, F>>(fn);
      });
      return DataStreamSink(this->state_, id);
    }
  }

  DataStreamSink print() { return addSink(PrintSink<T>{}, "Print to Std. Out"); }

  // --- SDK-internal ---
  detail::BuilderState* builderState() const { return this->state_; }

  // Adds a vertex consuming this stream; `make` creates its operator for one subtask.
  template <class Out, class Make, class KeyF = detail::NoKeySelector>
  int addOneInput(std::string op_type, std::string name, bool keyed, Make make,
                  Partitioner partitioner = Partitioner::kDefault, KeyF key = {},
                  bool has_key = false) {
    VertexDef def;
    def.op_type = std::move(op_type);
    def.name = std::move(name);
    def.kind = std::is_void_v<Out> ? VertexKind::kSink : VertexKind::kOperator;
    def.keyed = keyed;
    const int id = this->state_->template addNode<T>(std::move(def), std::move(make));
    const Partitioner p = partitioner == Partitioner::kDefault ? partitioner_ : partitioner;
    for (int source : this->producers_) {
      detail::EdgeNode e;
      e.def.id = static_cast<int>(this->state_->edges.size());
      e.def.source = source;
      e.def.target = id;
      e.def.partitioner = p;
      e.def.side_output = side_output_;
      e.has_key = has_key;
      e.make_writer = detail::writerFactory<T, KeyF>(key);
      if (!side_output_.empty()) {
        e.make_side_output = [tag = side_output_](BatchConsumerBase* consumer) {
          return std::unique_ptr<detail::SideOutputBase>(std::make_unique<detail::SideOutput<T>>(
              tag, static_cast<BatchConsumer<T>*>(consumer)));
        };
      }
      this->state_->edges.push_back(std::move(e));
    }
    return id;
  }

 private:
  template <class U>
  friend class DataStream;

  DataStream<T> withPartitioner(Partitioner p) const {
    return DataStream<T>(this->state_, this->producers_, p, side_output_);
  }

  Partitioner partitioner_;
  std::string side_output_;  // this stream is that side output of its producer
};

// A stream partitioned by key; its operators see all records of a key in one subtask.
template <class T, class KeyF>
class KeyedStream {
 public:
  using Key = KeyOf<KeyF, T>;

  KeyedStream(DataStream<T> input, KeyF key) : input_(std::move(input)), key_(std::move(key)) {}

  // Running reduce per key: T reduce(const T& accumulated, const T& value); emits the new aggregate
  // for every record.
  template <class F>
  DataStream<T> reduce(F fn) {
    static_assert(
        ReduceFunction<F, T>,
        "reduce(f): f must be callable as `T f(const T& accumulated, const T& value)` (or "
        "a class with `T reduce(const T&, const T&)`)");
    KeyF key = key_;
    const int id = input_.template addOneInput<T>(
        "keyed_reduce", "Keyed Reduce", true,
        [key, fn] {
          return std::make_unique<detail::KeyedReduceOperator<T, Key, KeyF, F>>(key, fn);
        },
        Partitioner::kHash, key_, true);
    return DataStream<T>(stateOf(), {id});
  }

  // void processElement(const T&, KeyedContext<K>&, Collector<R>&); R deduced like flatMap's, or
  // given explicitly: process<R>(f).
  template <class R = void, class F>
  auto process(F fn) {
    using Deduced = std::conditional_t<
        !std::is_void_v<R>, R,
        std::conditional_t<!std::is_void_v<typename ProcessMethodOutput<F>::type>,
                           typename ProcessMethodOutput<F>::type,
                           typename fn_detail::CollectorOutput<F, 2>::type>>;
    if constexpr (std::is_void_v<Deduced>) {
      static_assert(kDependentFalse<F>,
                    "process(f): cannot deduce the output type; write process<R>(f) or give f the "
                    "signature `void f(const T&, weir::KeyedContext<K>&, weir::Collector<R>&)`");
      return input_;
    } else if constexpr (!KeyedProcessFunction<F, T, Key, Deduced>) {
      static_assert(kDependentFalse<F>,
                    "process(f): f must be callable as `void f(const T&, weir::KeyedContext<K>&, "
                    "weir::Collector<R>&)` (or a class with that processElement)");
      return input_;
    } else {
      KeyF key = key_;
      const int id = input_.template addOneInput<Deduced>(
          "keyed_process", "Keyed Process", true,
          [key, fn] {
            return std::make_unique<detail::KeyedProcessOperator<T, Key, Deduced, KeyF, F>>(key,
                                                                                            fn);
          },
          Partitioner::kHash, key_, true);
      return DataStream<Deduced>(stateOf(), {id});
    }
  }

  // Windows of each key (see weir/windows.h), evaluated by the assigner's default trigger unless
  // trigger() replaces it.
  template <class A>
  WindowedStream<T, KeyF, A, typename A::DefaultTrigger, NoEvictor, false> window(A assigner) const {
    return {input_, key_, std::move(assigner), typename A::DefaultTrigger{}, NoEvictor{}, {}};
  }
  // Tumbling count windows: every `size` records of a key.
  auto countWindow(std::int64_t size) const {
    return window(GlobalWindows::create()).trigger(PurgingTrigger<CountTrigger>::of(
        CountTrigger::of(size)));
  }
  // Sliding count windows: the last `size` records of a key, every `slide` records.
  auto countWindow(std::int64_t size, std::int64_t slide) const {
    if (size <= 0) throw JobDefinitionError("countWindow: size must be positive");
    return window(GlobalWindows::create())
        .evictor(CountEvictor::of(static_cast<std::size_t>(size)))
        .trigger(CountTrigger::of(slide));
  }

 private:
  detail::BuilderState* stateOf() const { return input_.builderState(); }

  DataStream<T> input_;
  KeyF key_;
};

namespace detail {
template <class A>
inline constexpr bool kIsSlidingAssigner = std::is_same_v<A, SlidingEventTimeWindows> ||
                                          std::is_same_v<A, SlidingProcessingTimeWindows>;

// The R of a process window function's Collector<R>& (its fourth parameter), or void.
template <class F>
struct ProcessWindowOutput {
  using type = typename fn_detail::CollectorOutput<F, 3>::type;
};
template <class F>
requires requires { &F::process; }
struct ProcessWindowOutput<F> {
  using type = typename fn_detail::CollectorArg<std::tuple_element_t<
      3, typename fn_detail::CallTraits<decltype(&F::process)>::Args>>::type;
};
}  // namespace detail

// A keyed stream cut into windows: configure trigger, evictor, lateness and late output, then
// finish with a window function (reduce, aggregate or process).
template <class T, class KeyF, class A, class Tr, class Ev, bool kCustomTrigger>
class WindowedStream {
 public:
  using Key = KeyOf<KeyF, T>;
  using Window = typename A::Window;

  WindowedStream(DataStream<T> input, KeyF key, A assigner, Tr trigger, Ev evictor,
                 detail::WindowSettings settings)
      : input_(std::move(input)),
        key_(std::move(key)),
        assigner_(std::move(assigner)),
        trigger_(std::move(trigger)),
        evictor_(std::move(evictor)),
        settings_(std::move(settings)) {}

  template <class NewTr>
  WindowedStream<T, KeyF, A, NewTr, Ev, true> trigger(NewTr t) const {
    return {input_, key_, assigner_, std::move(t), evictor_, settings_};
  }
  template <class NewEv>
  WindowedStream<T, KeyF, A, Tr, NewEv, kCustomTrigger> evictor(NewEv e) const {
    return {input_, key_, assigner_, trigger_, std::move(e), settings_};
  }
  // Event-time windows keep their state this long after the watermark passed their end, and
  // fire again for every record that still reaches them.
  WindowedStream& allowedLateness(std::chrono::milliseconds lateness) {
    if (lateness.count() < 0) throw JobDefinitionError("allowedLateness must not be negative");
    settings_.allowed_lateness = lateness.count();
    return *this;
  }
  // Records too late for every window they belong to go to this side output.
  WindowedStream& sideOutputLateData(const OutputTag<T>& tag) {
    settings_.late_tag = tag.id();
    return *this;
  }

  // T reduce(const T& a, const T& b), combined incrementally; emits T per firing.
  template <class F>
  DataStream<T> reduce(F fn) {
    static_assert(ReduceFunction<F, T>,
                  "reduce(f): f must be callable as `T f(const T&, const T&)` (or a class with "
                  "`T reduce(const T&, const T&)`)");
    return build<T>("window_reduce", "Window Reduce",
                    detail::ReduceContents<T, Window, F>(std::move(fn)), detail::DirectOutput{});
  }
  // Incremental reduce, then the process function sees the one reduced value per firing.
  template <class R = void, class F, class P>
  auto reduce(F fn, P process_fn) {
    static_assert(ReduceFunction<F, T>, "reduce(f, p): f must be a reduce function of T");
    return withProcess<R, T>("window_reduce_process", "Window Reduce",
                             detail::ReduceContents<T, Window, F>(std::move(fn)),
                             std::move(process_fn));
  }
  // An aggregate function (createAccumulator / add / getResult / merge), incremental.
  template <class F>
  auto aggregate(F fn) {
    using Out = AggregateResultOf<F>;
    return build<Out>("window_aggregate", "Window Aggregate",
                      detail::AggregateContents<T, Window, F>(std::move(fn)),
                      detail::DirectOutput{});
  }
  // Incremental aggregation, then the process function sees the one result per firing.
  template <class R = void, class F, class P>
  auto aggregate(F fn, P process_fn) {
    return withProcess<R, AggregateResultOf<F>>(
        "window_aggregate_process", "Window Aggregate",
        detail::AggregateContents<T, Window, F>(std::move(fn)), std::move(process_fn));
  }
  // void process(const K& key, WindowContext<W>& ctx, const std::vector<T>& elements,
  // Collector<R>& out): every element of the window, with its metadata.
  template <class R = void, class P>
  auto process(P process_fn) {
    return withProcess<R, T>("window_process", "Window Process",
                             detail::ListContents<T, Window>{}, std::move(process_fn));
  }

 private:
  template <class R, class In, class C, class P>
  auto withProcess(const char* op_type, const char* name, C contents, P process_fn) {
    using Deduced = std::conditional_t<!std::is_void_v<R>, R,
                                       typename detail::ProcessWindowOutput<P>::type>;
    if constexpr (std::is_void_v<Deduced>) {
      static_assert(kDependentFalse<P>,
                    "cannot deduce the process window function's output type; write "
                    "process<R>(f) or give f the signature `void f(const K&, "
                    "weir::WindowContext<W>&, const std::vector<In>&, weir::Collector<R>&)`");
      return input_;
    } else {
      static_assert(ProcessWindowFunction<P, Key, Window, In, Deduced>,
                    "the process window function must be callable as `void f(const K& key, "
                    "weir::WindowContext<W>& ctx, const std::vector<In>& elements, "
                    "weir::Collector<R>& out)` (or a class with that process method)");
      return build<Deduced>(op_type, name, std::move(contents), std::move(process_fn));
    }
  }

  template <class Out, class C, class Fn>
  DataStream<Out> build(const char* op_type, const char* name, C contents, Fn fn) {
    detail::checkRecordType<Out>();
    KeyF key = key_;
    A assigner = assigner_;
    Tr trigger = trigger_;
    Ev evictor = evictor_;
    detail::WindowSettings settings = settings_;
    constexpr bool kSlicing =
        detail::kIsSlidingAssigner<A> && !kCustomTrigger && std::is_same_v<Ev, NoEvictor>;
    const int id = input_.template addOneInput<Out>(
        op_type, name, true,
        [=] {
          if constexpr (kSlicing) {
            return std::make_unique<
                detail::SlicingWindowOperator<T, Key, Out, KeyF, A, C, Fn>>(key, assigner,
                                                                             contents, fn,
                                                                             settings);
          } else {
            return std::make_unique<
                detail::WindowOperator<T, Key, Out, KeyF, A, Tr, C, Fn, Ev>>(
                key, assigner, trigger, contents, fn, evictor, settings);
          }
        },
        Partitioner::kHash, key_, true);
    return DataStream<Out>(input_.builderState(), {id});
  }

  DataStream<T> input_;
  KeyF key_;
  A assigner_;
  Tr trigger_;
  Ev evictor_;
  detail::WindowSettings settings_;
};

class JobBuilder {
 public:
  explicit JobBuilder(JobArgs args = {}) { state_.args = std::move(args); }

  const JobArgs& args() const { return state_.args; }

  JobBuilder& name(std::string n) {
    state_.job_name = std::move(n);
    return *this;
  }
  // Number of key groups: the upper bound of any keyed operator's parallelism, fixed for the job's
  // life. Default 128.
  JobBuilder& maxParallelism(int p) {
    if (p < 1 || p > kUpperBoundMaxParallelism) {
      throw JobDefinitionError("max parallelism must be in [1, " +
                               std::to_string(kUpperBoundMaxParallelism) + "], got " +
                               std::to_string(p));
    }
    state_.max_parallelism = p;
    return *this;
  }

  // A source from a user source function (see functions.h: SourceFunction).
  template <class T, class F>
  DataStream<T> addSource(F fn, std::string name = "Custom Source") {
    static_assert(
        SourceFunction<F, T>,
        "addSource<T>(f): f must have `weir::SourceStatus pollNext(weir::Collector<T>&)`");
    VertexDef def;
    def.op_type = "source";
    def.name = std::move(name);
    def.kind = VertexKind::kSource;
    def.bounded = isBoundedSource(fn);
    const int id = state_.addNode<void>(
        std::move(def), [fn] { return std::make_unique<detail::SourceOperator<T, F>>(fn); });
    return DataStream<T>(&state_, {id});
  }

  // fn(i) for i in [0, count); unbounded when count is weir::kUnbounded.
  template <class F>
  auto fromGenerator(F fn, std::uint64_t count = kUnbounded) {
    static_assert(std::is_invocable_v<F&, std::uint64_t>,
                  "fromGenerator(f, n): f must be callable as `T f(std::uint64_t index)`");
    using T = std::remove_cvref_t<std::invoke_result_t<F&, std::uint64_t>>;
    return addSource<T>(GeneratorSource<T, F>(std::move(fn), count), "Source: Generator");
  }

  // The numbers from `from` to `to`, both included (none when from > to); bounded. Its position is
  // kept per split of the range, so a job may resume it at another parallelism (see
  // SequenceSource in weir/sources.h).
  DataStream<std::int64_t> fromSequence(std::int64_t from, std::int64_t to) {
    return addSource<std::int64_t>(SequenceSource(from, to), "Source: Sequence");
  }

  template <class T>
  DataStream<T> fromCollection(std::vector<T> items) {
    return addSource<T>(
        CollectionSource<T>(std::make_shared<const std::vector<T>>(std::move(items))),
        "Source: Collection");
  }

  DataStream<std::string> readTextFile(std::string path) {
    return addSource<std::string>(TextFileSource(std::move(path)), "Source: Text File");
  }

  // Ends building: the program holding the graph and its typed operators.
  std::unique_ptr<JobProgram> finish() {
    if (state_.nodes.empty()) throw JobDefinitionError("the job defines no operators");
    return std::make_unique<detail::Program>(std::move(state_));
  }

 private:
  detail::BuilderState state_;
};

}  // namespace weir
