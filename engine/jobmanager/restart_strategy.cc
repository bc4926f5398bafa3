#include "jobmanager/restart_strategy.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace weir::engine {

namespace {

// "90 ms", "5 s", "2 min", "1 h": the largest unit that divides `d` exactly.
std::string describe(std::chrono::milliseconds d) {
  const std::int64_t ms = d.count();
  if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + " h";
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + " min";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace

const char* restartStrategyName(RestartStrategyKind kind) {
  switch (kind) {
    case RestartStrategyKind::kNone:
      return "none";
    case RestartStrategyKind::kFixedDelay:
      return "fixed-delay";
    case RestartStrategyKind::kExponentialDelay:
      return "exponential-delay";
    case RestartStrategyKind::kFailureRate:
      return "failure-rate";
  }
  return "none";
}

RestartStrategy::RestartStrategy(RestartSettings settings, NowFn now, std::uint64_t seed)
    : settings_(std::move(settings)),
      now_(now ? std::move(now) : NowFn([] { return Clock::now(); })),
      random_(seed),
      next_backoff_(settings_.initial_backoff) {}

RestartDecision RestartStrategy::onFailure() {
  const Clock::time_point now = now_();
  RestartDecision d;
  switch (settings_.kind) {
    case RestartStrategyKind::kNone:
      d.reason = "restart strategy none never restarts a job";
      break;
    case RestartStrategyKind::kFixedDelay:
      d = fixedDelay();
      break;
    case RestartStrategyKind::kExponentialDelay:
      d = exponentialDelay(now);
      break;
    case RestartStrategyKind::kFailureRate:
      d = failureRate(now);
      break;
  }
  if (d.restart) ++restarts_;
  return d;
}

RestartDecision RestartStrategy::fixedDelay() {
  RestartDecision d;
  if (restarts_ >= settings_.fixed_delay_attempts) {
    const std::int64_t n = settings_.fixed_delay_attempts;
    d.reason = "restart strategy fixed-delay exhausted its " + std::to_string(n) + " attempt" +
               (n == 1 ? "" : "s");
    return d;
  }
  d.restart = true;
  d.delay = settings_.fixed_delay_delay;
  return d;
}

RestartDecision RestartStrategy::exponentialDelay(Clock::time_point now) {
  // A long enough run since the last restart starts the backoff over.
  if (last_restart_at_ && now - *last_restart_at_ >= settings_.reset_backoff_threshold) {
    next_backoff_ = settings_.initial_backoff;
  }
  const std::chrono::milliseconds backoff = std::min(next_backoff_, settings_.max_backoff);
  std::chrono::milliseconds delay = backoff;
  if (settings_.jitter_factor > 0) {
    const double spread = static_cast<double>(backoff.count()) * settings_.jitter_factor;
    std::uniform_real_distribution<double> jitter(-spread, spread);
    const double jittered = static_cast<double>(backoff.count()) + jitter(random_);
    delay = std::chrono::milliseconds(std::max<std::int64_t>(0, std::llround(jittered)));
  }
  // The next backoff, capped (and computed in floating point so it cannot overflow).
  const double grown = static_cast<double>(backoff.count()) * settings_.backoff_multiplier;
  const double cap = static_cast<double>(settings_.max_backoff.count());
  next_backoff_ = std::chrono::milliseconds(std::llround(std::min(grown, cap)));
  last_restart_at_ = now + delay;
  RestartDecision d;
  d.restart = true;
  d.delay = delay;
  return d;
}

RestartDecision RestartStrategy::failureRate(Clock::time_point now) {
  failures_.push_back(now);
  // Only failures within the interval ending now count.
  while (!failures_.empty() && now - failures_.front() > settings_.failure_rate_interval)
    failures_.pop_front();
  RestartDecision d;
  const std::int64_t count = static_cast<std::int64_t>(failures_.size());
  if (count > settings_.max_failures_per_interval) {
    d.reason = "restart strategy failure-rate: " + std::to_string(count) + " failures within " +
               describe(settings_.failure_rate_interval) + " exceed the maximum of " +
               std::to_string(settings_.max_failures_per_interval);
    return d;
  }
  d.restart = true;
  d.delay = settings_.failure_rate_delay;
  return d;
}

}  // namespace weir::engine
