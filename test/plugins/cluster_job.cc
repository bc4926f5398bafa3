// Jobs for the cluster integration tests (test/engine/cluster/), chosen by --arg mode=...:
//
//   numbers  (default) count=N numbers, keyed by v % 10, a running sum per key, printed:
//            "k> (key,sum)"; the label arg prefixes every printed line (to tell plugin versions
//            apart when two run side by side)
//   slow     an unbounded source rebalanced into a sink that sleeps sleep_us per record: the
//            source is back-pressured across TaskManagers
//   backpressured  an unbounded source of record_bytes-byte strings, one per poll (so it reacts
//            to checkpoint triggers whenever it gets an output buffer), rebalanced into a sink
//            that sleeps sleep_us per record: every buffer between them stays queued for long
//   fail     numbers whose map throws at record fail_at
//   forever  an unbounded source into a discarding sink (runs until cancelled or a failure)
//   steady   an unbounded source that is never idle but emits only one record every 5 ms,
//            rebalanced into a discarding sink: its buffers fill slowly, so only the buffer
//            timeout sends them
//   timers   count=N numbers with event time = the number, keyed by (v % 7, v / 100): keyed
//            state of every kind and event-time timers (one per window end, one deleted or kept
//            per 50 numbers); one line per firing, written to the file out=PATH (one sink). Its
//            output does not depend on timing, so runs on different state backends compare.
//
// Built twice (CMakeLists.txt): cluster_job.so reports version 1.0.0, cluster_job_v2.so 2.0.0 and
// labels its lines "v2".
#include <weir/weir.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#ifndef CLUSTER_JOB_VERSION
#define CLUSTER_JOB_VERSION "1.0.0"
#define CLUSTER_JOB_LABEL "v1"
#endif

namespace {

using KeySum = std::pair<std::int64_t, std::int64_t>;

struct SlowSink {
  std::int64_t sleep_us = 1000;
  void invoke(const std::string&) {
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  }
};

// Never reports "nothing available" (which would flush at once): it is busy, just slow.
class SteadySource {
 public:
  weir::SourceStatus pollNext(weir::Collector<std::int64_t>& out) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    out.collect(next_++);
    return weir::SourceStatus::kMoreAvailable;
  }

 private:
  std::int64_t next_ = 0;
};

// One record per poll, never idle.
class BlobSource {
 public:
  explicit BlobSource(std::int64_t bytes) : bytes_(bytes) {}
  weir::SourceStatus pollNext(weir::Collector<std::string>& out) {
    out.collect(std::string(static_cast<std::size_t>(bytes_), char('a' + next_++ % 26)));
    return weir::SourceStatus::kMoreAvailable;
  }

 private:
  std::int64_t bytes_ = 1000;
  std::int64_t next_ = 0;
};

struct Discard {
  void invoke(const std::int64_t&) {}
};

// Per key (one key per residue and 100-number window): count, sum, elements and residues mod 3;
// reported and cleared when the watermark passes the window's end.
struct WindowReport {
  void open(const weir::RuntimeContext& ctx) {
    count_ = &ctx.getState(weir::ValueStateDescriptor<std::int64_t>("count"));
    sum_ = &ctx.getReducingState(
        weir::ReducingStateDescriptor<std::int64_t, std::plus<std::int64_t>>("sum", {}));
    values_ = &ctx.getListState(weir::ListStateDescriptor<std::int64_t>("values"));
    residues_ = &ctx.getMapState(weir::MapStateDescriptor<std::int64_t, std::int64_t>("residues"));
  }
  void processElement(const std::int64_t& v, weir::KeyedContext<std::string>& ctx,
                      weir::Collector<std::string>&) {
    count_->update(count_->valueOr(0) + 1);
    sum_->add(v);
    values_->add(v);
    const std::int64_t* r = residues_->get(v % 3);
    residues_->put(v % 3, r != nullptr ? *r + 1 : 1);
    const std::int64_t end = v / 100 * 100 + 99;
    ctx.timerService().registerEventTimeTimer(end);
    if (v % 50 == 0) ctx.timerService().registerEventTimeTimer(end + 1001);
    if (v % 100 == 0) ctx.timerService().deleteEventTimeTimer(end + 1001);
  }
  void onTimer(std::int64_t time, weir::KeyedContext<std::string>& ctx,
               weir::Collector<std::string>& out) {
    if (time % 100 != 99) {
      out.collect(ctx.currentKey() + " late " + std::to_string(time));
      return;
    }
    std::int64_t listed = 0;
    for (std::int64_t x : values_->get())
      listed += x;
    std::string line = ctx.currentKey() + " at " + std::to_string(time) +
                       " count=" + std::to_string(count_->valueOr(0)) +
                       " sum=" + std::to_string(sum_->get() ? *sum_->get() : 0) +
                       " listed=" + std::to_string(listed) + " residues=";
    auto residues = residues_->entries();  // in no particular order on the heap
    std::sort(residues.begin(), residues.end());
    for (const auto& [k, n] : residues)
      line += std::to_string(k) + ":" + std::to_string(n) + ",";
    out.collect(line);
    count_->clear();
    sum_->clear();
    values_->clear();
    residues_->clear();
  }
  weir::ValueState<std::int64_t>* count_ = nullptr;
  weir::ReducingState<std::int64_t>* sum_ = nullptr;
  weir::ListState<std::int64_t>* values_ = nullptr;
  weir::MapState<std::int64_t, std::int64_t>* residues_ = nullptr;
};

class FileSink {
 public:
  explicit FileSink(std::string path) : path_(std::move(path)) {}
  FileSink(const FileSink& other) : path_(other.path_) {}  // each instance opens its own file
  void open(const weir::RuntimeContext&) { out_.open(path_, std::ios::trunc); }
  void invoke(const std::string& line) { out_ << line << "\n"; }
  void close() { out_.close(); }

 private:
  std::string path_;
  std::ofstream out_;
};

void build(weir::JobBuilder& job) {
  const std::string mode = job.args().get("mode", "numbers");
  if (mode == "timers") {
    job.name("timers");
    const auto count = static_cast<std::uint64_t>(job.args().getInt("count", 2000));
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, count)
        .uid("numbers")
        .assignTimestampsAndWatermarks(
            weir::WatermarkStrategy<std::int64_t>::forMonotonousTimestamps().withTimestampAssigner(
                [](const std::int64_t& v, std::int64_t) { return v; }))
        .uid("timestamps")
        .keyBy([](const std::int64_t& v) {
          return "k" + std::to_string(v % 7) + "-w" + std::to_string(v / 100);
        })
        .process(WindowReport{})
        .uid("report")
        .addSink(FileSink(job.args().get("out", "timers.out")))
        .uid("file")
        .parallelism(1);
    return;
  }
  if (mode == "slow") {
    job.name("slow sink");
    const std::int64_t sleep_us = job.args().getInt("sleep_us", 1000);
    job.fromGenerator([](std::uint64_t i) { return std::string(100, char('a' + i % 26)); })
        .uid("source")
        .name("source")
        .rebalance()
        .addSink(SlowSink{sleep_us})
        .uid("slow-sink")
        .name("slow sink");
    return;
  }
  if (mode == "backpressured") {
    job.name("back-pressured");
    const std::int64_t sleep_us = job.args().getInt("sleep_us", 20000);
    job.addSource<std::string>(BlobSource(job.args().getInt("record_bytes", 1000)), "source")
        .uid("source")
        .rebalance()
        .addSink(SlowSink{sleep_us})
        .uid("slow-sink")
        .name("slow sink");
    return;
  }
  if (mode == "forever") {
    job.name("forever");
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); })
        .uid("source")
        .rebalance()
        .addSink(Discard{})
        .uid("discard");
    return;
  }
  if (mode == "steady") {
    job.name("steady");
    job.addSource<std::int64_t>(SteadySource{}, "steady source")
        .uid("source")
        .rebalance()
        .addSink(Discard{})
        .uid("sink");
    return;
  }
  if (mode == "fail") {
    job.name("failing job");
    const std::int64_t fail_at = job.args().getInt("fail_at", 100);
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, 1000000)
        .uid("source")
        .rebalance()
        .map([fail_at](const std::int64_t& v) {
          if (v == fail_at) throw std::runtime_error("record " + std::to_string(v) + " is poison");
          return v;
        })
        .uid("poison")
        .addSink(Discard{})
        .uid("discard");
    return;
  }
  job.name("numbers " CLUSTER_JOB_LABEL);
  const auto count = static_cast<std::uint64_t>(job.args().getInt("count", 1000));
  job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, count)
      .uid("numbers")
      .map([](const std::int64_t& v) { return KeySum(v % 10, v); })
      .uid("pair")
      .keyBy([](const KeySum& p) { return p.first; })
      .reduce([](const KeySum& a, const KeySum& b) { return KeySum(a.first, a.second + b.second); })
      .uid("sum")
      .map([](const KeySum& p) {
        return std::string(CLUSTER_JOB_LABEL " (") + std::to_string(p.first) + "," +
               std::to_string(p.second) + ")";
      })
      .uid("format")
      .print()
      .uid("print");
}

}  // namespace

WEIR_PLUGIN("cluster_job", CLUSTER_JOB_VERSION, build)
