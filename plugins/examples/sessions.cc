// Session windows: clicks of users, grouped into sessions that end after 30 s of event time
// without a click; each session is summarised when the watermark passes its end. Clicks more
// than a minute late for their session go to a side output.
//
//   weir local sessions.so                   a built-in day of clicks of a few users
//   weir local sessions.so --arg users=N --arg clicks=M
//
// Prints "user 3 session [t0, t1) clicks 12 pages 5" per session and "late user 3 at t" per
// dropped click.
#include <weir/weir.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace {

struct Click {
  std::int64_t user = 0;
  std::int64_t page = 0;
  std::int64_t time = 0;  // milliseconds
};

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ULL;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dULL;
  x ^= x >> 33;
  return x;
}

// Click `i` of `users` users: every user clicks in bursts (a few seconds apart) separated by
// pauses of minutes; times arrive up to 5 s out of order, and every 97th click is 5 min late.
struct ClickGenerator {
  std::int64_t users;
  Click operator()(std::uint64_t i) const {
    const auto n = static_cast<std::uint64_t>(users);
    const std::uint64_t user = i % n;
    const std::uint64_t k = i / n;  // this user's k-th click
    const std::uint64_t burst = k / 8;
    std::int64_t t = static_cast<std::int64_t>(burst) * 120'000 +
                     static_cast<std::int64_t>(k % 8) * 4'000 +
                     static_cast<std::int64_t>(mix(user) % 10'000);
    t -= static_cast<std::int64_t>(mix(i) % 5'000);
    if (i % 97 == 96) t -= 300'000;
    return {static_cast<std::int64_t>(user), static_cast<std::int64_t>(mix(i ^ user) % 20),
            std::max<std::int64_t>(t, 0)};
  }
};

struct Summarise {
  void process(const std::int64_t& user, weir::WindowContext<weir::TimeWindow>& ctx,
               const std::vector<Click>& clicks, weir::Collector<std::string>& out) const {
    std::set<std::int64_t> pages;
    for (const Click& c : clicks)
      pages.insert(c.page);
    out.collect("user " + std::to_string(user) + " session [" + std::to_string(ctx.window().start) +
                ", " + std::to_string(ctx.window().end) + ") clicks " +
                std::to_string(clicks.size()) + " pages " + std::to_string(pages.size()));
  }
};

void build(weir::JobBuilder& job) {
  job.name("sessions");
  const std::int64_t users = job.args().getInt("users", 3);
  const std::int64_t clicks = job.args().getInt("clicks", 200);
  if (users <= 0 || clicks < 0) {
    throw weir::JobDefinitionError("users must be positive and clicks not negative");
  }
  const weir::OutputTag<Click> late("late-clicks");
  auto sessions =
      job.fromGenerator(ClickGenerator{users}, static_cast<std::uint64_t>(clicks))
          .name("clicks")
          .uid("clicks")
          .assignTimestampsAndWatermarks(
              weir::WatermarkStrategy<Click>::forBoundedOutOfOrderness(std::chrono::seconds(5))
                  .withTimestampAssigner([](const Click& c, std::int64_t) { return c.time; }))
          .uid("timestamps")
          .keyBy([](const Click& c) { return c.user; })
          .window(weir::EventTimeSessionWindows::withGap(std::chrono::seconds(30)))
          .allowedLateness(std::chrono::minutes(1))
          .sideOutputLateData(late)
          .process(Summarise{});
  sessions.name("sessions").uid("sessions").print().name("print sessions").uid("print-sessions");
  sessions.getSideOutput(late)
      .map([](const Click& c) {
        return "late user " + std::to_string(c.user) + " at " + std::to_string(c.time);
      })
      .uid("format-late")
      .print()
      .name("print late")
      .uid("print-late");
}

}  // namespace

WEIR_PLUGIN("sessions", "1.0.0", build)
