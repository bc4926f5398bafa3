// Event time on the real runtime: watermarks travel from parallel sources through network
// channels; a keyed operator's timers fire only when every input's watermark passed them, and an
// idle source does not hold them back.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/job_test_util.h"
#include "weir/weir.h"

namespace {

using weir::testing::eventually;
using weir::testing::startJob;

struct Tick {
  int source = 0;
  long time = 0;
  WEIR_SERDE_FIELDS(source, time)
};

// Subtask s emits Tick{s, t} for t in [0, count); subtask 1 pauses after every 10 records, so its
// watermark lags subtask 0's. With `silent_second`, subtask 1 emits nothing at all, and with
// `unbounded` no subtask ever ends.
struct TickSource {
  long count = 1000;
  bool silent_second = false;
  bool unbounded = false;
  int subtask = 0;
  long next = 0;
  bool pause = false;
  void open(const weir::RuntimeContext& ctx) { subtask = ctx.subtaskIndex(); }
  bool bounded() const { return !unbounded; }
  weir::SourceStatus pollNext(weir::Collector<Tick>& out) {
    const bool done = (subtask == 1 && silent_second) || next >= count;
    if (done) {
      return unbounded ? weir::SourceStatus::kNothingAvailable : weir::SourceStatus::kEndOfInput;
    }
    if (subtask == 1 && pause) {
      pause = false;
      return weir::SourceStatus::kNothingAvailable;
    }
    for (int i = 0; i < 10 && next < count; ++i)
      out.collect(Tick{subtask, next++});
    pause = true;
    return weir::SourceStatus::kMoreAvailable;
  }
};

// Emits a watermark with every record: the record's own timestamp.
struct EveryRecord {
  void onEvent(const Tick&, std::int64_t ts, weir::WatermarkOutput& out) { out.emitWatermark(ts); }
  void onPeriodicEmit(weir::WatermarkOutput&) {}
};

std::mutex g_mu;
std::vector<std::string> g_fired;  // "window:count:source-mask"

// Counts each 100 ms window's records (the key is the window); reports when the watermark passes
// the window's end.
struct WindowCount {
  void open(const weir::RuntimeContext& ctx) {
    count = &ctx.getState(weir::ValueStateDescriptor<long>("count"));
  }
  void processElement(const Tick&, weir::KeyedContext<long>& ctx, weir::Collector<std::string>&) {
    count->update(count->valueOr(0) + 1);
    ctx.timerService().registerEventTimeTimer(ctx.currentKey() * 100 + 99);
  }
  void onTimer(std::int64_t, weir::KeyedContext<long>& ctx, weir::Collector<std::string>& out) {
    out.collect(std::to_string(ctx.currentKey()) + ":" + std::to_string(count->valueOr(0)));
    count->clear();
  }
  weir::ValueState<long>* count = nullptr;
};

void buildWindows(weir::JobBuilder& job, TickSource source, std::chrono::milliseconds idleness) {
  auto strategy = weir::WatermarkStrategy<Tick>::forGenerator(EveryRecord{})
                      .withTimestampAssigner([](const Tick& t) { return t.time; })
                      .withIdleness(idleness);
  job.addSource<Tick>(source, "ticks")
      .parallelism(2)
      .assignTimestampsAndWatermarks(strategy)
      .keyBy([](const Tick& t) { return t.time / 100; })
      .process(WindowCount{})
      .parallelism(2)
      .addSink([](const std::string& line) {
        std::lock_guard<std::mutex> lock(g_mu);
        g_fired.push_back(line);
      })
      .parallelism(1);
}

std::vector<std::string> fired() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_fired;
}

}  // namespace

TEST_CASE("event time: timers fire once every parallel input's watermark passed them") {
  g_fired.clear();
  auto job = startJob(
      [](weir::JobBuilder& job) { buildWindows(job, TickSource{}, std::chrono::milliseconds(0)); },
      2);
  REQUIRE(job.isOk());
  REQUIRE((*job)->wait().isOk());
  auto lines = fired();
  std::sort(lines.begin(), lines.end());
  std::vector<std::string> expected;
  for (int w = 0; w < 10; ++w)
    expected.push_back(std::to_string(w) + ":200");  // both sources' records, one firing each
  std::sort(expected.begin(), expected.end());
  CHECK(lines == expected);
}

TEST_CASE("event time: an idle source subtask does not hold back the watermark") {
  g_fired.clear();
  weir::engine::TaskExecutorOptions options;
  options.auto_watermark_interval = std::chrono::milliseconds(5);
  TickSource source;
  source.silent_second = true;
  source.unbounded = true;
  auto job = startJob(
      [source](weir::JobBuilder& job) {
        buildWindows(job, source, std::chrono::milliseconds(20));
      },
      2, {}, options);
  REQUIRE(job.isOk());
  // Without idleness the silent subtask would keep the watermark at its minimum forever.
  CHECK(eventually([] { return fired().size() == 10; }, std::chrono::seconds(20)));
  auto lines = fired();
  std::sort(lines.begin(), lines.end());
  std::vector<std::string> expected;
  for (int w = 0; w < 10; ++w)
    expected.push_back(std::to_string(w) + ":100");
  std::sort(expected.begin(), expected.end());
  CHECK(lines == expected);
  (*job)->cancel();
  CHECK((*job)->wait().code() == weir::Status::Code::kCancelled);
}
