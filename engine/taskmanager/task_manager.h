// The TaskManager process's core: registration with the JobManager, and the two-way heartbeat
// that tells each side when the other is gone.
//
// Concurrency model: one connection thread registers, heartbeats and re-registers; Thrift server
// threads serve the JobManager's calls. Shared state is guarded by mu_; no RPC is made while mu_
// is held.
//
// When the JobManager is lost (heartbeats fail or stop arriving for heartbeat.timeout, or it no
// longer knows this TaskManager) the TaskManager drops its registration, cancels its tasks and keeps
// trying to register again every taskmanager.registration.retry-interval.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "JobManagerService.h"
#include "TaskManagerService.h"
#include "common/config.h"
#include "common/rpc.h"

namespace weir::engine {

class TaskManager {
 public:
  explicit TaskManager(Configuration config);
  ~TaskManager();
  TaskManager(const TaskManager&) = delete;
  TaskManager& operator=(const TaskManager&) = delete;

  Status start();
  void stop();

  int rpcPort() const;
  // Empty while not registered.
  std::string taskManagerId() const;
  bool registered() const;

  // Called by the JobManager (Thrift server threads).
  Status heartbeatFromJobManager(const std::string& job_manager_id);

 private:
  using Clock = std::chrono::steady_clock;

  void connectionLoop();
  void jobManagerLost(const std::string& reason);

  Configuration config_;
  const std::string resource_id_;
  const std::chrono::milliseconds retry_interval_;
  std::unique_ptr<RpcServer> rpc_server_;
  RpcClient<thrift::JobManagerServiceClient> job_manager_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                       // guarded by mu_
  std::string task_manager_id_;                 // guarded by mu_; empty when not registered
  std::string job_manager_id_;                  // guarded by mu_
  std::chrono::milliseconds heartbeat_interval_{1000};  // guarded by mu_, from the JobManager
  std::chrono::milliseconds heartbeat_timeout_{10000};  // guarded by mu_, from the JobManager
  Clock::time_point last_response_;             // guarded by mu_: our heartbeat answered
  Clock::time_point last_jm_heartbeat_;         // guarded by mu_: the JobManager's heartbeat
  std::thread connection_;
};

}  // namespace weir::engine
