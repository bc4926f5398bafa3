// weir-taskmanager: the TaskManager process.
#include <memory>

#include "common/process.h"
#include "taskmanager/task_manager.h"

int main(int argc, char** argv) {
  using namespace weir::engine;
  std::unique_ptr<TaskManager> tm;
  return runServerProcess(
      "weir-taskmanager", "a TaskManager of a Weir cluster", argc, argv, [&](Configuration config) {
        tm = std::make_unique<TaskManager>(std::move(config));
        return ServerCallbacks{[&] { return tm->start(); },
                               [&]() -> std::map<std::string, std::string> {
                                 return {{"rpc_port", std::to_string(tm->rpcPort())}};
                               },
                               [&] { tm->stop(); }};
      });
}
