// Event-time jobs for the cluster tests (test/engine/cluster/event_time_cluster_test.cc), chosen
// by --arg mode=...:
//
//   skew  (default) a parallelism-2 source "ticks" whose subtask 0 emits ticks with timestamps
//         0, 1, 2, ... (ten per millisecond, forever) and whose subtask 1 emits the timestamps
//         0 .. 549 at once and then nothing, never ending. Each record carries its own timestamp
//         as watermark. keyBy(timestamp / 100) to "windows", a keyed process function counting
//         each 100 ms window's records per source and registering an event-time timer at the
//         window's end; when it fires it prints
//           "fired window=W from0=A from1=B watermark=M"
//         (M: the watermark the timer fired at). --arg idleness_ms=N marks a source subtask idle
//         after N ms without records (0, the default: never).
//   late  a parallelism-1 source "late source" emitting 200 records at once, then nothing (it
//         never ends): record i has key (i / 10) % 10 and timestamp 1000 + 10 i, except every
//         tenth (i % 10 == 9), which has timestamp i: far behind the watermark (each record's
//         timestamp), so late. keyBy(key) to "late-windows", a keyed process function that
//         emits nothing.
#include <weir/weir.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace {

struct Tick {
  int source = 0;
  std::int64_t time = 0;
  WEIR_SERDE_FIELDS(source, time)
};

class SkewedTicks {
 public:
  void open(const weir::RuntimeContext& ctx) { subtask_ = ctx.subtaskIndex(); }
  bool bounded() const { return false; }
  weir::SourceStatus pollNext(weir::Collector<Tick>& out) {
    if (subtask_ == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      for (int i = 0; i < 10; ++i)
        out.collect(Tick{0, next_++});
      return weir::SourceStatus::kMoreAvailable;
    }
    if (next_ > 0) return weir::SourceStatus::kNothingAvailable;
    for (; next_ < 550; ++next_)
      out.collect(Tick{1, next_});
    return weir::SourceStatus::kMoreAvailable;
  }

 private:
  int subtask_ = 0;
  std::int64_t next_ = 0;
};

// Emits a watermark with every record: the record's own timestamp.
struct EveryRecord {
  template <class T>
  void onEvent(const T&, std::int64_t ts, weir::WatermarkOutput& out) {
    out.emitWatermark(ts);
  }
  void onPeriodicEmit(weir::WatermarkOutput&) {}
};

struct WindowCount {
  void open(const weir::RuntimeContext& ctx) {
    counts = &ctx.getState(weir::ValueStateDescriptor<std::pair<long, long>>("counts"));
  }
  void processElement(const Tick& t, weir::KeyedContext<std::int64_t>& ctx,
                      weir::Collector<std::string>&) {
    auto c = counts->valueOr({0, 0});
    (t.source == 0 ? c.first : c.second) += 1;
    counts->update(c);
    ctx.timerService().registerEventTimeTimer(ctx.currentKey() * 100 + 99);
  }
  void onTimer(std::int64_t, weir::KeyedContext<std::int64_t>& ctx,
               weir::Collector<std::string>& out) {
    const auto c = counts->valueOr({0, 0});
    out.collect("fired window=" + std::to_string(ctx.currentKey()) +
                " from0=" + std::to_string(c.first) + " from1=" + std::to_string(c.second) +
                " watermark=" + std::to_string(ctx.timerService().currentWatermark()));
    counts->clear();
  }
  weir::ValueState<std::pair<long, long>>* counts = nullptr;
};

struct Keyed {
  std::int64_t key = 0;
  std::int64_t time = 0;
  WEIR_SERDE_FIELDS(key, time)
};

class LateSource {
 public:
  bool bounded() const { return false; }
  weir::SourceStatus pollNext(weir::Collector<Keyed>& out) {
    if (done_) return weir::SourceStatus::kNothingAvailable;
    for (std::int64_t i = 0; i < 200; ++i)
      out.collect(Keyed{(i / 10) % 10, i % 10 == 9 ? i : 1000 + 10 * i});
    done_ = true;
    return weir::SourceStatus::kMoreAvailable;
  }

 private:
  bool done_ = false;
};

struct Ignore {
  void processElement(const Keyed&, weir::KeyedContext<std::int64_t>&,
                      weir::Collector<std::int64_t>&) {}
};

void build(weir::JobBuilder& job) {
  const std::string mode = job.args().get("mode", "skew");
  if (mode == "late") {
    job.name("late records");
    job.addSource<Keyed>(LateSource{}, "late source")
        .uid("late-source")
        .parallelism(1)
        .assignTimestampsAndWatermarks(
            weir::WatermarkStrategy<Keyed>::forGenerator(EveryRecord{})
                .withTimestampAssigner([](const Keyed& k) { return k.time; }))
        .uid("late-timestamps")
        .parallelism(1)
        .keyBy([](const Keyed& k) { return k.key; })
        .process(Ignore{})
        .uid("late-windows")
        .addSink([](const std::int64_t&) {})
        .uid("discard");
    return;
  }
  job.name("skewed ticks");
  const std::int64_t idleness_ms = job.args().getInt("idleness_ms", 0);
  job.addSource<Tick>(SkewedTicks{}, "ticks")
      .uid("ticks")
      .assignTimestampsAndWatermarks(
          weir::WatermarkStrategy<Tick>::forGenerator(EveryRecord{})
              .withTimestampAssigner([](const Tick& t) { return t.time; })
              .withIdleness(std::chrono::milliseconds(idleness_ms)))
      .uid("timestamps")
      .keyBy([](const Tick& t) { return t.time / 100; })
      .process(WindowCount{})
      .uid("windows")
      .print()
      .uid("print");
}

}  // namespace

WEIR_PLUGIN("event_time_job", "1.0.0", build)
