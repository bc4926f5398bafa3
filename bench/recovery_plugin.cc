// The job of the recovery benchmark (bench/recovery_bench.cc): numbers 0..count-1 from a
// generator source (its position in operator state), throttled to `rate` records per second per
// subtask, keyed by v % keys; a keyed process function counts per key in value state (small
// state: one counter per key) and emits "key,count"; a print sink writes the lines to the
// TaskManager's standard output, flushed after every batch, so output is visible in the
// TaskManager's stdout as soon as it is produced.
//
//   --arg count=N   numbers in all (default 1e12: runs until cancelled)
//   --arg keys=K    (default 16)
//   --arg rate=R    records per second per subtask (default 100000)
//
// The source emits batches of about a thousand records and the throttle sleeps inside the batch,
// so a batch reaches the sink about 1000 / rate seconds after its first record was generated:
// 10 ms at the default rate (at 2000/s it was half a second, from start and from every restore).
#include <weir/weir.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace {

// Sleeps so that each subtask passes at most `rate` records per second.
struct Throttle {
  std::int64_t rate = 100000;
  std::int64_t seen_ = 0;
  std::chrono::steady_clock::time_point start_;

  void open(const weir::RuntimeContext&) { start_ = std::chrono::steady_clock::now(); }
  std::int64_t map(const std::int64_t& v) {
    if (++seen_ % 16 == 0) {
      std::this_thread::sleep_until(start_ + std::chrono::microseconds(seen_ * 1000000 / rate));
    }
    return v;
  }
};

struct CountPerKey {
  weir::ValueState<std::int64_t>* count_ = nullptr;
  void open(const weir::RuntimeContext& ctx) {
    count_ = &ctx.getState(weir::ValueStateDescriptor<std::int64_t>("count"));
  }
  void processElement(const std::int64_t&, weir::KeyedContext<std::int64_t>& ctx,
                      weir::Collector<std::string>& out) {
    const std::int64_t c = count_->valueOr(0) + 1;
    count_->update(c);
    out.collect(std::to_string(ctx.currentKey()) + "," + std::to_string(c));
  }
};

void build(weir::JobBuilder& job) {
  const auto& args = job.args();
  const auto count = static_cast<std::uint64_t>(args.getInt("count", 1'000'000'000'000));
  const std::int64_t keys = args.getInt("keys", 16);
  Throttle throttle;
  throttle.rate = args.getInt("rate", 100000);
  if (keys <= 0 || throttle.rate <= 0) throw weir::JobDefinitionError("keys, rate must be > 0");

  job.name("recovery bench");
  job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, count)
      .uid("numbers")
      .map(throttle)
      .uid("throttle")
      .keyBy([keys](const std::int64_t& v) { return v % keys; })
      .process(CountPerKey{})
      .uid("count")
      .print()
      .uid("print");
}

}  // namespace

WEIR_PLUGIN("recovery-bench", "1.0.0", build)
