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
  int poll_interval_ms = 200;
};

int runLocal(const JobOptions& options);
int runSubmit(const JobOptions& job, const ClusterOptions& cluster, const SubmitOptions& submit);
int runList(const ClusterOptions& options);
int runStatus(const ClusterOptions& options, const std::string& job_id);
int runCancel(const ClusterOptions& options, const std::string& job_id);
int runTaskManagers(const ClusterOptions& options);
int runInfo(const JobOptions& options);

}  // namespace weir::cli
