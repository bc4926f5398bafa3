// Jobs for the cluster integration tests (test/engine/cluster/), chosen by --arg mode=...:
//
//   numbers  (default) count=N numbers, keyed by v % 10, a running sum per key, printed:
//            "k> (key,sum)"; the label arg prefixes every printed line (to tell plugin versions
//            apart when two run side by side)
//   slow     an unbounded source rebalanced into a sink that sleeps sleep_us per record: the
//            source is back-pressured across TaskManagers
//   fail     numbers whose map throws at record fail_at
//   forever  an unbounded source into a discarding sink (runs until cancelled or a failure)
//   steady   an unbounded source that is never idle but emits only one record every 5 ms,
//            rebalanced into a discarding sink: its buffers fill slowly, so only the buffer
//            timeout sends them
//
// Built twice (CMakeLists.txt): cluster_job.so reports version 1.0.0, cluster_job_v2.so 2.0.0 and
// labels its lines "v2".
#include <weir/weir.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

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

struct Discard {
  void invoke(const std::int64_t&) {}
};

void build(weir::JobBuilder& job) {
  const std::string mode = job.args().get("mode", "numbers");
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
