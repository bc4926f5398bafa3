// The job of the exactly-once tests (test/engine/cluster/exactly_once_test.cc): numbers
// 0..count-1 from a generator source (its position in operator state), slowed down so that the
// job runs long enough to be killed, keyed by v % keys; a keyed process function counts per key
// in value state and emits "key,count" for every record; an exactly-once file sink writes the
// lines to out=DIR. The committed output is exactly one line "k,c" for each key k and
// c = 1..(numbers with that key), whatever failed in between.
//
// Arguments: count (default 20000), keys (16), rate (records per second per subtask, 20000),
// slow_us (the counting function sleeps this long per record, 0: no sleep; with a fast source the
// job is then back-pressured), out (the sink's directory, required), fail_marker (optional: the
// first subtask that sees record fail_at creates this file and throws; with the file present
// nothing throws again), max_parallelism (optional), counter_uid (the keyed counter's uid,
// default "count": another name makes a different job for savepoints), padding (optional: the
// numbers cross the keyed exchange as decimal strings followed by this many spaces, so that
// records can be larger than a network buffer).
#include <weir/weir.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

// Sleeps so that each subtask passes at most `rate` records per second.
struct Throttle {
  std::int64_t rate = 20000;
  std::int64_t fail_at = -1;
  std::string fail_marker;
  std::int64_t seen_ = 0;
  std::chrono::steady_clock::time_point start_;

  void open(const weir::RuntimeContext&) { start_ = std::chrono::steady_clock::now(); }
  std::int64_t map(const std::int64_t& v) {
    if (v == fail_at && !fail_marker.empty() && !std::filesystem::exists(fail_marker)) {
      std::ofstream(fail_marker) << "failed once\n";
      throw std::runtime_error("injected failure at record " + std::to_string(v));
    }
    if (++seen_ % 64 == 0) {
      const auto due = start_ + std::chrono::microseconds(seen_ * 1000000 / rate);
      std::this_thread::sleep_until(due);
    }
    return v;
  }
};

template <class In>
struct CountPerKey {
  std::int64_t slow_us = 0;
  weir::ValueState<std::int64_t>* count_ = nullptr;
  void open(const weir::RuntimeContext& ctx) {
    count_ = &ctx.getState(weir::ValueStateDescriptor<std::int64_t>("count"));
  }
  void processElement(const In& v, weir::KeyedContext<std::int64_t>& ctx,
                      weir::Collector<std::string>& out) {
    (void)v;
    if (slow_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
    const std::int64_t c = count_->valueOr(0) + 1;
    count_->update(c);
    out.collect(std::to_string(ctx.currentKey()) + "," + std::to_string(c));
  }
};

void build(weir::JobBuilder& job) {
  const auto& args = job.args();
  const std::uint64_t count = static_cast<std::uint64_t>(args.getInt("count", 20000));
  const std::int64_t keys = args.getInt("keys", 16);
  Throttle throttle;
  throttle.rate = args.getInt("rate", 20000);
  throttle.fail_at = args.getInt("fail_at", -1);
  throttle.fail_marker = args.get("fail_marker", "");
  const std::string out = args.get("out", "");
  if (out.empty()) throw std::invalid_argument("exactly_once_job needs --arg out=DIR");

  job.name("exactly-once counts");
  if (const std::int64_t max = args.getInt("max_parallelism", 0); max > 0) {
    job.maxParallelism(static_cast<int>(max));
  }
  const std::string counter_uid = args.get("counter_uid", "count");
  const std::int64_t slow_us = args.getInt("slow_us", 0);
  auto numbers =
      job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, count)
          .uid("numbers")
          .map(throttle)
          .uid("throttle");
  auto count_and_commit = [&](auto keyed, auto counter) {
    keyed.process(counter)
        .uid(counter_uid)
        .addSink(weir::ExactlyOnceFileSink<std::string>(out), "Counts to files")
        .uid("files");
  };
  if (const std::int64_t padding = args.getInt("padding", 0); padding > 0) {
    auto padded = numbers
                      .map([padding](const std::int64_t& v) {
                        std::string s = std::to_string(v);
                        s.append(static_cast<std::size_t>(padding), ' ');
                        return s;
                      })
                      .uid("pad");
    count_and_commit(padded.keyBy([keys](const std::string& s) {
      return static_cast<std::int64_t>(std::stoll(s)) % keys;
    }),
                     CountPerKey<std::string>{slow_us});
  } else {
    count_and_commit(numbers.keyBy([keys](const std::int64_t& v) { return v % keys; }),
                     CountPerKey<std::int64_t>{slow_us});
  }
}

}  // namespace

WEIR_PLUGIN("exactly-once-job", "1.0.0", build)
