// weir: the command-line entry point.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
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

  CLI::App* info = app.add_subcommand("info", "show a plugin's job graph and chaining");
  addJobOptions(info);

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
  spdlog::default_logger()->sinks().clear();
  spdlog::default_logger()->sinks().push_back(
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");

  if (local->parsed()) return weir::cli::runLocal(job);
  if (info->parsed()) return weir::cli::runInfo(job);
  if (version->parsed()) {
    std::printf("weir %s (SDK ABI %u, SDK headers %s)\n", WEIR_VERSION_STRING, weir::kSdkAbiVersion,
                WEIR_SDK_HEADER_HASH);
  }
  return weir::cli::kExitOk;
}
