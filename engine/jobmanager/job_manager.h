// The JobManager process's core: the registry of TaskManagers with two-way heartbeats, the blob
// store of uploaded plugins, and the jobs: their scheduling onto slots, deployment, and states,
// served over the control service (for TaskManagers) and the admin service (for the CLI).
//
// Scheduling follows Flink's slot sharing: a job needs as many slots as its largest parallelism;
// slot i runs subtask i of every vertex, and slots are taken from the TaskManagers with the most
// free slots first, so a job spreads across TaskManagers. A job waits for slots at most
// slot.request.timeout and then fails with the shortfall.
//
// Job states: CREATED (waiting for slots) -> RUNNING (deployed) -> FINISHED when every subtask
// finished; FAILED as soon as one subtask fails or a TaskManager running one is lost (the others
// are cancelled); CANCELLING -> CANCELED on request.
//
// Concurrency model: Thrift server threads call the public methods; one monitor thread sends the
// JobManager's heartbeats to every TaskManager and declares lost those whose connection fails or
// who stayed silent past heartbeat.timeout; one scheduler thread places waiting jobs and makes
// the deploy and cancel calls to TaskManagers. All state is guarded by mu_; no RPC is made while
// mu_ is held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "AdminService.h"
#include "JobManagerService.h"
#include "TaskManagerService.h"
#include "common/config.h"
#include "common/rpc.h"
#include "checkpoint/checkpoint_coordinator.h"
#include "checkpoint/state_assignment.h"
#include "jobmanager/blob_store.h"
#include "jobmanager/job_settings.h"
#include "jobmanager/restart_strategy.h"
#include "runtime/execution_plan.h"
#include "runtime/job_graph.h"

namespace weir::engine {

inline bool isTerminal(thrift::ExecutionState::type s) {
  return s == thrift::ExecutionState::FINISHED || s == thrift::ExecutionState::CANCELED ||
         s == thrift::ExecutionState::FAILED;
}

inline bool isTerminal(thrift::JobState::type s) {
  return s == thrift::JobState::FINISHED || s == thrift::JobState::CANCELED ||
         s == thrift::JobState::FAILED;
}

// The vertices of `graph` as state assignment sees them.
std::vector<AssignmentVertex> assignmentVertices(const JobGraph& graph);

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

  void updateTaskStatus(const std::string& task_manager_id,
                        const std::vector<thrift::TaskStatus>& statuses);
  Result<std::string> fetchBlob(const std::string& sha256, std::int64_t offset,
                                std::int32_t length) const;
  void acknowledgeCheckpoint(const std::string& task_manager_id, const thrift::CheckpointAck& ack);
  void declineCheckpoint(const std::string& task_manager_id, const std::string& job_id,
                         int attempt, std::int64_t checkpoint_id, int chain_id, int subtask,
                         const std::string& reason);

  // Admin service.
  thrift::ClusterInfo clusterInfo() const;
  std::vector<thrift::TaskManagerInfo> taskManagers() const;
  BlobStore& blobs() { return *blobs_; }
  Result<std::string> submitJob(const thrift::JobSubmission& submission);
  std::vector<thrift::JobSummary> listJobs() const;
  Result<thrift::JobDetails> jobDetails(const std::string& job_id) const;
  Status cancelJob(const std::string& job_id);
  // Takes a savepoint into `target_dir` (empty: state.savepoints.dir); with `stop`, the job then
  // finishes (`drain`: event time ends first). Returns the savepoint's directory once complete.
  Result<std::string> triggerSavepoint(const std::string& job_id, const std::string& target_dir,
                                       bool stop, bool drain);
  Result<std::vector<thrift::CheckpointInfo>> listCheckpoints(const std::string& job_id) const;
  // Waits until the job has ended (or `timeout` passed) and returns its summary.
  Result<thrift::JobSummary> awaitJob(const std::string& job_id, std::chrono::milliseconds timeout);

 private:
  using Clock = std::chrono::steady_clock;
  using TaskManagerClient = RpcClient<thrift::TaskManagerServiceClient>;

  struct TaskManagerEntry {
    thrift::TaskManagerInfo info;  // state, lostReason kept current
    int number = 0;                // registration order
    std::string data_address;      // host:dataPort
    std::string resource_id;
    Clock::time_point last_heartbeat;
    std::shared_ptr<TaskManagerClient> client;
  };

  struct SubtaskEntry {
    thrift::ExecutionState::type state = thrift::ExecutionState::CREATED;
    std::string task_manager;  // id, once placed
    thrift::TaskStatus last;   // latest report, for metrics
    std::string failure;
    // Reported the end of its data (once): kept for a coordinator attempt that starts later.
    bool end_of_data = false;
  };
  struct JobEntry {
    std::string id;
    JobGraph graph;
    std::string plugin_hash;
    std::int64_t plugin_size = 0;
    std::string plugin;  // "name version (hash prefix)"
    ExecutionPlan plan;
    thrift::JobState::type state = thrift::JobState::CREATED;
    std::string failure;
    std::int64_t submitted_at_ms = 0;
    Clock::time_point submitted;
    Clock::time_point ended;
    int slots_needed = 0;
    std::map<std::pair<int, int>, SubtaskEntry> subtasks;  // (chain, subtask)
    std::map<std::string, int> slots_held;                 // TaskManager id -> slots
    bool probing = false;  // a TaskManager is being checked before the job fails
    // Fault tolerance.
    JobSettings settings;
    std::string state_backend;  // "heap" or "rocksdb"
    std::shared_ptr<CheckpointCoordinator> coordinator;
    std::unique_ptr<RestartStrategy> restart;
    int attempt = 0;              // deployments so far - 1; names the current one
    bool attempt_started = false;  // the coordinator knows the current attempt runs
    Clock::time_point restart_at;  // RESTARTING: when the next attempt is scheduled
    // The savepoint the job was submitted with (used until a checkpoint completes).
    std::optional<thrift::CheckpointMetadata> savepoint;
    std::string savepoint_dir;
    bool allow_non_restored_state = false;
    // The state the current attempt's subtasks resume from, by (uid, subtask).
    StateAssignment restore;
    std::int64_t restore_checkpoint = 0;  // 0: none
    std::string restore_base;
  };
  struct PendingCall {
    enum Kind { kDeploy, kCancel, kProbe, kTrigger, kNotify } kind = kCancel;
    std::string task_manager;
    std::string job;
    std::shared_ptr<thrift::JobDeployment> deployment;  // kDeploy
    std::string failure;  // kProbe: the job's failure if the TaskManager turns out alive
    // kTrigger, kNotify
    int attempt = 0;
    std::shared_ptr<thrift::CheckpointTrigger> trigger;
    std::vector<thrift::SubtaskId> subtasks;
    std::int64_t checkpoint_id = 0;
    bool completed = false;
  };

  void monitorLoop();
  void schedulerLoop();
  void wakeSchedulerLocked();
  // Queues a call for the scheduler thread; the caller fills in what the kind needs.
  PendingCall& queueCallLocked(PendingCall::Kind kind, const std::string& task_manager,
                               const std::string& job);
  void markLostLocked(TaskManagerEntry& tm, const std::string& reason);
  // After a failed call: marks the TaskManager lost when the failure says its process is gone.
  void markLostIfGoneLocked(const std::string& task_manager, const Status& failure);
  // Tries to place a waiting job; queues its deployments when it fits.
  bool tryScheduleLocked(JobEntry& job);
  void applyStatusLocked(JobEntry& job, const std::string& task_manager,
                         const thrift::TaskStatus& status);
  void failJobLocked(JobEntry& job, const std::string& reason);
  // Queues the cancellation of the job's subtasks on the live TaskManagers holding its slots.
  void cancelSubtasksLocked(JobEntry& job);
  // Gives the job's slots back to their TaskManagers.
  void releaseSlotsLocked(JobEntry& job);
  // A subtask failed or a TaskManager running one was lost: restart the job from its latest
  // checkpoint if its restart strategy allows, or fail it.
  void handleFailureLocked(JobEntry& job, const std::string& reason);
  // RESTARTING -> CREATED with the next attempt, once its delay passed.
  void beginAttemptLocked(JobEntry& job);
  // Chooses the state the next deployment resumes from; false (job failed) when it cannot.
  bool prepareRestoreLocked(JobEntry& job);
  Status createCoordinator(JobEntry& job);
  void runPendingCall(PendingCall& call, const std::shared_ptr<TaskManagerClient>& client,
                      std::unique_lock<std::mutex>& lock);
  void endJobLocked(JobEntry& job, thrift::JobState::type state);
  void evaluateJobLocked(JobEntry& job);
  thrift::JobSummary summaryLocked(const JobEntry& job) const;
  std::string describeSubtaskLocked(const JobEntry& job, int chain, int subtask) const;

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
  bool stopping_ = false;                                  // guarded by mu_
  std::map<std::string, TaskManagerEntry> task_managers_;  // guarded by mu_, by id
  int next_task_manager_ = 1;                              // guarded by mu_
  std::thread monitor_;

  std::unique_ptr<BlobStore> blobs_;
  std::filesystem::path default_blob_dir_;  // removed at stop; empty when configured
  const std::chrono::milliseconds slot_timeout_;
  std::map<std::string, JobEntry> jobs_;   // guarded by mu_
  std::vector<std::string> job_order_;     // guarded by mu_: submission order
  std::deque<PendingCall> pending_calls_;  // guarded by mu_
  std::condition_variable scheduler_cv_;
  std::condition_variable job_ended_cv_;
  bool scheduler_woken_ = false;  // guarded by mu_
  std::thread scheduler_;
};

}  // namespace weir::engine
