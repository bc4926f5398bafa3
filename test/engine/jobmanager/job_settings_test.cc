#include "jobmanager/job_settings.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "common/config.h"

namespace {

using weir::engine::CheckpointSettings;
using weir::engine::Configuration;
using weir::engine::JobSettings;
using weir::engine::RestartSettings;
using weir::engine::RestartStrategyKind;
using namespace std::chrono_literals;
using Args = std::map<std::string, std::string>;

Configuration load(const std::vector<std::string>& overrides) {
  auto c = Configuration::load("", overrides);
  REQUIRE_MESSAGE(c.isOk(), c.status().message());
  return *c;
}

std::string loadError(const std::vector<std::string>& overrides) {
  auto c = Configuration::load("", overrides);
  REQUIRE_FALSE(c.isOk());
  return c.status().message();
}

// The error applying `args` to the built-in defaults.
std::string argError(const Args& args) {
  JobSettings s = JobSettings::fromConfig(load({}));
  const JobSettings before = s;
  weir::Status status = s.applyJobArgs(args);
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == weir::Status::Code::kInvalidArgument);
  CHECK(s == before);  // nothing changed
  return status.message();
}

}  // namespace

TEST_CASE("job settings: the built-in defaults") {
  const JobSettings s = JobSettings::fromConfig(load({}));
  CHECK(s.checkpoint == CheckpointSettings{});
  CHECK(s.restart == RestartSettings{});
  CHECK_FALSE(s.checkpoint.enabled());
  CHECK(s.checkpoint.timeout == 10min);
  CHECK(s.checkpoint.max_concurrent_checkpoints == 1);
  CHECK(s.checkpoint.incremental);
  CHECK(s.checkpoint.num_retained == 1);
  CHECK(s.restart.kind == RestartStrategyKind::kNone);
  CHECK(s.restart.fixed_delay_attempts == 3);
  CHECK(s.restart.max_backoff == 1min);
  CHECK(s.restart.backoff_multiplier == 2.0);
  CHECK(s.restart.reset_backoff_threshold == 1h);
  CHECK(s.restart.jitter_factor == 0.0);
  CHECK(s.restart.failure_rate_interval == 1min);
}

TEST_CASE("job settings: every option from the cluster configuration") {
  const JobSettings s = JobSettings::fromConfig(load({
      "execution.checkpointing.interval=10 s",
      "execution.checkpointing.timeout=2 min",
      "execution.checkpointing.min-pause=500 ms",
      "execution.checkpointing.tolerable-failed-checkpoints=3",
      "execution.checkpointing.max-concurrent-checkpoints=2",
      "execution.checkpointing.unaligned=FALSE",
      "execution.checkpointing.aligned-checkpoint-timeout=30 s",
      "state.checkpoints.dir=/data/checkpoints",
      "state.checkpoints.num-retained=5",
      "state.savepoints.dir=/data/savepoints",
      "state.backend.incremental=False",
      "restart-strategy.type=Exponential-Delay",
      "restart-strategy.fixed-delay.attempts=7",
      "restart-strategy.fixed-delay.delay=2 s",
      "restart-strategy.exponential-delay.initial-backoff=100 ms",
      "restart-strategy.exponential-delay.max-backoff=5 min",
      "restart-strategy.exponential-delay.backoff-multiplier=1.5",
      "restart-strategy.exponential-delay.reset-backoff-threshold=30 min",
      "restart-strategy.failure-rate.max-failures-per-interval=4",
      "restart-strategy.failure-rate.failure-rate-interval=10 min",
      "restart-strategy.failure-rate.delay=3 s",
  }));
  const CheckpointSettings& c = s.checkpoint;
  CHECK(c.enabled());
  CHECK(c.interval == 10s);
  CHECK(c.timeout == 2min);
  CHECK(c.min_pause == 500ms);
  CHECK(c.tolerable_failed_checkpoints == 3);
  CHECK(c.max_concurrent_checkpoints == 2);
  CHECK_FALSE(c.unaligned);
  CHECK(c.aligned_checkpoint_timeout == 30s);
  CHECK(c.checkpoints_dir == "/data/checkpoints");
  CHECK(c.num_retained == 5);
  CHECK(c.savepoints_dir == "/data/savepoints");
  CHECK_FALSE(c.incremental);
  const RestartSettings& r = s.restart;
  CHECK(r.kind == RestartStrategyKind::kExponentialDelay);
  CHECK(r.fixed_delay_attempts == 7);
  CHECK(r.fixed_delay_delay == 2s);
  CHECK(r.initial_backoff == 100ms);
  CHECK(r.max_backoff == 5min);
  CHECK(r.backoff_multiplier == 1.5);
  CHECK(r.reset_backoff_threshold == 30min);
  CHECK(r.max_failures_per_interval == 4);
  CHECK(r.failure_rate_interval == 10min);
  CHECK(r.failure_rate_delay == 3s);
  CHECK(s.validate().isOk());
}

TEST_CASE("job settings: each restart strategy type") {
  CHECK(JobSettings::fromConfig(load({"restart-strategy.type=none"})).restart.kind ==
        RestartStrategyKind::kNone);
  CHECK(JobSettings::fromConfig(load({"restart-strategy.type=fixed-delay"})).restart.kind ==
        RestartStrategyKind::kFixedDelay);
  CHECK(JobSettings::fromConfig(load({"restart-strategy.type=exponential-delay"})).restart.kind ==
        RestartStrategyKind::kExponentialDelay);
  CHECK(JobSettings::fromConfig(load({"restart-strategy.type=failure-rate"})).restart.kind ==
        RestartStrategyKind::kFailureRate);
}

TEST_CASE("job settings: without a restart strategy, a job with checkpoints restarts") {
  const JobSettings none = JobSettings::fromConfig(load({}));
  CHECK_FALSE(none.restart.kind_set);
  CHECK(none.restartSettings().kind == RestartStrategyKind::kNone);
  JobSettings checkpointed = none;
  REQUIRE(checkpointed.applyJobArgs({{"execution.checkpointing.interval", "1 s"}}).isOk());
  CHECK(checkpointed.restartSettings().kind == RestartStrategyKind::kExponentialDelay);
  // A strategy given explicitly, none included, is kept.
  JobSettings explicit_none = checkpointed;
  REQUIRE(explicit_none.applyJobArgs({{"restart-strategy.type", "none"}}).isOk());
  CHECK(explicit_none.restart.kind_set);
  CHECK(explicit_none.restartSettings().kind == RestartStrategyKind::kNone);
  const JobSettings fixed = JobSettings::fromConfig(
      load({"restart-strategy.type=fixed-delay", "execution.checkpointing.interval=1 s"}));
  CHECK(fixed.restartSettings().kind == RestartStrategyKind::kFixedDelay);
}

TEST_CASE("job settings: job arguments override the cluster's and leave the rest") {
  JobSettings s = JobSettings::fromConfig(
      load({"restart-strategy.type=fixed-delay", "restart-strategy.fixed-delay.attempts=9",
            "execution.checkpointing.interval=1 min", "state.checkpoints.dir=/cluster"}));
  REQUIRE(s.applyJobArgs({{"restart-strategy.fixed-delay.attempts", " 2 "},
                          {"execution.checkpointing.unaligned", "TRUE"},
                          {"restart-strategy.exponential-delay.backoff-multiplier", "1.25"},
                          {"state.savepoints.dir", "/job/savepoints"},
                          {"state.backend.incremental", "false"},
                          {"campaigns", "7"},  // the job's own arguments are not looked at
                          {"state.backend", "rocksdb"}})
              .isOk());
  CHECK(s.restart.kind == RestartStrategyKind::kFixedDelay);  // the cluster's
  CHECK(s.restart.fixed_delay_attempts == 2);
  CHECK(s.restart.backoff_multiplier == 1.25);
  CHECK(s.checkpoint.interval == 1min);
  CHECK(s.checkpoint.unaligned);
  CHECK(s.checkpoint.checkpoints_dir == "/cluster");
  CHECK(s.checkpoint.savepoints_dir == "/job/savepoints");
  CHECK_FALSE(s.checkpoint.incremental);

  REQUIRE(s.applyJobArgs({{"restart-strategy.type", " Failure-Rate "},
                          {"execution.checkpointing.interval", "10s"},
                          {"execution.checkpointing.timeout", "1 h"}})
              .isOk());
  CHECK(s.restart.kind == RestartStrategyKind::kFailureRate);
  CHECK(s.checkpoint.interval == 10s);
  CHECK(s.checkpoint.timeout == 1h);
  CHECK(s.applyJobArgs({}).isOk());
  CHECK(weir::engine::validateJobSettingArgs({{"restart-strategy.type", "none"}}).isOk());
}

TEST_CASE("job settings: a job argument of the wrong form is refused, naming the key") {
  CHECK(argError({{"restart-strategy.type", "bogus"}}) ==
        "invalid job argument 'restart-strategy.type': expected one of none, fixed-delay, "
        "exponential-delay, failure-rate, got 'bogus'");
  CHECK(argError({{"execution.checkpointing.interval", "abc"}}) ==
        "invalid job argument 'execution.checkpointing.interval': expected a duration (e.g. "
        "500 ms, 10 s, 1 min), got 'abc'");
  CHECK(argError({{"execution.checkpointing.timeout", "0"}}) ==
        "invalid job argument 'execution.checkpointing.timeout': expected a duration (e.g. "
        "500 ms, 10 s, 1 min) in [1, ...] ms, got '0'");
  CHECK(argError({{"execution.checkpointing.max-concurrent-checkpoints", "0"}}) ==
        "invalid job argument 'execution.checkpointing.max-concurrent-checkpoints': expected an "
        "integer in [1, 2147483647], got '0'");
  CHECK(argError({{"execution.checkpointing.tolerable-failed-checkpoints", "-1"}}) ==
        "invalid job argument 'execution.checkpointing.tolerable-failed-checkpoints': expected "
        "an integer in [0, 2147483647], got '-1'");
  CHECK(argError({{"execution.checkpointing.unaligned", "yes"}}) ==
        "invalid job argument 'execution.checkpointing.unaligned': expected true or false, got "
        "'yes'");
  CHECK(argError({{"restart-strategy.fixed-delay.attempts", "three"}}) ==
        "invalid job argument 'restart-strategy.fixed-delay.attempts': expected an integer, "
        "got 'three'");
  CHECK(argError({{"restart-strategy.fixed-delay.attempts", "-1"}}) ==
        "invalid job argument 'restart-strategy.fixed-delay.attempts': expected an integer in "
        "[0, 2147483647], got '-1'");
  CHECK(argError({{"restart-strategy.exponential-delay.backoff-multiplier", "0.5"}}) ==
        "invalid job argument 'restart-strategy.exponential-delay.backoff-multiplier': expected "
        "a number in [1, 1000], got '0.5'");
  CHECK(argError({{"restart-strategy.exponential-delay.backoff-multiplier", "2x"}}) ==
        "invalid job argument 'restart-strategy.exponential-delay.backoff-multiplier': expected "
        "a number, got '2x'");
  CHECK(argError({{"restart-strategy.exponential-delay.backoff-multiplier", "nan"}}) ==
        "invalid job argument 'restart-strategy.exponential-delay.backoff-multiplier': expected "
        "a number, got 'nan'");
  CHECK(argError({{"restart-strategy.failure-rate.max-failures-per-interval", "0"}}) ==
        "invalid job argument 'restart-strategy.failure-rate.max-failures-per-interval': "
        "expected an integer in [1, 2147483647], got '0'");
  CHECK(argError({{"restart-strategy.failure-rate.failure-rate-interval", "1 week"}}) ==
        "invalid job argument 'restart-strategy.failure-rate.failure-rate-interval': expected a "
        "duration (e.g. 500 ms, 10 s, 1 min), got '1 week'");
  CHECK(argError({{"state.checkpoints.num-retained", "0"}}) ==
        "invalid job argument 'state.checkpoints.num-retained': expected an integer in [1, "
        "2147483647], got '0'");
  CHECK(argError({{"state.backend.incremental", ""}}) ==
        "invalid job argument 'state.backend.incremental': expected true or false, got ''");
  // validateJobSettingArgs (what the CLI checks) says the same.
  CHECK(weir::engine::validateJobSettingArgs({{"restart-strategy.type", "bogus"}}).message() ==
        "invalid job argument 'restart-strategy.type': expected one of none, fixed-delay, "
        "exponential-delay, failure-rate, got 'bogus'");
}

TEST_CASE("job settings: unknown keys under the reserved prefixes are refused") {
  CHECK(argError({{"restart-strategy.fixed-delay.attempt", "3"}}) ==
        "unknown job argument 'restart-strategy.fixed-delay.attempt': not a restart or "
        "checkpoint setting");
  CHECK(argError({{"execution.checkpointing.intervall", "1s"}}) ==
        "unknown job argument 'execution.checkpointing.intervall': not a restart or checkpoint "
        "setting");
  CHECK(weir::engine::validateJobSettingArgs({{"restart-strategy.kind", "none"}}).message() ==
        "unknown job argument 'restart-strategy.kind': not a restart or checkpoint setting");
}

TEST_CASE("job settings: settings that disagree with each other are refused") {
  CHECK(argError({{"restart-strategy.type", "exponential-delay"},
                  {"restart-strategy.exponential-delay.initial-backoff", "2 min"}}) ==
        "invalid restart settings: restart-strategy.exponential-delay.initial-backoff "
        "(120000 ms) exceeds restart-strategy.exponential-delay.max-backoff (60000 ms)");
  // Only checked for the strategy in use.
  JobSettings s = JobSettings::fromConfig(load({}));
  CHECK(s.applyJobArgs({{"restart-strategy.exponential-delay.initial-backoff", "2 min"}}).isOk());
  CHECK(argError({{"execution.checkpointing.unaligned", "true"},
                  {"execution.checkpointing.max-concurrent-checkpoints", "2"}}) ==
        "invalid checkpoint settings: execution.checkpointing.unaligned needs "
        "execution.checkpointing.max-concurrent-checkpoints = 1, got 2");
  // A cluster whose own settings disagree is caught by validate().
  const JobSettings bad =
      JobSettings::fromConfig(load({"execution.checkpointing.unaligned=true",
                                    "execution.checkpointing.max-concurrent-checkpoints=3"}));
  CHECK_FALSE(bad.validate().isOk());
}

TEST_CASE("job settings: the cluster options refuse bad values at load") {
  CHECK(loadError({"restart-strategy.type=always"}) ==
        "configuration key 'restart-strategy.type' on the command line: expected one of none, "
        "fixed-delay, exponential-delay, failure-rate, got 'always'");
  CHECK(loadError({"execution.checkpointing.interval=soon"}) ==
        "configuration key 'execution.checkpointing.interval' on the command line: expected a "
        "duration (e.g. 500 ms, 10 s, 1 min), got 'soon'");
  CHECK(loadError({"restart-strategy.exponential-delay.backoff-multiplier=1001"}) ==
        "configuration key 'restart-strategy.exponential-delay.backoff-multiplier' on the "
        "command line: expected a number in [1, 1000], got '1001'");
  CHECK(load({"restart-strategy.exponential-delay.backoff-multiplier= 1.75 "})
            .getDouble("restart-strategy.exponential-delay.backoff-multiplier") == 1.75);
}

TEST_CASE("job settings: every job setting is a known option") {
  for (const std::string& key : weir::engine::jobSettingKeys()) {
    CAPTURE(key);
    CHECK(weir::engine::findOption(key) != nullptr);
  }
  CHECK(weir::engine::findOption("restart-strategy") == nullptr);
}
