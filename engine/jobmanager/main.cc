// weir-jobmanager: the JobManager process.
#include <memory>

#include "common/process.h"
#include "jobmanager/job_manager.h"

int main(int argc, char** argv) {
  using namespace weir::engine;
  std::unique_ptr<JobManager> jm;
  return runServerProcess(
      "weir-jobmanager", "the JobManager of a Weir cluster", argc, argv, [&](Configuration config) {
        jm = std::make_unique<JobManager>(std::move(config));
        return ServerCallbacks{[&] { return jm->start(); },
                               [&]() -> std::map<std::string, std::string> {
                                 return {{"id", jm->id()},
                                         {"rpc_port", std::to_string(jm->rpcPort())},
                                         {"admin_port", std::to_string(jm->adminPort())}};
                               },
                               [&] { jm->stop(); }};
      });
}
