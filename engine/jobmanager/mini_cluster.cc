#include "jobmanager/mini_cluster.h"

#include <thread>

namespace weir::engine {

Result<std::unique_ptr<MiniCluster>> MiniCluster::start(int slots,
                                                        const std::vector<std::string>& overrides) {
  std::vector<std::string> jm_overrides = {"jobmanager.rpc.port=0", "jobmanager.admin.port=0"};
  jm_overrides.insert(jm_overrides.end(), overrides.begin(), overrides.end());
  auto jm_config = Configuration::load("", jm_overrides);
  if (!jm_config.isOk()) return jm_config.status();
  std::unique_ptr<MiniCluster> cluster(new MiniCluster());
  cluster->job_manager_ = std::make_unique<JobManager>(std::move(*jm_config));
  Status s = cluster->job_manager_->start();
  if (!s.isOk()) return s.withContext("JobManager");

  std::vector<std::string> tm_overrides = {
      "jobmanager.rpc.port=" + std::to_string(cluster->job_manager_->rpcPort()),
      "taskmanager.numberOfTaskSlots=" + std::to_string(slots), "taskmanager.data.port=0",
      "taskmanager.rpc.port=0", "taskmanager.registration.retry-interval=10 ms"};
  tm_overrides.insert(tm_overrides.end(), overrides.begin(), overrides.end());
  auto tm_config = Configuration::load("", tm_overrides);
  if (!tm_config.isOk()) return tm_config.status();
  cluster->task_manager_ = std::make_unique<TaskManager>(std::move(*tm_config));
  s = cluster->task_manager_->start();
  if (!s.isOk()) return s.withContext("TaskManager");
  // Registration is a loopback round trip; it fails only if something is badly wrong.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!cluster->task_manager_->registered()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::failed("the embedded TaskManager did not register with its JobManager");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cluster;
}

MiniCluster::~MiniCluster() {
  stop();
}

Result<std::string> MiniCluster::submit(const std::string& plugin_path, const JobGraph& graph,
                                        const std::string& plugin_name,
                                        const std::string& plugin_version) {
  auto hash = job_manager_->blobs().storeFile(plugin_path);
  if (!hash.isOk()) return hash.status();
  thrift::JobSubmission submission;
  submission.graph = graph;
  submission.pluginHash = *hash;
  submission.pluginName = plugin_name;
  submission.pluginVersion = plugin_version;
  return job_manager_->submitJob(submission);
}

void MiniCluster::stop() {
  if (task_manager_) task_manager_->stop();
  if (job_manager_) job_manager_->stop();
}

}  // namespace weir::engine
