// The `weir` command line: one function per subcommand, each returning the process exit code.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "weir/job_args.h"
#include "weir/status.h"

namespace weir::cli {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the job failed or the request was refused
inline constexpr int kExitUsage = 2;    // bad command-line arguments

// Parses repeated `--arg key=value` options.
Result<JobArgs> parseJobArgs(const std::vector<std::string>& pairs);

struct JobOptions {
  std::string plugin;
  int parallelism = 1;
  std::vector<std::string> args;
  int buffer_timeout_ms = 10;
  std::string checkpoint_dir;  // weir local: state.checkpoints.dir
};

// How to reach a running cluster.
struct ClusterOptions {
  std::string jobmanager;   // host:port of the admin service; empty: from the configuration
  std::string config_file;  // configuration file (YAML); empty: defaults
  std::string output = "text";
  int timeout_ms = 10000;
};

struct SubmitOptions {
  std::string name;  // overrides the job's name
  bool detached = false;
  std::string from_savepoint;  // savepoint or retained checkpoint to resume from
  bool allow_non_restored_state = false;
  int poll_interval_ms = 200;
};

int runLocal(const JobOptions& options);
int runSubmit(const JobOptions& job, const ClusterOptions& cluster, const SubmitOptions& submit);
int runList(const ClusterOptions& options);
int runStatus(const ClusterOptions& options, const std::string& job_id);
int runCancel(const ClusterOptions& options, const std::string& job_id);
int runTaskManagers(const ClusterOptions& options);
int runSavepoint(const ClusterOptions& options, const std::string& job_id,
                 const std::string& target_dir);
int runStop(const ClusterOptions& options, const std::string& job_id,
            const std::string& target_dir, bool drain);
int runCheckpoints(const ClusterOptions& options, const std::string& job_id);
int runInfo(const JobOptions& options);

}  // namespace weir::cli
