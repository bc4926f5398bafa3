// Watermark strategies at a source: timestamp assignment, bounded out-of-orderness, monotonous
// timestamps, custom generators, periodic emission and idleness.
#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include "operator_harness.h"
#include "weir/weir.h"

namespace {

using std::chrono::milliseconds;
using weir::test::Harness;
using weir::test::HarnessOptions;

struct Reading {
  long time = 0;
  int value = 0;
};

template <class G, class A>
Harness<Reading, Reading> harnessFor(weir::ConfiguredWatermarkStrategy<Reading, G, A> strategy,
                                     HarnessOptions options = {}) {
  return Harness<Reading, Reading>(
      std::make_unique<weir::detail::TimestampsAndWatermarksOperator<Reading, G, A>>(
          std::move(strategy)),
      options);
}

auto byTime() {
  return [](const Reading& r, std::int64_t) { return static_cast<std::int64_t>(r.time); };
}

}  // namespace

TEST_CASE("watermarks: bounded out-of-orderness trails the largest timestamp, periodically") {
  auto h = harnessFor(weir::WatermarkStrategy<Reading>::forBoundedOutOfOrderness(milliseconds(5))
                          .withTimestampAssigner(byTime()));
  h.open();
  h.push({100, 1});
  h.push({90, 2});
  h.push({120, 3});
  // Timestamps come from the assigner; nothing is emitted before the interval passes.
  CHECK(h.output().timestamps == std::vector<std::int64_t>{100, 90, 120});
  CHECK(h.output().watermarks.empty());
  h.advanceProcessingTime(1'000'200);
  CHECK(h.output().watermarks == std::vector<std::int64_t>{120 - 5 - 1});
  h.push({110, 4});
  h.advanceProcessingTime(1'000'400);  // no new maximum: the same watermark is not repeated
  CHECK(h.output().watermarks.size() == 1);
  h.push({130, 5});
  h.advanceProcessingTime(1'000'600);
  CHECK(h.output().watermarks == std::vector<std::int64_t>{114, 124});
  h.endInput();
  CHECK(h.output().watermarks.back() == weir::kMaxWatermark);
}

TEST_CASE("watermarks: monotonous timestamps, and records keep their own timestamp by default") {
  auto h = harnessFor(weir::WatermarkStrategy<Reading>::forMonotonousTimestamps());
  h.open();
  h.push({0, 1}, 50);
  h.push({0, 2}, 70);
  h.advanceProcessingTime(1'000'200);
  CHECK(h.output().timestamps == std::vector<std::int64_t>{50, 70});
  CHECK(h.output().watermarks == std::vector<std::int64_t>{69});
}

TEST_CASE("watermarks: a custom punctuated generator emits on events, in order with records") {
  struct EveryTenth {
    void onEvent(const Reading& r, std::int64_t ts, weir::WatermarkOutput& out) {
      if (r.value % 10 == 0) out.emitWatermark(ts);
    }
    void onPeriodicEmit(weir::WatermarkOutput&) {}
  };
  auto h = harnessFor(weir::WatermarkStrategy<Reading>::forGenerator(EveryTenth{})
                          .withTimestampAssigner([](const Reading& r) { return r.time; }));
  h.open();
  std::vector<std::pair<Reading, std::int64_t>> batch;
  for (int i = 1; i <= 25; ++i)
    batch.push_back({{i * 3, i}, weir::kNoTimestamp});
  h.pushAll(batch);
  CHECK(h.output().watermarks == std::vector<std::int64_t>{30, 60});
  CHECK(h.output().records.size() == 25);
}

TEST_CASE("watermarks: an input without records for the idle timeout turns idle, data revives it") {
  auto h = harnessFor(weir::WatermarkStrategy<Reading>::forBoundedOutOfOrderness(milliseconds(0))
                          .withTimestampAssigner(byTime())
                          .withIdleness(milliseconds(1000)));
  h.open();
  h.push({10, 1});
  h.advanceProcessingTime(1'000'200);
  CHECK(h.output().watermarks == std::vector<std::int64_t>{9});
  CHECK(h.output().statuses.empty());
  h.advanceProcessingTime(1'001'000);  // quiet since +200
  CHECK(h.output().statuses.empty());
  h.advanceProcessingTime(1'001'400);
  CHECK(h.output().statuses == std::vector<bool>{true});
  h.push({20, 2});  // active again before the record
  CHECK(h.output().statuses == std::vector<bool>{true, false});
  h.advanceProcessingTime(1'001'600);
  CHECK(h.output().watermarks == std::vector<std::int64_t>{9, 19});
}

TEST_CASE("watermarks: periodic emission can be switched off") {
  HarnessOptions options;
  options.auto_watermark_interval_ms = 0;
  auto h = harnessFor(weir::WatermarkStrategy<Reading>::forMonotonousTimestamps()
                          .withTimestampAssigner(byTime()),
                      options);
  h.open();
  h.push({10, 1});
  CHECK(h.op().nextProcessingTime() == weir::kNoDeadline);
  h.advanceProcessingTime(2'000'000);
  CHECK(h.output().watermarks.empty());
}
