#include "common/process.h"

#include "common/rpc.h"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace weir::engine {

void addProcessOptions(CLI::App& app, ProcessOptions& options) {
  app.add_option("-c,--config", options.config_file, "configuration file (YAML)");
  app.add_option("-D", options.dynamic_properties, "configuration override key=value (repeatable)");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--ready-file", options.ready_file,
                 "write the bound ports as JSON to this file once serving");
}

void setupLogging(const std::string& level) {
  auto logger = spdlog::default_logger();
  logger->sinks().clear();
  logger->sinks().push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  routeThriftOutputToLog();
}

void blockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int waitForShutdownSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

Status writeReadyFile(const std::string& path, const std::map<std::string, std::string>& values) {
  nlohmann::json j = values;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump() << "\n";
    if (!out) return Status::ioError("cannot write ready file '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::ioError("cannot write ready file '" + path + "': " + ec.message());
  return Status::ok();
}

int runServerProcess(const std::string& name, const std::string& description, int argc,
                     char** argv, const std::function<ServerCallbacks(Configuration)>& make) {
  blockShutdownSignals();
  CLI::App app{name + ": " + description};
  ProcessOptions options;
  addProcessOptions(app, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", name.c_str(), e.what());
    return 2;
  }
  setupLogging(options.log_level);
  auto config = Configuration::load(options.config_file, options.dynamic_properties);
  if (!config.isOk()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), config.status().message().c_str());
    return 2;
  }
  ServerCallbacks server = make(std::move(*config));
  Status s = server.start();
  if (s.isOk() && !options.ready_file.empty()) {
    s = writeReadyFile(options.ready_file, server.ready_values());
  }
  if (!s.isOk()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), s.message().c_str());
    server.stop();
    return 1;
  }
  const int sig = waitForShutdownSignal();
  spdlog::info("signal {} received, shutting down", sig);
  server.stop();
  return 0;
}

}  // namespace weir::engine
