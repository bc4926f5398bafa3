// Event time at the sources: where records get their timestamps and how watermarks are generated,
// in the shape of Flink's WatermarkStrategy.
//
//   stream.assignTimestampsAndWatermarks(
//       weir::WatermarkStrategy<Event>::forBoundedOutOfOrderness(std::chrono::seconds(5))
//           .withTimestampAssigner([](const Event& e, std::int64_t) { return e.time_ms; })
//           .withIdleness(std::chrono::minutes(1)));
//
// Usually applied right after a source, so it runs in the source's chain. A watermark W says "no
// record with a timestamp <= W is expected any more"; records that still come are late.
//
// Generators emit watermarks on events (punctuated) or periodically: every
// `pipeline.auto-watermark-interval` of processing time (default 200 ms), onPeriodicEmit is called.
// A custom generator is any class with
//   void onEvent(const T& event, std::int64_t timestamp, weir::WatermarkOutput& out);
//   void onPeriodicEmit(weir::WatermarkOutput& out);
// Watermarks that do not advance are ignored, so generators may emit the same one repeatedly.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "weir/task_api.h"

namespace weir {

// Where a watermark generator emits.
class WatermarkOutput {
 public:
  virtual ~WatermarkOutput() = default;
  virtual void emitWatermark(std::int64_t watermark) = 0;
  // This input has no data for now: downstream operators stop waiting for its watermark.
  virtual void markIdle() = 0;
  // Data flows again (also implied by emitting a watermark).
  virtual void markActive() = 0;
};

// Watermarks trailing the largest timestamp seen by a fixed bound: a record may be at most
// `max_out_of_orderness` older than the newest one before it counts as late.
class BoundedOutOfOrdernessWatermarks {
 public:
  explicit BoundedOutOfOrdernessWatermarks(std::chrono::milliseconds max_out_of_orderness)
      : delay_(max_out_of_orderness.count()), max_timestamp_(kMinWatermark + delay_ + 1) {}

  template <class T>
  void onEvent(const T& /*event*/, std::int64_t timestamp, WatermarkOutput& /*out*/) {
    max_timestamp_ = std::max(max_timestamp_, timestamp);
  }
  void onPeriodicEmit(WatermarkOutput& out) { out.emitWatermark(max_timestamp_ - delay_ - 1); }

 private:
  std::int64_t delay_;
  std::int64_t max_timestamp_;
};

// For timestamps that never decrease within one source subtask.
class AscendingTimestampsWatermarks : public BoundedOutOfOrdernessWatermarks {
 public:
  AscendingTimestampsWatermarks() : BoundedOutOfOrdernessWatermarks(std::chrono::milliseconds(0)) {}
};

// Never emits a watermark: event time does not advance (before end of input).
class NoWatermarks {
 public:
  template <class T>
  void onEvent(const T&, std::int64_t, WatermarkOutput&) {}
  void onPeriodicEmit(WatermarkOutput&) {}
};

// Keeps the timestamp the record already has (from its source or an upstream operator).
struct RecordTimestampAssigner {
  template <class T>
  std::int64_t operator()(const T& /*element*/, std::int64_t record_timestamp) const {
    return record_timestamp;
  }
};

template <class G, class T>
concept WatermarkGenerator = requires(G& g, const T& v, std::int64_t ts, WatermarkOutput& out) {
  g.onEvent(v, ts, out);
  g.onPeriodicEmit(out);
};

// A complete strategy: generator, timestamp assigner and idleness. Built through
// WatermarkStrategy<T>; each with... returns a new strategy.
template <class T, class Generator, class Assigner>
class ConfiguredWatermarkStrategy {
 public:
  ConfiguredWatermarkStrategy(Generator generator, Assigner assigner,
                              std::chrono::milliseconds idle_timeout)
      : generator_(std::move(generator)),
        assigner_(std::move(assigner)),
        idle_timeout_(idle_timeout) {}

  // F: std::int64_t f(const T& element, std::int64_t record_timestamp), or
  //    std::int64_t f(const T& element)
  template <class F>
  auto withTimestampAssigner(F f) const {
    static_assert(std::is_invocable_r_v<std::int64_t, F&, const T&, std::int64_t> ||
                      std::is_invocable_r_v<std::int64_t, F&, const T&>,
                  "withTimestampAssigner(f): f must be callable as `std::int64_t f(const T&, "
                  "std::int64_t record_timestamp)` or `std::int64_t f(const T&)`, returning "
                  "milliseconds since the epoch");
    return ConfiguredWatermarkStrategy<T, Generator, F>(generator_, std::move(f), idle_timeout_);
  }

  // An input without records for `timeout` (processing time) is marked idle, so that it does not
  // hold back the watermark downstream; it is active again with its next record.
  ConfiguredWatermarkStrategy withIdleness(std::chrono::milliseconds timeout) const {
    ConfiguredWatermarkStrategy s = *this;
    s.idle_timeout_ = timeout;
    return s;
  }

  const Generator& generator() const { return generator_; }
  std::chrono::milliseconds idleTimeout() const { return idle_timeout_; }

  std::int64_t extractTimestamp(const T& element, std::int64_t record_timestamp) {
    if constexpr (std::is_invocable_r_v<std::int64_t, Assigner&, const T&, std::int64_t>) {
      return assigner_(element, record_timestamp);
    } else {
      return assigner_(element);
    }
  }

 private:
  Generator generator_;
  Assigner assigner_;
  std::chrono::milliseconds idle_timeout_{0};  // 0: never idle
};

// Entry points, as in Flink: WatermarkStrategy<Event>::forBoundedOutOfOrderness(...).
template <class T>
struct WatermarkStrategy {
  static auto forBoundedOutOfOrderness(std::chrono::milliseconds max_out_of_orderness) {
    return ConfiguredWatermarkStrategy<T, BoundedOutOfOrdernessWatermarks,
                                       RecordTimestampAssigner>(
        BoundedOutOfOrdernessWatermarks(max_out_of_orderness), {}, std::chrono::milliseconds(0));
  }
  static auto forMonotonousTimestamps() {
    return ConfiguredWatermarkStrategy<T, AscendingTimestampsWatermarks, RecordTimestampAssigner>(
        AscendingTimestampsWatermarks(), {}, std::chrono::milliseconds(0));
  }
  static auto noWatermarks() {
    return ConfiguredWatermarkStrategy<T, NoWatermarks, RecordTimestampAssigner>(
        NoWatermarks(), {}, std::chrono::milliseconds(0));
  }
  // A custom generator (see the top of this file).
  template <class G>
  static auto forGenerator(G generator) {
    static_assert(WatermarkGenerator<G, T>,
                  "forGenerator(g): g needs `void onEvent(const T&, std::int64_t, "
                  "weir::WatermarkOutput&)` and `void onPeriodicEmit(weir::WatermarkOutput&)`");
    return ConfiguredWatermarkStrategy<T, G, RecordTimestampAssigner>(
        std::move(generator), {}, std::chrono::milliseconds(0));
  }
};

}  // namespace weir
