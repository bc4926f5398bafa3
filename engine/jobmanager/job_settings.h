// A job's checkpoint and restart settings: the cluster's defaults (the JobManager's
// configuration), overridden per job by job arguments of the same keys:
//
//   weir submit job.so --arg restart-strategy.type=fixed-delay
//                      --arg restart-strategy.fixed-delay.attempts=5
//                      --arg execution.checkpointing.interval=10s
//
// The keys are the options `restart-strategy.*`, `execution.checkpointing.*`,
// `state.checkpoints.dir`, `state.checkpoints.num-retained`, `state.savepoints.dir` and
// `state.backend.incremental` (see ops/config.yaml). A job argument under `restart-strategy.` or
// `execution.checkpointing.` that is not one of them is refused, as is a value of the wrong
// form; other job arguments belong to the job. The JobManager checks them at submission; they are
// acted on by the JobManager (restarts, the checkpoint coordinator).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "jobmanager/restart_strategy.h"
#include "weir/status.h"

namespace weir::engine {

class Configuration;

struct CheckpointSettings {
  std::chrono::milliseconds interval{0};  // execution.checkpointing.interval (0: off)
  std::chrono::milliseconds timeout{600000};
  std::chrono::milliseconds min_pause{0};
  std::int64_t tolerable_failed_checkpoints = 0;
  std::int64_t max_concurrent_checkpoints = 1;
  bool unaligned = false;
  std::chrono::milliseconds aligned_checkpoint_timeout{0};
  std::string checkpoints_dir;  // state.checkpoints.dir (empty: none)
  std::int64_t num_retained = 1;
  std::string savepoints_dir;  // state.savepoints.dir (empty: none)
  bool incremental = true;     // state.backend.incremental

  bool enabled() const { return interval.count() > 0; }
  bool operator==(const CheckpointSettings&) const = default;
};

struct JobSettings {
  CheckpointSettings checkpoint;
  RestartSettings restart;

  // The settings of `config` (whose values were validated when it was loaded).
  static JobSettings fromConfig(const Configuration& config);

  // Overrides the settings named by `job_args` (others are left alone). On error nothing is
  // changed and the message names the argument, what was expected and the value given.
  Status applyJobArgs(const std::map<std::string, std::string>& job_args);

  // The job's restart strategy: as configured, or when restart-strategy.type is not set,
  // exponential-delay for a job that takes checkpoints and none otherwise (as Flink).
  RestartSettings restartSettings() const;

  // Checks that the settings agree with each other (e.g. initial backoff within the maximum).
  Status validate() const;

  bool operator==(const JobSettings&) const = default;
};

// The option keys a job may set with --arg.
const std::vector<std::string>& jobSettingKeys();

// Checks each job argument that is a job setting on its own (form and range; not how it agrees
// with the cluster's other settings): what the CLI can check before it sends a job.
Status validateJobSettingArgs(const std::map<std::string, std::string>& job_args);

}  // namespace weir::engine
