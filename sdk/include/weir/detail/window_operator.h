// The operators behind WindowedStream (see weir/windows.h):
//   WindowOperator         any assigner, trigger and evictor; merging windows (sessions) keep a
//                          per-key set mapping each window to the window its state lives under.
//   SlicingWindowOperator  sliding windows with their default trigger and no evictor: the state is
//                          one partial result per slice of gcd(size, slide), combined when a window
//                          fires, so a record is stored once whatever the overlap.
// Both keep window contents in keyed state namespaced by window (or slice) and their timers in the
// keyed timer queues, so contents and timers live on the job's state backend, by key group.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weir/context.h"
#include "weir/detail/keyed_operators.h"
#include "weir/detail/operators.h"
#include "weir/detail/state_factory.h"
#include "weir/windows.h"

namespace weir::detail {

inline constexpr const char* kWindowContentsState = "weir.window-contents";
inline constexpr const char* kMergingWindowsState = "weir.merging-windows";

inline std::int64_t saturatingAdd(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    return b > 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
  }
  return r;
}

// ---- window contents: what the window state holds and how a result comes out of it ----
//
// Each has: open(backend), setNamespace(w), add(v), read() -> const Acc* (null when empty),
// clear(), merge(target, sources), fold(from, into, first), result(acc) -> const Result&, and
// fromValues(elements) -> const Result& for evicting windows.

// What every contents kind does with its state: namespace, add, clear, merge.
template <class T, class W, class State>
class StateContents {
 public:
  void setNamespace(const W& w) { state_->setNamespace(w); }
  void add(const T& v) { state_->add(v); }
  void clear() { state_->clear(); }
  void merge(const W& target, const std::vector<W>& sources) {
    state_->mergeNamespaces(target, sources);
  }

 protected:
  State* state_ = nullptr;
};

// reduce(f): the state is the running reduction.
template <class T, class W, class F>
class ReduceContents : public StateContents<T, W, InternalReducingState<W, T>> {
 public:
  using Acc = T;
  using Result = T;
  static constexpr bool kElementList = false;

  explicit ReduceContents(F fn) : fn_(std::move(fn)) {}
  void open(KeyedBackendBase& backend) {
    this->state_ =
        &createState<W>(backend, ReducingStateDescriptor<T, F>(kWindowContentsState, fn_));
  }
  const Acc* read() { return this->state_->get(); }
  void fold(const Acc& from, Acc& into, bool first) {
    into = first ? from : callReduce(fn_, into, from);
  }
  const Result& result(const Acc& acc) { return acc; }
  // Non-empty `elements` only.
  const Result& fromValues(const std::vector<TimestampedValue<T>>& elements) {
    scratch_ = elements.front().value;
    for (std::size_t i = 1; i < elements.size(); ++i)
      scratch_ = callReduce(fn_, scratch_, elements[i].value);
    return scratch_;
  }

 private:
  F fn_;
  T scratch_{};
};

// aggregate(f): the state is the accumulator.
template <class T, class W, class F>
class AggregateContents
    : public StateContents<T, W,
                           InternalAggregatingState<W, T, AccumulatorOf<F>, AggregateResultOf<F>>> {
 public:
  using Acc = AccumulatorOf<F>;
  using Result = AggregateResultOf<F>;
  static constexpr bool kElementList = false;

  explicit AggregateContents(F fn) : fn_(std::move(fn)) {}
  void open(KeyedBackendBase& backend) {
    this->state_ =
        &createState<W>(backend, AggregatingStateDescriptor<T, F>(kWindowContentsState, fn_));
  }
  const Acc* read() { return this->state_->accumulator(); }
  void fold(const Acc& from, Acc& into, bool first) {
    if (first) {
      into = from;
    } else {
      aggregateMerge(fn_, from, into);
    }
  }
  const Result& result(const Acc& acc) {
    result_ = fn_.getResult(acc);
    return result_;
  }
  const Result& fromValues(const std::vector<TimestampedValue<T>>& elements) {
    Acc acc = fn_.createAccumulator();
    for (const auto& e : elements)
      aggregateAdd(fn_, e.value, acc);
    return result(acc);
  }

 private:
  F fn_;
  Result result_{};
};

// process(f): the state is the list of elements.
template <class T, class W>
class ListContents : public StateContents<T, W, InternalListState<W, T>> {
 public:
  using Acc = std::vector<T>;
  using Result = std::vector<T>;
  static constexpr bool kElementList = true;

  void open(KeyedBackendBase& backend) {
    this->state_ = &createState<W>(backend, ListStateDescriptor<T>(kWindowContentsState));
  }
  const Acc* read() {
    const Acc& v = this->state_->get();
    return v.empty() ? nullptr : &v;
  }
  void fold(const Acc& from, Acc& into, bool first) {
    if (first) {
      into.assign(from.begin(), from.end());
    } else {
      into.insert(into.end(), from.begin(), from.end());
    }
  }
  const Result& result(const Acc& acc) { return acc; }
  const Result& fromValues(const std::vector<TimestampedValue<T>>& elements) {
    scratch_.clear();
    for (const auto& e : elements)
      scratch_.push_back(e.value);
    return scratch_;
  }

 private:
  Acc scratch_;
};

// The window function stage: DirectOutput emits the contents' result as is; otherwise Fn is a
// process window function receiving the result (or the element list).
struct DirectOutput {};

template <class F, class K, class W, class In, class R>
void callProcessWindow(F& f, const K& key, WindowContext<W>& ctx, const std::vector<In>& elements,
                       Collector<R>& out) {
  if constexpr (ProcessWindowMethod<F, K, W, In, R>) {
    f.process(key, ctx, elements, out);
  } else {
    f(key, ctx, elements, out);
  }
}

struct WindowSettings {
  std::int64_t allowed_lateness = 0;
  std::string late_tag;  // empty: records too late for all their windows are dropped
};

// The per-key mapping of a merging assigner: each live window and the window whose namespace
// holds its state (kept when windows merge, so merging moves no state but the merged-in one).
template <class W>
class MergingWindowSet {
 public:
  using Mapping = std::vector<std::pair<W, W>>;

  void load(InternalValueState<VoidNamespace, Mapping>& state) {
    const Mapping* m = state.get();
    if (m != nullptr) {
      mapping_ = *m;
    } else {
      mapping_.clear();
    }
    dirty_ = false;
  }
  void persist(InternalValueState<VoidNamespace, Mapping>& state) {
    if (!dirty_) return;
    if (mapping_.empty()) {
      state.clear();
    } else {
      state.update(mapping_);
    }
    dirty_ = false;
  }
  const W* stateWindowOf(const W& w) const {
    for (const auto& [window, state_window] : mapping_)
      if (window == w) return &state_window;
    return nullptr;
  }
  void retire(const W& w) {
    for (auto it = mapping_.begin(); it != mapping_.end(); ++it) {
      if (it->first == w) {
        mapping_.erase(it);
        dirty_ = true;
        return;
      }
    }
  }

  // Adds `w`, merging it with the windows it overlaps. on_merge(result, merged windows, state
  // window of the result, state windows to fold into it) runs for every merge that joined
  // existing windows. Returns the window `w` ended up in.
  template <class A, class OnMerge>
  W add(const A& assigner, const W& w, OnMerge&& on_merge) {
    if (stateWindowOf(w) != nullptr) return w;  // the live windows never overlap each other
    windows_.clear();
    for (const auto& entry : mapping_)
      windows_.push_back(entry.first);
    windows_.push_back(w);
    W result = w;
    bool merged_new = false;
    auto merge = [&](const W& merge_result, const std::vector<W>& group) {
      merged_.clear();
      for (const W& g : group) {
        if (g == w) {
          merged_new = true;
          result = merge_result;
        } else {
          merged_.push_back(g);
        }
      }
      const W state_window = *stateWindowOf(merged_.front());
      merged_state_.clear();
      for (const W& m : merged_) {
        for (auto it = mapping_.begin(); it != mapping_.end(); ++it) {
          if (it->first == m) {
            if (!(it->second == state_window)) merged_state_.push_back(it->second);
            mapping_.erase(it);
            break;
          }
        }
      }
      mapping_.emplace_back(merge_result, state_window);
      if (!(merged_.size() == 1 && merged_.front() == merge_result)) {
        on_merge(merge_result, merged_, state_window, merged_state_);
      }
    };
    assigner.mergeWindows(windows_, group_, merge);
    if (!merged_new) mapping_.emplace_back(w, w);
    dirty_ = true;
    return result;
  }

 private:
  Mapping mapping_;
  bool dirty_ = false;
  std::vector<W> windows_;
  std::vector<W> group_;
  std::vector<W> merged_;
  std::vector<W> merged_state_;
};

// What both window operators share: the keyed runtime, contexts, lateness and output.
template <class T, class K, class Out, class KeyF, class W, class Fn, class Result>
class WindowOperatorBase : public OneInputOperator<T, Out, Fn>, public KeyGroupSnapshotter {
 public:
  std::unique_ptr<FrozenKeyGroups> freezeKeyGroups() override { return runtime_.freezeKeyGroups(); }
  void restoreKeyGroup(int kg, std::span<const std::uint8_t> bytes) override {
    runtime_.restoreKeyGroup(kg, bytes);
  }

 protected:
  static constexpr bool kDirect = std::is_same_v<Fn, DirectOutput>;

  WindowOperatorBase(KeyF key, Fn fn, WindowSettings settings)
      : OneInputOperator<T, Out, Fn>(std::move(fn)),
        key_(std::move(key)),
        settings_(std::move(settings)) {}

  void openBase(const RuntimeContext& ctx) {
    if (settings_.allowed_lateness < 0) {
      throw std::invalid_argument("allowed lateness must not be negative");
    }
    runtime_.open(ctx);
    user_ctx_ = ctx;
    user_ctx_.setKeyedBackend(&runtime_.backend());
    env_ = ctx.internals().env;
    wctx_.bind(&user_ctx_, &this->side_outputs_);
  }
  void openUserFunction() {
    if constexpr (!kDirect) openFunction(this->fn_, user_ctx_);
  }

  std::int64_t processingTime() const {
    return env_ != nullptr ? env_->currentProcessingTime() : 0;
  }
  // The processing time a record arriving now belongs to: windows whose end was already processed
  // (their timers fired at that millisecond) are closed, so it counts toward the next ones.
  std::int64_t recordProcessingTime() const {
    return std::max(processingTime(), processing_fired_ + 1);
  }
  void processingTimeReached(std::int64_t now) {
    processing_fired_ = std::max(processing_fired_, now);
  }
  [[noreturn]] static void noTimestamp() {
    throw std::logic_error(
        "a record reached an event-time window without a timestamp; assign timestamps and "
        "watermarks (assignTimestampsAndWatermarks) before the window, or use processing-time "
        "windows");
  }
  // Emits one window result (or the elements of the window to the process function).
  template <bool kElementList, class R>
  void emitResult(const W& window, const R& r) {
    this->out_.setTimestamp(window.maxTimestamp());
    if constexpr (kDirect) {
      this->out_.collect(r);
    } else {
      wctx_.set(&window, watermark_);
      if constexpr (kElementList) {
        callProcessWindow(this->fn_, runtime_.currentKey(), wctx_, r, this->out_);
      } else {
        single_.clear();
        single_.push_back(r);
        callProcessWindow(this->fn_, runtime_.currentKey(), wctx_, single_, this->out_);
      }
    }
  }
  // The user function's clear(ctx) when the window's state goes.
  void clearUserFunction(const W& window) {
    if constexpr (!kDirect) {
      if constexpr (requires { this->fn_.clear(wctx_); }) {
        wctx_.set(&window, watermark_);
        this->fn_.clear(wctx_);
      }
    }
  }
  void lateElement(const T& v, std::int64_t ts) {
    if (!settings_.late_tag.empty())
      emitSideOutput(&this->side_outputs_, settings_.late_tag, v, ts);
  }

  KeyF key_;
  WindowSettings settings_;
  KeyedRuntime<K, W> runtime_;
  RuntimeContext user_ctx_;
  TaskEnvironment* env_ = nullptr;
  WindowContext<W> wctx_;
  std::int64_t watermark_ = kMinWatermark;
  std::int64_t processing_fired_ = kMinWatermark + 1;
  std::vector<Result> single_;  // reused to hand one result to a process function
};

template <class T, class K, class Out, class KeyF, class A, class Tr, class C, class Fn, class Ev>
class WindowOperator final
    : public WindowOperatorBase<T, K, Out, KeyF, typename A::Window, Fn, typename C::Result> {
  using W = typename A::Window;
  using Base = WindowOperatorBase<T, K, Out, KeyF, W, Fn, typename C::Result>;
  static constexpr bool kEvicting = !std::is_same_v<Ev, NoEvictor>;
  using Mapping = typename MergingWindowSet<W>::Mapping;

 public:
  WindowOperator(KeyF key, A assigner, Tr trigger, C contents, Fn fn, Ev evictor,
                 WindowSettings settings)
      : Base(std::move(key), std::move(fn), std::move(settings)),
        assigner_(std::move(assigner)),
        trigger_(std::move(trigger)),
        contents_(std::move(contents)),
        evictor_(std::move(evictor)) {}

  void open(const RuntimeContext& ctx) override {
    guarded(this->name, [&] {
      if constexpr (A::kMerging) {
        bool can_merge = false;
        if constexpr (requires { trigger_.canMerge(); }) can_merge = trigger_.canMerge();
        if (!can_merge) {
          throw std::invalid_argument(
              "session windows merge, but the window's trigger cannot merge (give it "
              "canMerge() and onMerge())");
        }
      }
      this->openBase(ctx);
      KeyedBackendBase& backend = this->runtime_.backend();
      tctx_.bind(&backend, &this->runtime_.eventTimers(), &this->runtime_.processingTimers(),
                 &this->watermark_);
      if constexpr (kEvicting) {
        evicting_state_ = &createState<W>(
            backend, ListStateDescriptor<TimestampedValue<T>>(kWindowContentsState));
      } else {
        contents_.open(backend);
      }
      if constexpr (A::kMerging) {
        merging_state_ = &createState<VoidNamespace>(
            backend, ValueStateDescriptor<Mapping>(kMergingWindowsState));
      }
      this->openUserFunction();
    });
  }

  void processWatermark(std::int64_t watermark) override {
    this->watermark_ = watermark;
    this->counters.watermark.store(watermark, std::memory_order_relaxed);
    this->runtime_.eventTimers().fireUntil(
        watermark, [&](std::int64_t t, const W& w) { onTimer(t, w, true); });
    this->emitWatermark(watermark);
  }

  void onProcessingTime(std::int64_t now) override {
    this->processingTimeReached(now);
    guarded(this->name, [&] {
      this->runtime_.processingTimers().fireUntil(
          now, [&](std::int64_t t, const W& w) { onTimer(t, w, false); });
    });
    this->flushOutputs();
  }

  std::int64_t nextProcessingTime() override {
    return this->runtime_.processingTimers().peekTime();
  }

 protected:
  void process(const RecordBatch<T>& batch) override {
    const std::int64_t now = A::kEventTime ? 0 : this->recordProcessingTime();
    std::uint64_t late = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const T& v = batch[i];
      const std::int64_t ts = batch.timestamp(i);
      const K key = callKey(this->key_, v);
      this->runtime_.setCurrentKey(key);
      std::int64_t element_time = now;
      if constexpr (A::kEventTime) {
        if (ts == kNoTimestamp) [[unlikely]]
          this->noTimestamp();
        element_time = ts;
        if (ts < this->watermark_) ++late;
      }
      bool skipped = true;
      if constexpr (A::kMerging) {
        merging_.load(*merging_state_);
        assigner_.assignWindows(v, element_time, [&](const W& w) {
          const W actual =
              merging_.add(assigner_, w,
                           [&](const W& result, const std::vector<W>& merged, const W& state_window,
                               const std::vector<W>& merged_state) {
                             onMerge(result, merged, state_window, merged_state);
                           });
          if (isWindowLate(actual)) {
            merging_.retire(actual);
            return;
          }
          skipped = false;
          const W state_window = *merging_.stateWindowOf(actual);
          onElement(v, element_time, actual, state_window);
        });
        merging_.persist(*merging_state_);
      } else {
        assigner_.assignWindows(v, element_time, [&](const W& w) {
          if (isWindowLate(w)) return;
          skipped = false;
          onElement(v, element_time, w, w);
        });
      }
      if (skipped && isElementLate(element_time)) this->lateElement(v, ts);
    }
    if (late != 0) this->counters.addLate(late);
  }

 private:
  std::int64_t cleanupTime(const W& w) const {
    if constexpr (A::kEventTime) {
      return saturatingAdd(w.maxTimestamp(), this->settings_.allowed_lateness);
    } else {
      return w.maxTimestamp();
    }
  }
  bool isWindowLate(const W& w) const {
    return A::kEventTime && cleanupTime(w) <= this->watermark_;
  }
  bool isElementLate(std::int64_t ts) const {
    return A::kEventTime && saturatingAdd(ts, this->settings_.allowed_lateness) <= this->watermark_;
  }
  TimerQueue<W>& cleanupTimers() {
    return A::kEventTime ? this->runtime_.eventTimers() : this->runtime_.processingTimers();
  }
  void registerCleanupTimer(const W& w) {
    const std::int64_t t = cleanupTime(w);
    if (t != std::numeric_limits<std::int64_t>::max()) cleanupTimers().add(t, w);
  }
  void deleteCleanupTimer(const W& w) {
    const std::int64_t t = cleanupTime(w);
    if (t != std::numeric_limits<std::int64_t>::max()) cleanupTimers().remove(t, w);
  }

  void onElement(const T& v, std::int64_t ts, const W& window, const W& state_window) {
    if constexpr (kEvicting) {
      evicting_state_->setNamespace(state_window);
      evicting_state_->add(TimestampedValue<T>{v, ts});
    } else {
      contents_.setNamespace(state_window);
      contents_.add(v);
    }
    tctx_.setWindow(&window);
    const TriggerResult r = trigger_.onElement(v, ts, window, tctx_);
    if (isFire(r)) emitContents(window, state_window);
    if (isPurge(r)) clearContents(state_window);
    registerCleanupTimer(window);
  }

  void onTimer(std::int64_t time, const W& window, bool event_time) {
    W state_window = window;
    if constexpr (A::kMerging) {
      merging_.load(*merging_state_);
      const W* sw = merging_.stateWindowOf(window);
      if (sw == nullptr) return;  // the window was merged into another one
      state_window = *sw;
    }
    tctx_.setWindow(&window);
    const TriggerResult r = event_time ? trigger_.onEventTime(time, window, tctx_)
                                       : trigger_.onProcessingTime(time, window, tctx_);
    if (isFire(r)) emitContents(window, state_window);
    if (isPurge(r)) clearContents(state_window);
    if (event_time == A::kEventTime && time == cleanupTime(window)) {
      clearContents(state_window);
      tctx_.setWindow(&window);
      trigger_.clear(window, tctx_);
      this->clearUserFunction(window);
      if constexpr (A::kMerging) merging_.retire(window);
    }
    if constexpr (A::kMerging) merging_.persist(*merging_state_);
  }

  void onMerge(const W& result, const std::vector<W>& merged, const W& state_window,
               const std::vector<W>& merged_state) {
    if (isWindowLate(result)) {
      throw std::logic_error(
          "a merged window is late; the window assigner must not shrink windows");
    }
    tctx_.setWindow(&result);
    tctx_.setMergedWindows(&merged);
    trigger_.onMerge(result, tctx_);
    tctx_.setMergedWindows(nullptr);
    for (const W& m : merged) {
      tctx_.setWindow(&m);
      trigger_.clear(m, tctx_);
      deleteCleanupTimer(m);
    }
    if (merged_state.empty()) return;
    if constexpr (kEvicting) {
      evicting_state_->mergeNamespaces(state_window, merged_state);
    } else {
      contents_.merge(state_window, merged_state);
    }
  }

  void emitContents(const W& window, const W& state_window) {
    if constexpr (kEvicting) {
      evicting_state_->setNamespace(state_window);
      const auto& stored = evicting_state_->get();
      if (stored.empty()) return;
      elements_.assign(stored.begin(), stored.end());
      EvictorContext ectx(this->watermark_, this->processingTime());
      evictor_.evictBefore(elements_, window, ectx);
      if (!elements_.empty()) {
        this->template emitResult<C::kElementList>(window, contents_.fromValues(elements_));
      }
      evictor_.evictAfter(elements_, window, ectx);
      evicting_state_->setNamespace(state_window);
      if (elements_.empty()) {
        evicting_state_->clear();
      } else {
        evicting_state_->update(elements_);
      }
    } else {
      contents_.setNamespace(state_window);
      const typename C::Acc* acc = contents_.read();
      if (acc == nullptr) return;
      this->template emitResult<C::kElementList>(window, contents_.result(*acc));
    }
  }

  void clearContents(const W& state_window) {
    if constexpr (kEvicting) {
      evicting_state_->setNamespace(state_window);
      evicting_state_->clear();
    } else {
      contents_.setNamespace(state_window);
      contents_.clear();
    }
  }

  A assigner_;
  Tr trigger_;
  C contents_;
  Ev evictor_;
  TriggerContext<W> tctx_;
  InternalListState<W, TimestampedValue<T>>* evicting_state_ = nullptr;
  std::vector<TimestampedValue<T>> elements_;
  InternalValueState<VoidNamespace, Mapping>* merging_state_ = nullptr;
  MergingWindowSet<W> merging_;
};

// Sliding windows by slices: a record goes into the slice holding its time; a window's result is
// the slices [start, end) folded together when its timer fires. A slice is dropped with the last
// window that covers it (the one starting at or before it by less than a slide).
template <class T, class K, class Out, class KeyF, class A, class C, class Fn>
class SlicingWindowOperator final
    : public WindowOperatorBase<T, K, Out, KeyF, TimeWindow, Fn, typename C::Result> {
  using W = TimeWindow;
  using Base = WindowOperatorBase<T, K, Out, KeyF, W, Fn, typename C::Result>;

 public:
  SlicingWindowOperator(KeyF key, A assigner, C contents, Fn fn, WindowSettings settings)
      : Base(std::move(key), std::move(fn), std::move(settings)),
        assigner_(std::move(assigner)),
        contents_(std::move(contents)),
        slice_(assigner_.sliceSize()) {}

  void open(const RuntimeContext& ctx) override {
    guarded(this->name, [&] {
      this->openBase(ctx);
      contents_.open(this->runtime_.backend());
      this->openUserFunction();
    });
  }

  void processWatermark(std::int64_t watermark) override {
    this->watermark_ = watermark;
    this->counters.watermark.store(watermark, std::memory_order_relaxed);
    if constexpr (A::kEventTime) {
      this->runtime_.eventTimers().fireUntil(watermark,
                                             [&](std::int64_t t, const W& w) { onTimer(t, w); });
    }
    this->emitWatermark(watermark);
  }

  void onProcessingTime(std::int64_t now) override {
    if constexpr (!A::kEventTime) {
      this->processingTimeReached(now);
      guarded(this->name, [&] {
        this->runtime_.processingTimers().fireUntil(
            now, [&](std::int64_t t, const W& w) { onTimer(t, w); });
      });
      this->flushOutputs();
    }
  }

  std::int64_t nextProcessingTime() override {
    return A::kEventTime ? kNoDeadline : this->runtime_.processingTimers().peekTime();
  }

 protected:
  void process(const RecordBatch<T>& batch) override {
    const std::int64_t now = A::kEventTime ? 0 : this->recordProcessingTime();
    const std::int64_t size = assigner_.size;
    const std::int64_t slide = assigner_.slide;
    std::uint64_t late = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const T& v = batch[i];
      const std::int64_t ts = batch.timestamp(i);
      const K key = callKey(this->key_, v);
      this->runtime_.setCurrentKey(key);
      std::int64_t element_time = now;
      if constexpr (A::kEventTime) {
        if (ts == kNoTimestamp) [[unlikely]]
          this->noTimestamp();
        element_time = ts;
        if (ts < this->watermark_) ++late;
      }
      const std::int64_t slice_start =
          windowStartWithOffset(element_time, assigner_.offset, slice_);
      const W slice{slice_start, slice_start + slice_};
      bool added = false;
      // Windows from the newest back; once one is late, the older ones are too.
      for (std::int64_t start = windowStartWithOffset(element_time, assigner_.offset, slide);
           start > element_time - size; start -= slide) {
        const W w{start, start + size};
        if (isWindowLate(w)) break;
        if (!added) {
          contents_.setNamespace(slice);
          contents_.add(v);
          added = true;
        }
        if constexpr (A::kEventTime) {
          if (w.maxTimestamp() <= this->watermark_) {
            fireWindow(w);  // a late record re-fires a window kept by allowed lateness
          } else {
            this->runtime_.eventTimers().add(w.maxTimestamp(), w);
          }
          if (this->settings_.allowed_lateness > 0) {
            const std::int64_t cleanup = cleanupTime(w);
            if (cleanup != std::numeric_limits<std::int64_t>::max()) {
              this->runtime_.eventTimers().add(cleanup, w);
            }
          }
        } else {
          this->runtime_.processingTimers().add(w.maxTimestamp(), w);
        }
      }
      if (!added && A::kEventTime &&
          saturatingAdd(element_time, this->settings_.allowed_lateness) <= this->watermark_) {
        this->lateElement(v, ts);
      }
    }
    if (late != 0) this->counters.addLate(late);
  }

 private:
  std::int64_t cleanupTime(const W& w) const {
    if constexpr (A::kEventTime) {
      return saturatingAdd(w.maxTimestamp(), this->settings_.allowed_lateness);
    } else {
      return w.maxTimestamp();
    }
  }
  bool isWindowLate(const W& w) const {
    return A::kEventTime && cleanupTime(w) <= this->watermark_;
  }

  void onTimer(std::int64_t time, const W& w) {
    if (time == w.maxTimestamp()) fireWindow(w);
    if (time == cleanupTime(w)) {
      // The slices no later window covers.
      for (std::int64_t s = w.start; s < w.start + assigner_.slide; s += slice_) {
        slice_ns_ = W{s, s + slice_};
        contents_.setNamespace(slice_ns_);
        contents_.clear();
      }
    }
  }

  void fireWindow(const W& w) {
    bool any = false;
    for (std::int64_t s = w.start; s < w.end; s += slice_) {
      slice_ns_ = W{s, s + slice_};
      contents_.setNamespace(slice_ns_);
      const typename C::Acc* acc = contents_.read();
      if (acc == nullptr) continue;
      contents_.fold(*acc, folded_, !any);
      any = true;
    }
    if (!any) return;
    this->template emitResult<C::kElementList>(w, contents_.result(folded_));
  }

  A assigner_;
  C contents_;
  std::int64_t slice_;
  W slice_ns_;
  typename C::Acc folded_{};
};

}  // namespace weir::detail
