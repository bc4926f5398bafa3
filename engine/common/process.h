// What every Weir server process shares: its command line (--config, -D key=value, --log-level,
// --ready-file), logging to stderr, the ready file, and waiting for SIGINT/SIGTERM.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "weir/status.h"

namespace CLI {
class App;
}

namespace weir::engine {

struct ProcessOptions {
  std::string config_file;
  std::vector<std::string> dynamic_properties;  // -D key=value
  std::string log_level = "info";
  std::string ready_file;
};

void addProcessOptions(CLI::App& app, ProcessOptions& options);

// Logs go to stderr, with levels.
void setupLogging(const std::string& level);

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards, so that
// waitForShutdownSignal() receives them. Call first thing in main().
void blockShutdownSignals();
// Returns the signal that asked the process to stop.
int waitForShutdownSignal();

// Writes `values` as a JSON object to `path` atomically (temporary file + rename): tests and
// scripts wait for this file to learn the ports a process bound.
Status writeReadyFile(const std::string& path, const std::map<std::string, std::string>& values);

// What a server process does between start-up and shutdown.
struct ServerCallbacks {
  std::function<Status()> start;
  std::function<std::map<std::string, std::string>()> ready_values;  // for the ready file
  std::function<void()> stop;
};

// The whole life of a server process: parse the command line, load the configuration (errors exit
// with 2), create the server with `make`, start it (errors exit with 1), write the ready file, wait
// for SIGINT/SIGTERM, stop it and exit with 0.
int runServerProcess(const std::string& name, const std::string& description, int argc,
                     char** argv, const std::function<ServerCallbacks(Configuration)>& make);

}  // namespace weir::engine
