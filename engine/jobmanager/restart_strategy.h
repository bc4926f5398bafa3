// Restart strategies, as Flink's: after a job fails, whether to restart it and after what delay.
//
//   none               never restart
//   fixed-delay        at most `attempts` restarts, each after `delay`
//   exponential-delay  restart forever; the delay starts at `initial_backoff` and is multiplied by
//                      `backoff_multiplier` on each failure, capped at `max_backoff`; a run longer
//                      than `reset_backoff_threshold` since the last restart resets it to the
//                      initial backoff. `jitter_factor` (default 0) spreads the delay by up to
//                      that fraction either way.
//   failure-rate       restart after `delay` unless more than `max_failures_per_interval`
//                      failures happened within the last `failure_rate_interval`.
//
// The strategy only decides; it is given the time of each failure, so tests drive it with a fake
// clock. The JobManager asks it whenever a job fails (see JobSettings::restartSettings for the
// strategy of a job that names none).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>

namespace weir::engine {

enum class RestartStrategyKind { kNone, kFixedDelay, kExponentialDelay, kFailureRate };

// The option value naming `kind` ("none", "fixed-delay", ...).
const char* restartStrategyName(RestartStrategyKind kind);

// The `restart-strategy.*` settings (defaults as the options').
struct RestartSettings {
  RestartStrategyKind kind = RestartStrategyKind::kNone;  // restart-strategy.type
  bool kind_set = false;  // restart-strategy.type was given (else kind is chosen per job)
  // fixed-delay
  std::int64_t fixed_delay_attempts = 3;
  std::chrono::milliseconds fixed_delay_delay{1000};
  // exponential-delay
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
  double backoff_multiplier = 2.0;
  std::chrono::milliseconds reset_backoff_threshold{3600000};
  double jitter_factor = 0.0;
  // failure-rate
  std::int64_t max_failures_per_interval = 1;
  std::chrono::milliseconds failure_rate_interval{60000};
  std::chrono::milliseconds failure_rate_delay{1000};

  bool operator==(const RestartSettings&) const = default;
};

struct RestartDecision {
  bool restart = false;
  std::chrono::milliseconds delay{0};  // before the restart (when restarting)
  std::string reason;                  // why not (when not restarting)
};

class RestartStrategy {
 public:
  using Clock = std::chrono::steady_clock;
  using NowFn = std::function<Clock::time_point()>;

  // `now` gives the current time (the steady clock when empty); `seed` seeds the jitter.
  explicit RestartStrategy(RestartSettings settings, NowFn now = {}, std::uint64_t seed = 0);

  // The job failed now: restart it, and after what delay? A restarting decision counts as a
  // restart from then on (the restart happens `delay` later).
  RestartDecision onFailure();

  const RestartSettings& settings() const { return settings_; }
  // Restarts granted so far.
  std::int64_t restarts() const { return restarts_; }

 private:
  RestartDecision fixedDelay();
  RestartDecision exponentialDelay(Clock::time_point now);
  RestartDecision failureRate(Clock::time_point now);

  RestartSettings settings_;
  NowFn now_;
  std::mt19937_64 random_;
  std::int64_t restarts_ = 0;
  // exponential-delay: the next backoff, and when the last granted restart happens.
  std::chrono::milliseconds next_backoff_{0};
  std::optional<Clock::time_point> last_restart_at_;
  // failure-rate: failures within the current interval, oldest first.
  std::deque<Clock::time_point> failures_;
};

}  // namespace weir::engine
