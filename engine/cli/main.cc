// weir: the command-line entry point.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "common/process.h"
#include "weir/sdk_fingerprint.h"
#include "weir/task_api.h"

int main(int argc, char** argv) {
  CLI::App app{"Weir: a distributed, stateful stream-processing engine"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (--log-level) may follow the subcommand
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  weir::cli::JobOptions job;
  auto addJobOptions = [&job](CLI::App* cmd) {
    cmd->add_option("plugin", job.plugin, "job plugin (.so) built with weir_add_plugin")
        ->required();
    cmd->add_option("-p,--parallelism", job.parallelism,
                    "default parallelism of the job's operators")
        ->check(CLI::Range(1, 32768));
    cmd->add_option("-a,--arg", job.args, "job argument key=value (repeatable)");
  };

  CLI::App* local = app.add_subcommand("local", "run a job in this process (embedded mode)");
  addJobOptions(local);
  local
      ->add_option("--buffer-timeout-ms", job.buffer_timeout_ms,
                   "flush partly filled network buffers after this many milliseconds")
      ->check(CLI::Range(0, 60000));
  local->add_option("--checkpoint-dir", job.checkpoint_dir,
                    "directory for checkpoints (state.checkpoints.dir); set the interval with "
                    "--arg execution.checkpointing.interval=...");

  CLI::App* info = app.add_subcommand("info", "show a plugin's job graph and chaining");
  addJobOptions(info);

  weir::cli::ClusterOptions cluster;
  auto addClusterOptions = [&cluster](CLI::App* cmd, bool read_command) {
    cmd->add_option("-m,--jobmanager", cluster.jobmanager,
                    "host:port of the JobManager's admin service");
    cmd->add_option("-c,--config", cluster.config_file,
                    "configuration file naming the JobManager (jobmanager.rpc.address, "
                    "jobmanager.admin.port)");
    cmd->add_option("--timeout-ms", cluster.timeout_ms, "timeout of each call to the JobManager")
        ->check(CLI::Range(1, 3600000));
    if (read_command) {
      cmd->add_option("-o,--output", cluster.output, "text or json")
          ->check(CLI::IsMember({"text", "json"}));
    }
  };
  CLI::App* taskmanagers =
      app.add_subcommand("taskmanagers", "list the TaskManagers registered with the JobManager");
  addClusterOptions(taskmanagers, true);

  weir::cli::SubmitOptions submit_options;
  CLI::App* submit = app.add_subcommand("submit", "submit a job to a cluster");
  addJobOptions(submit);
  addClusterOptions(submit, false);
  submit->add_option("--name", submit_options.name, "name of the job (default: the plugin's)");
  submit->add_flag("-d,--detached", submit_options.detached,
                   "return once the job is submitted instead of waiting for its end");
  submit->add_option("-s,--from-savepoint", submit_options.from_savepoint,
                     "resume from this savepoint (or retained checkpoint) directory");
  submit->add_flag("-n,--allow-non-restored-state", submit_options.allow_non_restored_state,
                   "with --from-savepoint: drop state of operators the job no longer has");

  CLI::App* list = app.add_subcommand("list", "list the cluster's jobs");
  addClusterOptions(list, true);

  std::string job_id;
  CLI::App* status = app.add_subcommand("status", "show a job's vertices and subtasks");
  addClusterOptions(status, true);
  status->add_option("job", job_id, "job id (from weir submit or weir list)")->required();

  CLI::App* cancel = app.add_subcommand("cancel", "cancel a job");
  addClusterOptions(cancel, false);
  cancel->add_option("job", job_id, "job id (from weir submit or weir list)")->required();

  std::string target_dir;
  CLI::App* savepoint = app.add_subcommand("savepoint", "take a savepoint of a running job");
  addClusterOptions(savepoint, false);
  savepoint->add_option("job", job_id, "job id (from weir submit or weir list)")->required();
  savepoint->add_option("dir", target_dir,
                        "directory to create the savepoint in (default: state.savepoints.dir)");

  bool drain = false;
  CLI::App* stop = app.add_subcommand("stop", "stop a job with a savepoint");
  addClusterOptions(stop, false);
  stop->add_option("job", job_id, "job id (from weir submit or weir list)")->required();
  stop->add_option("--savepoint,--savepointPath", target_dir,
                   "directory to create the savepoint in (default: state.savepoints.dir)");
  stop->add_flag("--drain", drain, "end event time first, so every window and timer fires");

  CLI::App* checkpoints =
      app.add_subcommand("checkpoints", "list a job's checkpoints and savepoints");
  addClusterOptions(checkpoints, true);
  checkpoints->add_option("job", job_id, "job id (from weir submit or weir list)")->required();

  CLI::App* version = app.add_subcommand("version", "print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "weir: %s (see 'weir --help')\n", e.what());
    return weir::cli::kExitUsage;
  }

  // Logs go to stderr so that a job's printed output alone is on stdout.
  weir::engine::setupLogging(log_level);

  if (local->parsed()) return weir::cli::runLocal(job);
  if (info->parsed()) return weir::cli::runInfo(job);
  if (taskmanagers->parsed()) return weir::cli::runTaskManagers(cluster);
  if (submit->parsed()) return weir::cli::runSubmit(job, cluster, submit_options);
  if (list->parsed()) return weir::cli::runList(cluster);
  if (status->parsed()) return weir::cli::runStatus(cluster, job_id);
  if (cancel->parsed()) return weir::cli::runCancel(cluster, job_id);
  if (savepoint->parsed()) return weir::cli::runSavepoint(cluster, job_id, target_dir);
  if (stop->parsed()) return weir::cli::runStop(cluster, job_id, target_dir, drain);
  if (checkpoints->parsed()) return weir::cli::runCheckpoints(cluster, job_id);
  if (version->parsed()) {
    std::printf("weir %s (SDK ABI %u, SDK headers %s)\n", WEIR_VERSION_STRING, weir::kSdkAbiVersion,
                WEIR_SDK_HEADER_HASH);
  }
  return weir::cli::kExitOk;
}
