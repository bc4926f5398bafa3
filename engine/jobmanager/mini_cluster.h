// A JobManager and one TaskManager in this process, talking over loopback exactly as separate
// processes do: the embedded mode behind `weir local`. Every port is chosen by the kernel, every
// folder is temporary and removed at stop().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "jobmanager/job_manager.h"
#include "taskmanager/task_manager.h"

namespace weir::engine {

class MiniCluster {
 public:
  // `overrides` ("key=value") apply to both processes' configuration.
  static Result<std::unique_ptr<MiniCluster>> start(int slots,
                                                    const std::vector<std::string>& overrides);
  ~MiniCluster();

  JobManager& jobManager() { return *job_manager_; }
  // Stores the plugin and submits the job; returns its id.
  Result<std::string> submit(const std::string& plugin_path, const JobGraph& graph,
                             const std::string& plugin_name, const std::string& plugin_version);
  void stop();

 private:
  MiniCluster() = default;

  std::unique_ptr<JobManager> job_manager_;
  std::unique_ptr<TaskManager> task_manager_;
};

}  // namespace weir::engine
