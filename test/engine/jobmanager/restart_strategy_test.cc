#include "jobmanager/restart_strategy.h"

#include <doctest/doctest.h>

#include <chrono>

namespace {

using weir::engine::RestartDecision;
using weir::engine::RestartSettings;
using weir::engine::RestartStrategy;
using weir::engine::RestartStrategyKind;
using namespace std::chrono_literals;

// A clock the test moves by hand.
struct FakeClock {
  RestartStrategy::Clock::time_point now{std::chrono::hours(1000)};
  RestartStrategy::NowFn fn() {
    return [this] { return now; };
  }
  void advance(std::chrono::milliseconds d) { now += d; }
};

RestartSettings settingsOf(RestartStrategyKind kind) {
  RestartSettings s;
  s.kind = kind;
  return s;
}

void checkRestart(const RestartDecision& d, std::chrono::milliseconds delay) {
  CHECK(d.restart);
  CHECK(d.delay == delay);
  CHECK(d.reason.empty());
}

}  // namespace

TEST_CASE("restart strategy: none never restarts") {
  FakeClock clock;
  RestartStrategy strategy(settingsOf(RestartStrategyKind::kNone), clock.fn());
  const RestartDecision d = strategy.onFailure();
  CHECK_FALSE(d.restart);
  CHECK(d.reason == "restart strategy none never restarts a job");
  CHECK(strategy.restarts() == 0);
}

TEST_CASE("restart strategy: fixed-delay restarts its attempts then stops") {
  FakeClock clock;
  RestartSettings s = settingsOf(RestartStrategyKind::kFixedDelay);
  s.fixed_delay_attempts = 3;
  s.fixed_delay_delay = 250ms;
  RestartStrategy strategy(s, clock.fn());
  for (int i = 0; i < 3; ++i) {
    checkRestart(strategy.onFailure(), 250ms);
    clock.advance(10h);  // however long the job ran, attempts are not given back
  }
  CHECK(strategy.restarts() == 3);
  const RestartDecision d = strategy.onFailure();
  CHECK_FALSE(d.restart);
  CHECK(d.reason == "restart strategy fixed-delay exhausted its 3 attempts");
  CHECK_FALSE(strategy.onFailure().restart);
}

TEST_CASE("restart strategy: fixed-delay with one or no attempts") {
  FakeClock clock;
  RestartSettings s = settingsOf(RestartStrategyKind::kFixedDelay);
  s.fixed_delay_attempts = 1;
  RestartStrategy one(s, clock.fn());
  checkRestart(one.onFailure(), 1000ms);
  CHECK(one.onFailure().reason == "restart strategy fixed-delay exhausted its 1 attempt");
  s.fixed_delay_attempts = 0;
  RestartStrategy none(s, clock.fn());
  CHECK(none.onFailure().reason == "restart strategy fixed-delay exhausted its 0 attempts");
}

TEST_CASE("restart strategy: exponential-delay doubles up to the maximum") {
  FakeClock clock;
  RestartSettings s = settingsOf(RestartStrategyKind::kExponentialDelay);
  s.initial_backoff = 100ms;
  s.max_backoff = 1000ms;
  s.backoff_multiplier = 2.0;
  s.reset_backoff_threshold = 1h;
  RestartStrategy strategy(s, clock.fn());
  for (auto expected : {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms, 1000ms}) {
    checkRestart(strategy.onFailure(), expected);
    clock.advance(expected + 5s);  // restarted, ran briefly, failed again
  }
  CHECK(strategy.restarts() == 7);
}

TEST_CASE("restart strategy: exponential-delay resets after a run as long as the threshold") {
  FakeClock clock;
  RestartSettings s = settingsOf(RestartStrategyKind::kExponentialDelay);
  s.initial_backoff = 1s;
  s.max_backoff = 1min;
  s.backoff_multiplier = 3.0;
  s.reset_backoff_threshold = 10min;
  RestartStrategy strategy(s, clock.fn());
  checkRestart(strategy.onFailure(), 1s);
  clock.advance(1s + 10min - 1ms);  // a run just short of the threshold
  checkRestart(strategy.onFailure(), 3s);
  clock.advance(3s + 10min);  // a run exactly as long as the threshold
  checkRestart(strategy.onFailure(), 1s);
  clock.advance(1s);
  checkRestart(strategy.onFailure(), 3s);
  clock.advance(3s);
  checkRestart(strategy.onFailure(), 9s);
  // The run is measured from the restart, not from the failure: the delay does not count.
  clock.advance(10min);
  checkRestart(strategy.onFailure(), 27s);
}

TEST_CASE("restart strategy: exponential-delay with a fractional multiplier and jitter") {
  FakeClock clock;
  RestartSettings s = settingsOf(RestartStrategyKind::kExponentialDelay);
  s.initial_backoff = 1000ms;
  s.max_backoff = 10s;
  s.backoff_multiplier = 1.5;
  RestartStrategy plain(s, clock.fn());
  checkRestart(plain.onFailure(), 1000ms);
  checkRestart(plain.onFailure(), 1500ms);
  checkRestart(plain.onFailure(), 2250ms);

  s.jitter_factor = 0.1;
  RestartStrategy jittered(s, clock.fn(), 42);
  for (auto base : {1000ms, 1500ms, 2250ms}) {
    const RestartDecision d = jittered.onFailure();
    CHECK(d.restart);
    CHECK(d.delay >= base - base / 10);
    CHECK(d.delay <= base + base / 10);
  }
}

TEST_CASE("restart strategy: failure-rate allows its failures per interval") {
  FakeClock clock;
  RestartSettings s = settingsOf(RestartStrategyKind::kFailureRate);
  s.max_failures_per_interval = 2;
  s.failure_rate_interval = 1min;
  s.failure_rate_delay = 500ms;
  RestartStrategy strategy(s, clock.fn());
  checkRestart(strategy.onFailure(), 500ms);  // t = 0
  clock.advance(30s);
  checkRestart(strategy.onFailure(), 500ms);  // t = 30 s
  clock.advance(30s);
  // t = 60 s: the first failure is exactly one interval old and still counts.
  const RestartDecision d = strategy.onFailure();
  CHECK_FALSE(d.restart);
  CHECK(d.reason ==
        "restart strategy failure-rate: 3 failures within 1 min exceed the maximum of 2");
}

TEST_CASE("restart strategy: failure-rate forgets failures older than the interval") {
  FakeClock clock;
  RestartSettings s = settingsOf(RestartStrategyKind::kFailureRate);
  s.max_failures_per_interval = 1;
  s.failure_rate_interval = 90s;
  RestartStrategy strategy(s, clock.fn());
  checkRestart(strategy.onFailure(), 1s);
  clock.advance(90s + 1ms);  // the first failure has left the interval
  checkRestart(strategy.onFailure(), 1s);
  clock.advance(90s);
  const RestartDecision d = strategy.onFailure();
  CHECK_FALSE(d.restart);
  CHECK(d.reason ==
        "restart strategy failure-rate: 2 failures within 90 s exceed the maximum of 1");
}

TEST_CASE("restart strategy: names of the kinds") {
  using weir::engine::restartStrategyName;
  CHECK(std::string(restartStrategyName(RestartStrategyKind::kNone)) == "none");
  CHECK(std::string(restartStrategyName(RestartStrategyKind::kFixedDelay)) == "fixed-delay");
  CHECK(std::string(restartStrategyName(RestartStrategyKind::kExponentialDelay)) ==
        "exponential-delay");
  CHECK(std::string(restartStrategyName(RestartStrategyKind::kFailureRate)) == "failure-rate");
}
