// Timers of keyed process functions against a brute-force model on random streams: event-time and
// processing-time timers registered and deleted per key fire exactly once each, with their key
// current, event-time ones at the first watermark at or past their time.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "operator_harness.h"
#include "weir/weir.h"

namespace {

using weir::test::Harness;
using weir::test::HarnessOptions;

struct Command {
  std::string key;
  std::int64_t time = 0;  // the timer's time
  bool remove = false;
  bool processing = false;
  WEIR_SERDE_FIELDS(key, time, remove, processing)
};

std::string keyOf(const Command& c) {
  return c.key;
}
using KeyF = std::string (*)(const Command&);

// Registers or deletes the timer a command names; reports each firing as "key time domain".
struct TimerCommands {
  void processElement(const Command& c, weir::KeyedContext<std::string>& ctx,
                      weir::Collector<std::string>&) {
    auto& timers = ctx.timerService();
    if (c.processing) {
      if (c.remove) {
        timers.deleteProcessingTimeTimer(c.time);
      } else {
        timers.registerProcessingTimeTimer(c.time);
      }
    } else if (c.remove) {
      timers.deleteEventTimeTimer(c.time);
    } else {
      timers.registerEventTimeTimer(c.time);
    }
  }
  void onTimer(std::int64_t t, weir::KeyedContext<std::string>& ctx,
               weir::Collector<std::string>& out) {
    const bool processing = ctx.timeDomain() == weir::TimeDomain::kProcessingTime;
    out.collect(
        ctx.currentKey() + " " + std::to_string(t) +
        (processing ? " p" : " e@" + std::to_string(ctx.timerService().currentWatermark())));
  }
};

void checkTimers(unsigned seed, HarnessOptions options) {
  CAPTURE(seed);
  const bool rocks = options.backend == weir::StateBackendKind::kRocksDb;
  const bool kv_timers = options.timers_in_kv_store;
  CAPTURE(rocks);
  CAPTURE(kv_timers);
  options.start_time = 0;
  Harness<Command, std::string> h(
      std::make_unique<weir::detail::KeyedProcessOperator<Command, std::string, std::string, KeyF,
                                                          TimerCommands>>(&keyOf, TimerCommands{}),
      options);
  h.open();
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  // The model: pending timers per domain as (time, key); what fired, in order per domain.
  std::set<std::pair<std::int64_t, std::string>> pending[2];
  std::vector<std::string> fired;
  std::int64_t watermark = -1'000'000;
  std::int64_t now = 0;
  auto fire = [&](int domain, std::int64_t limit) {
    auto& set = pending[domain];
    while (!set.empty() && set.begin()->first <= limit) {
      fired.push_back(set.begin()->second + " " + std::to_string(set.begin()->first) +
                      (domain == 1 ? " p" : " e@" + std::to_string(limit)));
      set.erase(set.begin());
    }
  };
  const char* keys[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 2000; ++i) {
    const int what = uniform(0, 19);
    if (what == 0) {
      watermark += uniform(0, 60);
      fire(0, watermark);
      h.watermark(watermark);
    } else if (what == 1) {
      now += uniform(0, 60);
      fire(1, now);
      h.advanceProcessingTime(now);
    } else {
      Command c;
      c.key = keys[uniform(0, 3)];
      c.processing = uniform(0, 2) == 0;
      const std::int64_t base = c.processing ? now : watermark;
      c.time = base + uniform(-20, 150);
      c.remove = uniform(0, 3) == 0;
      auto& set = pending[c.processing ? 1 : 0];
      // A timer at or before the current time fires at the next advance (in both the model
      // and the operator); registering it twice keeps one.
      if (c.remove) {
        set.erase({c.time, c.key});
      } else {
        set.insert({c.time, c.key});
      }
      h.push(c);
    }
  }
  watermark = 1'000'000'000;
  now = 1'000'000'000;
  fire(0, watermark);
  fire(1, now);
  h.watermark(watermark);
  h.advanceProcessingTime(now);
  auto got = h.output().records;
  CHECK(fired.size() > 100);
  std::sort(got.begin(), got.end());
  std::sort(fired.begin(), fired.end());
  CHECK(got == fired);
}

TEST_CASE("keyed timers match a brute-force model on random registrations and deletions") {
  HarnessOptions heap;
  HarnessOptions rocks;
  rocks.backend = weir::StateBackendKind::kRocksDb;
  HarnessOptions rocks_heap_timers = rocks;
  rocks_heap_timers.timers_in_kv_store = false;
  for (const HarnessOptions& backend : {heap, rocks, rocks_heap_timers}) {
    for (unsigned seed : {1u, 2u, 3u, 4u, 5u})
      checkTimers(seed, backend);
  }
}

}  // namespace
