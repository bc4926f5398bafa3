// The TaskManager process's core: registration with the JobManager, the two-way heartbeat that
// tells each side when the other is gone, and the jobs whose subtasks run here.
//
// A deployment arrives as one JobDeployment per job: the TaskManager fetches the plugin by hash
// (verified, cached on disk), loads it, rebuilds the job's program, checks it against the graph it
// was sent, and runs its subtasks on a TaskExecutor whose remote channels go through this
// TaskManager's NetworkEnvironment. State changes go to the JobManager as they happen; metrics ride
// on every heartbeat.
//
// Concurrency model: one connection thread registers, heartbeats and re-registers; one reporter
// thread sends state changes and retires ended jobs; one preparer thread per deployment does the
// slow part (fetch, load, wire); Thrift server threads serve the JobManager's calls. Shared state
// is guarded by mu_; no RPC is made while mu_ is held.
//
// When the JobManager is lost (heartbeats fail or stop arriving for heartbeat.timeout, or it no
// longer knows this TaskManager) the TaskManager drops its registration, cancels its tasks and
// keeps trying to register again every taskmanager.registration.retry-interval.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "JobManagerService.h"
#include "TaskManagerService.h"
#include "common/config.h"
#include "common/rpc.h"
#include "runtime/network/network_environment.h"
#include "runtime/plugin_loader.h"
#include "taskmanager/plugin_cache.h"
#include "taskmanager/task_executor.h"

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
  int dataPort() const;
  // Empty while not registered.
  std::string taskManagerId() const;
  bool registered() const;

  // Called by the JobManager (Thrift server threads).
  Status heartbeatFromJobManager(const std::string& job_manager_id);
  Status deployTasks(const std::string& job_manager_id, const thrift::JobDeployment& deployment);
  Status cancelJob(const std::string& job_manager_id, const std::string& job_id);
  Status triggerCheckpoint(const std::string& job_manager_id, const std::string& job_id,
                           int attempt, const thrift::CheckpointTrigger& trigger,
                           const std::vector<thrift::SubtaskId>& subtasks);
  // Checkpoint `checkpoint_id` of the job's deployment `attempt` completed (or was aborted).
  Status notifyCheckpoint(const std::string& job_manager_id, const std::string& job_id,
                          int attempt, std::int64_t checkpoint_id, bool completed);

  // Jobs with subtasks here (for tests).
  std::size_t jobCount() const;

 private:
  using Clock = std::chrono::steady_clock;

  struct HostedJob {
    thrift::JobDeployment deployment;
    std::atomic<bool> cancelled{false};
    std::thread preparer;
    // Declared in this order so that the executor (running the plugin's code) goes first.
    std::shared_ptr<LoadedPlugin> plugin;
    ProgramPtr program;
    std::unique_ptr<TaskExecutor> executor;  // set by the preparer under mu_
    bool failed_to_deploy = false;           // guarded by mu_
  };

  using JobKey = std::pair<std::string, int>;  // job id, attempt
  using JobManagerCall =
      std::function<void(thrift::JobManagerServiceClient& client, const std::string& tm_id)>;

  // Queues a call to the JobManager for the reporter thread (after the pending state reports).
  void callJobManager(JobManagerCall call);
  Result<std::shared_ptr<HostedJob>> runningJob(const std::string& job_manager_id,
                                                const std::string& job_id, int attempt);
  void connectionLoop();
  void reporterLoop();
  void jobManagerLost(const std::string& reason);
  void prepare(const std::shared_ptr<HostedJob>& job);
  Status startJob(HostedJob& job, std::unique_ptr<TaskExecutor>& executor);
  void report(thrift::TaskStatus status);
  std::vector<thrift::TaskStatus> runningStatuses() const;
  void cancelAllJobs();

  Configuration config_;
  const std::string resource_id_;
  const std::chrono::milliseconds retry_interval_;
  std::unique_ptr<RpcServer> rpc_server_;
  RpcClient<thrift::JobManagerServiceClient> job_manager_;
  RpcClient<thrift::JobManagerServiceClient> reporter_client_;  // state reports and plugin fetches
  std::unique_ptr<NetworkEnvironment> network_;
  std::unique_ptr<NetworkMemory> memory_;
  std::unique_ptr<PluginCache> plugins_;
  // RocksDB stores of every job here (state.backend.rocksdb.*), created with the first store.
  std::unique_ptr<LazyRocksDbResources> rocksdb_;
  TaskExecutorOptions executor_options_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                               // guarded by mu_
  std::string task_manager_id_;                         // guarded by mu_; empty when not registered
  std::string job_manager_id_;                          // guarded by mu_
  std::chrono::milliseconds heartbeat_interval_{1000};  // guarded by mu_, from the JobManager
  std::chrono::milliseconds heartbeat_timeout_{10000};  // guarded by mu_, from the JobManager
  Clock::time_point last_response_;                     // guarded by mu_: our heartbeat answered
  Clock::time_point last_jm_heartbeat_;  // guarded by mu_: the JobManager's heartbeat
  std::map<JobKey, std::shared_ptr<HostedJob>> jobs_;  // guarded by mu_
  std::deque<thrift::TaskStatus> reports_;             // guarded by mu_
  std::deque<JobManagerCall> calls_;                   // guarded by mu_
  std::condition_variable reporter_wake_;
  std::thread connection_;
  std::thread reporter_;
};

}  // namespace weir::engine
