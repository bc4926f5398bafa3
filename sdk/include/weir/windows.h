// Windows on keyed streams, as in Flink:
//
//   events.keyBy([](const Click& c) { return c.user; })
//       .window(weir::TumblingEventTimeWindows::of(std::chrono::seconds(10)))
//       .allowedLateness(std::chrono::seconds(5))
//       .sideOutputLateData(late_tag)
//       .aggregate(CountClicks{});
//
// A window assigner puts each record into windows; a trigger decides when a window's contents are
// evaluated (FIRE) and dropped (PURGE); an optional evictor removes elements before or after the
// evaluation; the window function turns the contents into output: reduce and aggregate combine
// incrementally, process sees every element with the window's metadata, and reduce/aggregate with
// a process function hand the incremental result to the process function.
//
// Event-time windows are evaluated when the watermark passes their end; with allowed lateness a
// window keeps its state that much longer and fires again for every late record that reaches it.
// Records too late for every window they belong to go to the late-data side output (or are dropped
// and counted as late). Results carry the window's maxTimestamp() as event timestamp.
//
// Sliding windows with their default trigger and no evictor keep one partial aggregate (or element
// list) per slice of gcd(size, slide) and combine the slices of a window when it fires, so a record
// is stored once, not once per overlapping window.
//
// Triggers and evictors are classes with the methods below (no base class needed):
//
//   struct MyTrigger {
//     TriggerResult onElement(const T& v, std::int64_t ts, const W& w, TriggerContext<W>& ctx);
//     TriggerResult onEventTime(std::int64_t time, const W& w, TriggerContext<W>& ctx);
//     TriggerResult onProcessingTime(std::int64_t time, const W& w, TriggerContext<W>& ctx);
//     void clear(const W& w, TriggerContext<W>& ctx);            // drop timers and trigger state
//     bool canMerge() const;                                     // optional: session windows
//     void onMerge(const W& w, TriggerContext<W>& ctx);          // optional: session windows
//   };
//   struct MyEvictor {
//     void evictBefore(std::vector<TimestampedValue<T>>& elements, const W& w, EvictorContext& c);
//     void evictAfter(std::vector<TimestampedValue<T>>& elements, const W& w, EvictorContext& c);
//   };
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weir/context.h"
#include "weir/detail/state_factory.h"
#include "weir/serde.h"
#include "weir/state.h"

namespace weir {

// ---- windows ----

// [start, end) in milliseconds of event or processing time.
struct TimeWindow {
  std::int64_t start = 0;
  std::int64_t end = 0;

  // The last timestamp that belongs to the window.
  std::int64_t maxTimestamp() const { return end - 1; }
  bool intersects(const TimeWindow& o) const { return start <= o.end && end >= o.start; }
  TimeWindow cover(const TimeWindow& o) const {
    return {std::min(start, o.start), std::max(end, o.end)};
  }
  bool operator==(const TimeWindow&) const = default;
  std::size_t hash() const {
    return static_cast<std::size_t>(static_cast<std::uint64_t>(start) * 0x9e3779b97f4a7c15ULL ^
                                    static_cast<std::uint64_t>(end));
  }
};

// The single window of GlobalWindows: every record of a key, forever.
struct GlobalWindow {
  std::int64_t maxTimestamp() const { return std::numeric_limits<std::int64_t>::max(); }
  bool operator==(const GlobalWindow&) const { return true; }
  std::size_t hash() const { return 0; }
};

// The only global window encodes as nothing (an empty struct's byte is indeterminate).
template <>
struct Serde<GlobalWindow> {
  static std::size_t size(const GlobalWindow&) { return 0; }
  static std::uint8_t* write(const GlobalWindow&, std::uint8_t* p) { return p; }
  static const std::uint8_t* read(const std::uint8_t* p, const std::uint8_t*, GlobalWindow&) {
    return p;
  }
};

// An element with its event timestamp, as evictors see the window contents.
template <class T>
struct TimestampedValue {
  T value{};
  std::int64_t timestamp = kNoTimestamp;
  WEIR_SERDE_FIELDS(value, timestamp)
};

inline std::int64_t windowStartWithOffset(std::int64_t timestamp, std::int64_t offset,
                                          std::int64_t size) {
  const std::int64_t remainder = (timestamp - offset) % size;
  return remainder < 0 ? timestamp - (remainder + size) : timestamp - remainder;
}

// ---- triggers ----

enum class TriggerResult : std::uint8_t {
  kContinue = 0,
  kFire = 1,
  kPurge = 2,
  kFireAndPurge = 3,
};
inline bool isFire(TriggerResult r) {
  return (static_cast<int>(r) & 1) != 0;
}
inline bool isPurge(TriggerResult r) {
  return (static_cast<int>(r) & 2) != 0;
}

namespace detail {
template <class N>
class TimerQueue;
}

// What a trigger may do for the window it is called for (valid only during the call).
template <class W>
class TriggerContext {
 public:
  std::int64_t currentWatermark() const { return *watermark_; }
  std::int64_t currentProcessingTime() const { return backend_->processingTime(); }
  // Timers for the current key and window; they call the trigger's onEventTime / onProcessingTime.
  void registerEventTimeTimer(std::int64_t time) { event_timers_->add(time, *window_); }
  void registerProcessingTimeTimer(std::int64_t time) { processing_timers_->add(time, *window_); }
  void deleteEventTimeTimer(std::int64_t time) { event_timers_->remove(time, *window_); }
  void deleteProcessingTimeTimer(std::int64_t time) { processing_timers_->remove(time, *window_); }

  // Keyed state scoped to the current key and window (a trigger's own state, e.g. a count).
  template <class D>
  typename D::StateType& getPartitionedState(const D& descriptor) {
    auto& s = detail::createState<W>(*backend_, descriptor);
    s.setNamespace(*window_);
    return s;
  }
  // In onMerge: folds the state under `descriptor` of the merged windows into the current one.
  template <class D>
  void mergePartitionedState(const D& descriptor) {
    auto& s = detail::createState<W>(*backend_, descriptor);
    if constexpr (requires { s.mergeNamespaces(*window_, *merged_); }) {
      if (merged_ != nullptr) s.mergeNamespaces(*window_, *merged_);
    } else {
      throw std::logic_error("state '" + descriptor.name + "' cannot be merged");
    }
  }

  // --- SDK-internal ---
  void bind(detail::KeyedBackendBase* backend, detail::TimerQueue<W>* event_timers,
            detail::TimerQueue<W>* processing_timers, const std::int64_t* watermark) {
    backend_ = backend;
    event_timers_ = event_timers;
    processing_timers_ = processing_timers;
    watermark_ = watermark;
  }
  void setWindow(const W* window) { window_ = window; }
  void setMergedWindows(const std::vector<W>* merged) { merged_ = merged; }

 private:
  detail::KeyedBackendBase* backend_ = nullptr;
  detail::TimerQueue<W>* event_timers_ = nullptr;
  detail::TimerQueue<W>* processing_timers_ = nullptr;
  const std::int64_t* watermark_ = nullptr;
  const W* window_ = nullptr;
  const std::vector<W>* merged_ = nullptr;
};

// Fires once when the watermark passes the window's end (and again for each late record while
// the window is kept by allowed lateness). The default of event-time assigners.
struct EventTimeTrigger {
  template <class T, class W>
  TriggerResult onElement(const T&, std::int64_t, const W& w, TriggerContext<W>& ctx) const {
    if (w.maxTimestamp() <= ctx.currentWatermark()) return TriggerResult::kFire;
    ctx.registerEventTimeTimer(w.maxTimestamp());
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onEventTime(std::int64_t time, const W& w, TriggerContext<W>&) const {
    return time == w.maxTimestamp() ? TriggerResult::kFire : TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onProcessingTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  void clear(const W& w, TriggerContext<W>& ctx) const {
    ctx.deleteEventTimeTimer(w.maxTimestamp());
  }
  bool canMerge() const { return true; }
  template <class W>
  void onMerge(const W& w, TriggerContext<W>& ctx) const {
    if (w.maxTimestamp() > ctx.currentWatermark()) ctx.registerEventTimeTimer(w.maxTimestamp());
  }
};

// Fires when the TaskManager's clock passes the window's end. The default of processing-time
// assigners.
struct ProcessingTimeTrigger {
  template <class T, class W>
  TriggerResult onElement(const T&, std::int64_t, const W& w, TriggerContext<W>& ctx) const {
    ctx.registerProcessingTimeTimer(w.maxTimestamp());
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onEventTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onProcessingTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kFire;
  }
  template <class W>
  void clear(const W& w, TriggerContext<W>& ctx) const {
    ctx.deleteProcessingTimeTimer(w.maxTimestamp());
  }
  bool canMerge() const { return true; }
  template <class W>
  void onMerge(const W& w, TriggerContext<W>& ctx) const {
    if (w.maxTimestamp() > ctx.currentProcessingTime()) {
      ctx.registerProcessingTimeTimer(w.maxTimestamp());
    }
  }
};

// Never fires: the default of GlobalWindows, which need a trigger of their own.
struct NeverTrigger {
  template <class T, class W>
  TriggerResult onElement(const T&, std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onEventTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onProcessingTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  void clear(const W&, TriggerContext<W>&) const {}
  bool canMerge() const { return true; }
  template <class W>
  void onMerge(const W&, TriggerContext<W>&) const {}
};

// Fires every `count` elements of a window (the count is trigger state, merged with sessions).
class CountTrigger {
 public:
  static CountTrigger of(std::int64_t count) {
    if (count <= 0) throw std::invalid_argument("CountTrigger::of needs a positive count");
    return CountTrigger(count);
  }
  template <class T, class W>
  TriggerResult onElement(const T&, std::int64_t, const W&, TriggerContext<W>& ctx) const {
    auto& c = ctx.getPartitionedState(descriptor_);
    c.add(1);
    if (*c.get() >= count_) {
      c.clear();
      return TriggerResult::kFire;
    }
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onEventTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onProcessingTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  void clear(const W&, TriggerContext<W>& ctx) const {
    ctx.getPartitionedState(descriptor_).clear();
  }
  bool canMerge() const { return true; }
  template <class W>
  void onMerge(const W&, TriggerContext<W>& ctx) const {
    ctx.mergePartitionedState(descriptor_);
  }
  std::int64_t count() const { return count_; }

 private:
  struct Sum {
    std::int64_t reduce(std::int64_t a, std::int64_t b) const { return a + b; }
  };
  explicit CountTrigger(std::int64_t count)
      : count_(count), descriptor_("weir.count-trigger", Sum{}) {}
  std::int64_t count_;
  ReducingStateDescriptor<std::int64_t, Sum> descriptor_;
};

// Fires every `interval` of event time inside the window (aligned to multiples of the interval)
// and at the window's end.
class ContinuousEventTimeTrigger {
 public:
  static ContinuousEventTimeTrigger of(std::chrono::milliseconds interval) {
    if (interval.count() <= 0) {
      throw std::invalid_argument("ContinuousEventTimeTrigger::of needs a positive interval");
    }
    return ContinuousEventTimeTrigger(interval.count());
  }
  template <class T, class W>
  TriggerResult onElement(const T&, std::int64_t ts, const W& w, TriggerContext<W>& ctx) const {
    if (w.maxTimestamp() <= ctx.currentWatermark()) return TriggerResult::kFire;
    ctx.registerEventTimeTimer(w.maxTimestamp());
    auto& next = ctx.getPartitionedState(descriptor_);
    if (next.get() == nullptr) {
      const std::int64_t start = ts - (((ts % interval_) + interval_) % interval_);
      const std::int64_t fire = std::min(start + interval_, w.maxTimestamp());
      next.add(fire);
      ctx.registerEventTimeTimer(fire);
    }
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onEventTime(std::int64_t time, const W& w, TriggerContext<W>& ctx) const {
    if (time == w.maxTimestamp()) return TriggerResult::kFire;
    auto& next = ctx.getPartitionedState(descriptor_);
    const std::int64_t* at = next.get();
    if (at != nullptr && *at == time) {
      next.clear();
      const std::int64_t fire = std::min(time + interval_, w.maxTimestamp());
      next.add(fire);
      ctx.registerEventTimeTimer(fire);
      return TriggerResult::kFire;
    }
    return TriggerResult::kContinue;
  }
  template <class W>
  TriggerResult onProcessingTime(std::int64_t, const W&, TriggerContext<W>&) const {
    return TriggerResult::kContinue;
  }
  template <class W>
  void clear(const W& w, TriggerContext<W>& ctx) const {
    auto& next = ctx.getPartitionedState(descriptor_);
    if (const std::int64_t* at = next.get()) ctx.deleteEventTimeTimer(*at);
    next.clear();
    ctx.deleteEventTimeTimer(w.maxTimestamp());
  }
  bool canMerge() const { return true; }
  template <class W>
  void onMerge(const W& w, TriggerContext<W>& ctx) const {
    ctx.mergePartitionedState(descriptor_);
    if (const std::int64_t* at = ctx.getPartitionedState(descriptor_).get()) {
      ctx.registerEventTimeTimer(*at);
    }
    if (w.maxTimestamp() > ctx.currentWatermark()) ctx.registerEventTimeTimer(w.maxTimestamp());
  }

 private:
  struct Min {
    std::int64_t reduce(std::int64_t a, std::int64_t b) const { return std::min(a, b); }
  };
  explicit ContinuousEventTimeTrigger(std::int64_t interval)
      : interval_(interval), descriptor_("weir.continuous-trigger", Min{}) {}
  std::int64_t interval_;
  ReducingStateDescriptor<std::int64_t, Min> descriptor_;
};

// Turns every FIRE of the wrapped trigger into FIRE_AND_PURGE.
template <class Inner>
class PurgingTrigger {
 public:
  static PurgingTrigger of(Inner inner) { return PurgingTrigger(std::move(inner)); }
  template <class T, class W>
  TriggerResult onElement(const T& v, std::int64_t ts, const W& w, TriggerContext<W>& ctx) {
    return purge(inner_.onElement(v, ts, w, ctx));
  }
  template <class W>
  TriggerResult onEventTime(std::int64_t time, const W& w, TriggerContext<W>& ctx) {
    return purge(inner_.onEventTime(time, w, ctx));
  }
  template <class W>
  TriggerResult onProcessingTime(std::int64_t time, const W& w, TriggerContext<W>& ctx) {
    return purge(inner_.onProcessingTime(time, w, ctx));
  }
  template <class W>
  void clear(const W& w, TriggerContext<W>& ctx) {
    inner_.clear(w, ctx);
  }
  bool canMerge() const {
    if constexpr (requires { inner_.canMerge(); }) {
      return inner_.canMerge();
    } else {
      return false;
    }
  }
  template <class W>
  void onMerge(const W& w, TriggerContext<W>& ctx) {
    if constexpr (requires { inner_.onMerge(w, ctx); }) inner_.onMerge(w, ctx);
  }

 private:
  explicit PurgingTrigger(Inner inner) : inner_(std::move(inner)) {}
  static TriggerResult purge(TriggerResult r) {
    return isFire(r) ? TriggerResult::kFireAndPurge : r;
  }
  Inner inner_;
};

// ---- evictors ----

class EvictorContext {
 public:
  EvictorContext(std::int64_t watermark, std::int64_t processing_time)
      : watermark_(watermark), processing_time_(processing_time) {}
  std::int64_t currentWatermark() const { return watermark_; }
  std::int64_t currentProcessingTime() const { return processing_time_; }

 private:
  std::int64_t watermark_;
  std::int64_t processing_time_;
};

// Runs an evictor's evict(elements) before or after the window function, as configured.
template <class Derived>
class BeforeOrAfterEvictor {
 public:
  template <class T, class W>
  void evictBefore(std::vector<TimestampedValue<T>>& elements, const W&, EvictorContext&) {
    if (!after_) static_cast<Derived&>(*this).evict(elements);
  }
  template <class T, class W>
  void evictAfter(std::vector<TimestampedValue<T>>& elements, const W&, EvictorContext&) {
    if (after_) static_cast<Derived&>(*this).evict(elements);
  }

 protected:
  explicit BeforeOrAfterEvictor(bool after) : after_(after) {}

 private:
  bool after_;
};

// Keeps the last `max_count` elements (in arrival order).
class CountEvictor : public BeforeOrAfterEvictor<CountEvictor> {
 public:
  static CountEvictor of(std::size_t max_count, bool evict_after = false) {
    return CountEvictor(max_count, evict_after);
  }
  template <class T>
  void evict(std::vector<TimestampedValue<T>>& elements) const {
    if (elements.size() <= max_) return;
    elements.erase(elements.begin(),
                   elements.begin() + static_cast<std::ptrdiff_t>(elements.size() - max_));
  }

 private:
  CountEvictor(std::size_t max_count, bool after) : BeforeOrAfterEvictor(after), max_(max_count) {}
  std::size_t max_;
};

// Keeps the elements whose timestamp is within `keep` of the newest element's.
class TimeEvictor : public BeforeOrAfterEvictor<TimeEvictor> {
 public:
  static TimeEvictor of(std::chrono::milliseconds keep, bool evict_after = false) {
    return TimeEvictor(keep.count(), evict_after);
  }
  template <class T>
  void evict(std::vector<TimestampedValue<T>>& elements) const {
    if (elements.empty()) return;
    std::int64_t newest = std::numeric_limits<std::int64_t>::min();
    for (const auto& e : elements)
      newest = std::max(newest, e.timestamp);
    const std::int64_t cut = newest - keep_;
    std::erase_if(elements, [&](const TimestampedValue<T>& e) { return e.timestamp <= cut; });
  }

 private:
  TimeEvictor(std::int64_t keep, bool after) : BeforeOrAfterEvictor(after), keep_(keep) {}
  std::int64_t keep_;
};

// Keeps the elements whose delta(element, newest element) is below `threshold`;
// delta: double f(const T& a, const T& b).
template <class F>
class DeltaEvictor : public BeforeOrAfterEvictor<DeltaEvictor<F>> {
 public:
  static DeltaEvictor of(double threshold, F delta, bool evict_after = false) {
    return DeltaEvictor(threshold, std::move(delta), evict_after);
  }
  template <class T>
  void evict(std::vector<TimestampedValue<T>>& elements) {
    if (elements.empty()) return;
    const T last = elements.back().value;
    std::erase_if(elements, [&](const TimestampedValue<T>& e) {
      return delta_(e.value, last) >= threshold_;
    });
  }

 private:
  DeltaEvictor(double threshold, F delta, bool after)
      : BeforeOrAfterEvictor<DeltaEvictor<F>>(after),
        threshold_(threshold),
        delta_(std::move(delta)) {}
  double threshold_;
  F delta_;
};

struct NoEvictor {};

// ---- assigners ----

// Fixed-size, non-overlapping windows of event time.
struct TumblingEventTimeWindows {
  using Window = TimeWindow;
  using DefaultTrigger = EventTimeTrigger;
  static constexpr bool kEventTime = true;
  static constexpr bool kMerging = false;

  static TumblingEventTimeWindows of(std::chrono::milliseconds size,
                                     std::chrono::milliseconds offset = {}) {
    if (size.count() <= 0) throw std::invalid_argument("window size must be positive");
    if (offset.count() < 0 || offset >= size) {
      throw std::invalid_argument("window offset must be in [0, size)");
    }
    return {size.count(), offset.count()};
  }
  template <class T, class F>
  void assignWindows(const T&, std::int64_t ts, F&& f) const {
    const std::int64_t start = windowStartWithOffset(ts, offset, size);
    f(TimeWindow{start, start + size});
  }

  std::int64_t size = 0;
  std::int64_t offset = 0;
};

struct TumblingProcessingTimeWindows : TumblingEventTimeWindows {
  using DefaultTrigger = ProcessingTimeTrigger;
  static constexpr bool kEventTime = false;
  static TumblingProcessingTimeWindows of(std::chrono::milliseconds size,
                                          std::chrono::milliseconds offset = {}) {
    return {TumblingEventTimeWindows::of(size, offset)};
  }
};

// Windows of `size` starting every `slide`; a record belongs to size/slide of them.
struct SlidingEventTimeWindows {
  using Window = TimeWindow;
  using DefaultTrigger = EventTimeTrigger;
  static constexpr bool kEventTime = true;
  static constexpr bool kMerging = false;

  static SlidingEventTimeWindows of(std::chrono::milliseconds size, std::chrono::milliseconds slide,
                                    std::chrono::milliseconds offset = {}) {
    if (size.count() <= 0 || slide.count() <= 0) {
      throw std::invalid_argument("window size and slide must be positive");
    }
    if (offset.count() < 0 || offset >= slide) {
      throw std::invalid_argument("window offset must be in [0, slide)");
    }
    return {size.count(), slide.count(), offset.count()};
  }
  template <class T, class F>
  void assignWindows(const T&, std::int64_t ts, F&& f) const {
    const std::int64_t last_start = windowStartWithOffset(ts, offset, slide);
    for (std::int64_t start = last_start; start > ts - size; start -= slide)
      f(TimeWindow{start, start + size});
  }
  // The slices windows are combined from: gcd(size, slide) long, aligned like the windows.
  std::int64_t sliceSize() const { return std::gcd(size, slide); }

  std::int64_t size = 0;
  std::int64_t slide = 0;
  std::int64_t offset = 0;
};

struct SlidingProcessingTimeWindows : SlidingEventTimeWindows {
  using DefaultTrigger = ProcessingTimeTrigger;
  static constexpr bool kEventTime = false;
  static SlidingProcessingTimeWindows of(std::chrono::milliseconds size,
                                         std::chrono::milliseconds slide,
                                         std::chrono::milliseconds offset = {}) {
    return {SlidingEventTimeWindows::of(size, slide, offset)};
  }
};

// Merges overlapping windows (touching ones too) into the covering windows: calls
// merge(result, windows merged into it) for every result made of more than one window. Sorts
// `windows` in place; `group` is scratch space (both reused by the caller, so merging allocates
// nothing once warm).
template <class F>
void mergeTimeWindows(std::vector<TimeWindow>& windows, std::vector<TimeWindow>& group, F&& merge) {
  std::sort(windows.begin(), windows.end(),
            [](const TimeWindow& a, const TimeWindow& b) { return a.start < b.start; });
  group.clear();
  TimeWindow cover{};
  auto flush = [&] {
    if (group.size() > 1) merge(cover, group);
    group.clear();
  };
  for (const TimeWindow& w : windows) {
    if (!group.empty() && cover.intersects(w)) {
      cover = cover.cover(w);
    } else {
      flush();
      cover = w;
    }
    group.push_back(w);
  }
  flush();
}

// Sessions: a record opens [ts, ts + gap); overlapping sessions of a key merge.
template <bool kIsEventTime>
struct SessionWindows {
  using Window = TimeWindow;
  using DefaultTrigger = std::conditional_t<kIsEventTime, EventTimeTrigger, ProcessingTimeTrigger>;
  static constexpr bool kEventTime = kIsEventTime;
  static constexpr bool kMerging = true;

  static SessionWindows withGap(std::chrono::milliseconds gap) {
    if (gap.count() <= 0) throw std::invalid_argument("session gap must be positive");
    return {gap.count()};
  }
  template <class T, class F>
  void assignWindows(const T&, std::int64_t ts, F&& f) const {
    f(TimeWindow{ts, ts + gap});
  }
  template <class F>
  void mergeWindows(std::vector<TimeWindow>& windows, std::vector<TimeWindow>& group,
                    F&& merge) const {
    mergeTimeWindows(windows, group, merge);
  }

  std::int64_t gap = 0;
};
using EventTimeSessionWindows = SessionWindows<true>;
using ProcessingTimeSessionWindows = SessionWindows<false>;

// Sessions whose gap depends on the record: std::chrono::milliseconds / int64 gap(const T&).
template <bool kIsEventTime, class G>
struct DynamicSessionWindows {
  using Window = TimeWindow;
  using DefaultTrigger = std::conditional_t<kIsEventTime, EventTimeTrigger, ProcessingTimeTrigger>;
  static constexpr bool kEventTime = kIsEventTime;
  static constexpr bool kMerging = true;

  template <class T, class F>
  void assignWindows(const T& v, std::int64_t ts, F&& f) const {
    std::int64_t g = 0;
    if constexpr (requires { gap(v).count(); }) {
      g = gap(v).count();
    } else {
      g = static_cast<std::int64_t>(gap(v));
    }
    if (g <= 0) throw std::invalid_argument("dynamic session gap must be positive");
    f(TimeWindow{ts, ts + g});
  }
  template <class F>
  void mergeWindows(std::vector<TimeWindow>& windows, std::vector<TimeWindow>& group,
                    F&& merge) const {
    mergeTimeWindows(windows, group, merge);
  }

  G gap;
};
template <class G>
DynamicSessionWindows<true, G> eventTimeSessionWindowsWithDynamicGap(G gap) {
  return {std::move(gap)};
}
template <class G>
DynamicSessionWindows<false, G> processingTimeSessionWindowsWithDynamicGap(G gap) {
  return {std::move(gap)};
}

// One window per key holding every record; fires only through a custom trigger.
struct GlobalWindows {
  using Window = GlobalWindow;
  using DefaultTrigger = NeverTrigger;
  static constexpr bool kEventTime = false;
  static constexpr bool kMerging = false;
  static GlobalWindows create() { return {}; }
  template <class T, class F>
  void assignWindows(const T&, std::int64_t, F&& f) const {
    f(GlobalWindow{});
  }
};

// ---- process window functions ----

namespace detail {
class SideOutputs;
}

// What a process window function sees besides the elements (valid only during the call).
template <class W>
class WindowContext {
 public:
  const W& window() const { return *window_; }
  std::int64_t currentWatermark() const { return watermark_; }
  std::int64_t currentProcessingTime() const { return ctx_->currentProcessingTime(); }
  // Keyed state of the current key shared by all its windows (getState(...) etc.).
  const RuntimeContext& globalState() const { return *ctx_; }
  // Emits to a side output with the window's maxTimestamp().
  template <class X>
  void output(const OutputTag<X>& tag, const X& value) const {
    detail::emitSideOutput(side_outputs_, tag.id(), value, window_->maxTimestamp());
  }

  // --- SDK-internal ---
  void bind(const RuntimeContext* ctx, detail::SideOutputs* side_outputs) {
    ctx_ = ctx;
    side_outputs_ = side_outputs;
  }
  void set(const W* window, std::int64_t watermark) {
    window_ = window;
    watermark_ = watermark;
  }

 private:
  const W* window_ = nullptr;
  std::int64_t watermark_ = kMinWatermark;
  const RuntimeContext* ctx_ = nullptr;
  detail::SideOutputs* side_outputs_ = nullptr;
};

// process(key, ctx, elements, out) of a process window function (a class with that method, or a
// callable).
template <class F, class K, class W, class In, class R>
concept ProcessWindowMethod = requires(F& f, const K& k, WindowContext<W>& c,
                                       const std::vector<In>& e, Collector<R>& o) {
  f.process(k, c, e, o);
};
template <class F, class K, class W, class In, class R>
concept ProcessWindowFunction = ProcessWindowMethod<F, K, W, In, R> || std::is_invocable_v < F&,
        const K&, WindowContext<W>
&, const std::vector<In>&, Collector<R>& > ;

}  // namespace weir
