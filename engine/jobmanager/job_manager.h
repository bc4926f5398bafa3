// The JobManager process's core: the registry of TaskManagers with two-way heartbeats, served over
// the control service (for TaskManagers) and the admin service (for the CLI).
//
// Concurrency model: Thrift server threads call the public methods; one monitor thread sends the
// JobManager's heartbeats to every TaskManager and declares lost those whose connection fails or
// who stayed silent past heartbeat.timeout. All registry state is guarded by mu_; no RPC is made
// while mu_ is held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "AdminService.h"
#include "JobManagerService.h"
#include "TaskManagerService.h"
#include "common/config.h"
#include "common/rpc.h"

namespace weir::engine {

class JobManager {
 public:
  explicit JobManager(Configuration config);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Starts both services and the heartbeat monitor.
  Status start();
  void stop();

  const std::string& id() const { return id_; }
  int rpcPort() const;
  int adminPort() const;

  // Control service.
  Result<thrift::RegistrationResponse> registerTaskManager(
      const thrift::TaskManagerRegistration& registration);
  thrift::HeartbeatResponse heartbeatFrom(const thrift::TaskManagerHeartbeat& heartbeat);

  // Admin service.
  thrift::ClusterInfo clusterInfo() const;
  std::vector<thrift::TaskManagerInfo> taskManagers() const;

 private:
  using Clock = std::chrono::steady_clock;
  using TaskManagerClient = RpcClient<thrift::TaskManagerServiceClient>;

  struct TaskManagerEntry {
    thrift::TaskManagerInfo info;  // state, lostReason kept current
    std::string resource_id;
    Clock::time_point last_heartbeat;
    std::shared_ptr<TaskManagerClient> client;
  };

  void monitorLoop();
  void markLostLocked(TaskManagerEntry& tm, const std::string& reason);

  Configuration config_;
  const std::string id_;
  const std::chrono::milliseconds heartbeat_interval_;
  const std::chrono::milliseconds heartbeat_timeout_;
  const std::chrono::milliseconds rpc_timeout_;
  const std::int64_t started_at_ms_;

  std::unique_ptr<RpcServer> rpc_server_;
  std::unique_ptr<RpcServer> admin_server_;

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;                            // guarded by mu_
  std::map<std::string, TaskManagerEntry> task_managers_;  // guarded by mu_, by id
  int next_task_manager_ = 1;                        // guarded by mu_
  std::thread monitor_;
};

}  // namespace weir::engine
