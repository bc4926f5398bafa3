#include "jobmanager/job_settings.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/config.h"

namespace weir::engine {

namespace {

constexpr const char* kReservedPrefixes[] = {"restart-strategy.", "execution.checkpointing."};

bool isJobSettingKey(const std::string& key) {
  const auto& keys = jobSettingKeys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

bool isReserved(const std::string& key) {
  return std::any_of(std::begin(kReservedPrefixes), std::end(kReservedPrefixes),
                     [&](const char* p) { return key.rfind(p, 0) == 0; });
}

// A job setting's value checked against its option, or the error naming the argument.
Result<std::string> checkArg(const std::string& key, const std::string& value) {
  const OptionSpec* spec = findOption(key);
  auto checked = checkOptionValue(*spec, value);
  if (!checked.isOk()) {
    return Status::invalidArgument("invalid job argument '" + key +
                                   "': " + checked.status().message());
  }
  return checked;
}

Status unknownArg(const std::string& key) {
  return Status::invalidArgument("unknown job argument '" + key +
                                 "': not a restart or checkpoint setting");
}

std::string millisText(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

}  // namespace

const std::vector<std::string>& jobSettingKeys() {
  static const std::vector<std::string> kKeys = {
      "restart-strategy.type",
      "restart-strategy.fixed-delay.attempts",
      "restart-strategy.fixed-delay.delay",
      "restart-strategy.exponential-delay.initial-backoff",
      "restart-strategy.exponential-delay.max-backoff",
      "restart-strategy.exponential-delay.backoff-multiplier",
      "restart-strategy.exponential-delay.reset-backoff-threshold",
      "restart-strategy.failure-rate.max-failures-per-interval",
      "restart-strategy.failure-rate.failure-rate-interval",
      "restart-strategy.failure-rate.delay",
      "execution.checkpointing.interval",
      "execution.checkpointing.timeout",
      "execution.checkpointing.min-pause",
      "execution.checkpointing.tolerable-failed-checkpoints",
      "execution.checkpointing.max-concurrent-checkpoints",
      "execution.checkpointing.unaligned",
      "execution.checkpointing.aligned-checkpoint-timeout",
      "state.checkpoints.dir",
      "state.checkpoints.num-retained",
      "state.savepoints.dir",
      "state.backend.incremental",
  };
  return kKeys;
}

namespace {

std::chrono::milliseconds duration(const std::string& v) {
  return parseDuration(v).value();
}
std::int64_t integer(const std::string& v) {
  return std::stoll(v);
}
bool boolean(const std::string& v) {
  std::string lower;
  for (char ch : v)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  return lower == "true";
}
double number(const std::string& v) {
  double d = 0;
  std::from_chars(v.data(), v.data() + v.size(), d);
  return d;
}

// Sets the field of `key` from `value`, a value checkOptionValue accepted for it.
void setField(JobSettings& s, const std::string& key, const std::string& value) {
  CheckpointSettings& c = s.checkpoint;
  RestartSettings& r = s.restart;
  using Setter = void (*)(CheckpointSettings&, RestartSettings&, const std::string&);
  static const std::map<std::string, Setter> kSetters = {
      {"execution.checkpointing.interval", [](CheckpointSettings& c, RestartSettings&,
                                              const std::string& v) { c.interval = duration(v); }},
      {"execution.checkpointing.timeout", [](CheckpointSettings& c, RestartSettings&,
                                             const std::string& v) { c.timeout = duration(v); }},
      {"execution.checkpointing.min-pause",
       [](CheckpointSettings& c, RestartSettings&, const std::string& v) {
         c.min_pause = duration(v);
       }},
      {"execution.checkpointing.tolerable-failed-checkpoints",
       [](CheckpointSettings& c, RestartSettings&, const std::string& v) {
         c.tolerable_failed_checkpoints = integer(v);
       }},
      {"execution.checkpointing.max-concurrent-checkpoints",
       [](CheckpointSettings& c, RestartSettings&, const std::string& v) {
         c.max_concurrent_checkpoints = integer(v);
       }},
      {"execution.checkpointing.unaligned", [](CheckpointSettings& c, RestartSettings&,
                                               const std::string& v) { c.unaligned = boolean(v); }},
      {"execution.checkpointing.aligned-checkpoint-timeout",
       [](CheckpointSettings& c, RestartSettings&, const std::string& v) {
         c.aligned_checkpoint_timeout = duration(v);
       }},
      {"state.checkpoints.dir", [](CheckpointSettings& c, RestartSettings&,
                                   const std::string& v) { c.checkpoints_dir = v; }},
      {"state.checkpoints.num-retained", [](CheckpointSettings& c, RestartSettings&,
                                            const std::string& v) { c.num_retained = integer(v); }},
      {"state.savepoints.dir",
       [](CheckpointSettings& c, RestartSettings&, const std::string& v) { c.savepoints_dir = v; }},
      {"state.backend.incremental", [](CheckpointSettings& c, RestartSettings&,
                                       const std::string& v) { c.incremental = boolean(v); }},
      {"restart-strategy.type",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.kind_set = !v.empty();
         r.kind = v == "fixed-delay"         ? RestartStrategyKind::kFixedDelay
                  : v == "exponential-delay" ? RestartStrategyKind::kExponentialDelay
                  : v == "failure-rate"      ? RestartStrategyKind::kFailureRate
                                             : RestartStrategyKind::kNone;
       }},
      {"restart-strategy.fixed-delay.attempts",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.fixed_delay_attempts = integer(v);
       }},
      {"restart-strategy.fixed-delay.delay",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.fixed_delay_delay = duration(v);
       }},
      {"restart-strategy.exponential-delay.initial-backoff",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.initial_backoff = duration(v);
       }},
      {"restart-strategy.exponential-delay.max-backoff",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.max_backoff = duration(v);
       }},
      {"restart-strategy.exponential-delay.backoff-multiplier",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.backoff_multiplier = number(v);
       }},
      {"restart-strategy.exponential-delay.reset-backoff-threshold",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.reset_backoff_threshold = duration(v);
       }},
      {"restart-strategy.failure-rate.max-failures-per-interval",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.max_failures_per_interval = integer(v);
       }},
      {"restart-strategy.failure-rate.failure-rate-interval",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.failure_rate_interval = duration(v);
       }},
      {"restart-strategy.failure-rate.delay",
       [](CheckpointSettings&, RestartSettings& r, const std::string& v) {
         r.failure_rate_delay = duration(v);
       }},
  };
  kSetters.at(key)(c, r, value);
}

}  // namespace

JobSettings JobSettings::fromConfig(const Configuration& config) {
  JobSettings s;
  for (const std::string& key : jobSettingKeys())
    setField(s, key, config.getString(key));
  return s;
}

Status JobSettings::applyJobArgs(const std::map<std::string, std::string>& job_args) {
  JobSettings updated = *this;
  for (const auto& [key, value] : job_args) {
    if (isJobSettingKey(key)) {
      auto checked = checkArg(key, value);
      if (!checked.isOk()) return checked.status();
      setField(updated, key, *checked);
    } else if (isReserved(key)) {
      return unknownArg(key);
    }
  }
  Status s = updated.validate();
  if (!s.isOk()) return s;
  *this = std::move(updated);
  return Status::ok();
}

RestartSettings JobSettings::restartSettings() const {
  RestartSettings r = restart;
  if (!r.kind_set && checkpoint.enabled()) r.kind = RestartStrategyKind::kExponentialDelay;
  return r;
}

Status JobSettings::validate() const {
  const RestartSettings& r = restart;
  if (r.kind == RestartStrategyKind::kExponentialDelay && r.initial_backoff > r.max_backoff) {
    return Status::invalidArgument(
        "invalid restart settings: restart-strategy.exponential-delay.initial-backoff (" +
        millisText(r.initial_backoff) +
        ") exceeds restart-strategy.exponential-delay.max-backoff (" + millisText(r.max_backoff) +
        ")");
  }
  const CheckpointSettings& c = checkpoint;
  if (c.unaligned && c.max_concurrent_checkpoints > 1) {
    return Status::invalidArgument(
        "invalid checkpoint settings: execution.checkpointing.unaligned needs "
        "execution.checkpointing.max-concurrent-checkpoints = 1, got " +
        std::to_string(c.max_concurrent_checkpoints));
  }
  return Status::ok();
}

Status validateJobSettingArgs(const std::map<std::string, std::string>& job_args) {
  for (const auto& [key, value] : job_args) {
    if (isJobSettingKey(key)) {
      auto checked = checkArg(key, value);
      if (!checked.isOk()) return checked.status();
    } else if (isReserved(key)) {
      return unknownArg(key);
    }
  }
  return Status::ok();
}

}  // namespace weir::engine
