// Hosts the tasks of a job in this process: creates them from their deployments, connects their
// channels through memory, runs each on its own thread and reports how the job ended.
//
// A TaskManager hosts one executor per job it runs a share of: with a RemotePlacement, the executor
// creates only the subtasks placed on this TaskManager and connects channels to subtasks elsewhere
// through the NetworkEnvironment. Without one, it runs the whole job in this process.
//
// Failure handling: when a task fails, every other task of the job is cancelled and the job's
// result is that first failure. cancel() stops the job gracefully (result: cancelled).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/execution_plan.h"
#include "runtime/job_graph.h"
#include "runtime/network/network_environment.h"
#include "runtime/plugin_loader.h"
#include "runtime/task.h"
#include "state/rocksdb_kv_store.h"

namespace weir::engine {

struct TaskExecutorOptions {
  std::size_t segment_size = 32 * 1024;  // bytes per network buffer
  int buffers_per_channel = 2;           // per output channel of a task
  int extra_buffers_per_output = 8;      // floating buffers per task output
  // Buffers beyond its pool's bound a task output may take for a record already under way.
  int overdraft_buffers_per_output = 5;
  std::size_t total_buffers = 16384;     // the executor's network memory, in segments
  std::chrono::milliseconds buffer_timeout{10};
  // Periodic watermark emission (pipeline.auto-watermark-interval); 0 disables it.
  std::chrono::milliseconds auto_watermark_interval{200};
  // The state backend of jobs that do not choose one (state.backend; a job's argument of that
  // name overrides it, see state/state_settings.h).
  StateBackendKind state_backend = StateBackendKind::kHeap;
  // RocksDB jobs keep timers in their stores (state.backend.rocksdb.timer-service.factory).
  bool rocksdb_timers_in_kv_store = true;
  // Where RocksDB stores are opened (a TaskManager's, shared by its jobs). When null, an executor
  // running a RocksDB job creates its own from `rocksdb`.
  LazyRocksDbResources* rocksdb_resources = nullptr;
  RocksDbOptions rocksdb;
  // A TaskManager's shared network memory; when set, the executor reserves its buffers there
  // instead of checking total_buffers.
  NetworkMemory* memory = nullptr;
};

// Where the subtasks of a job run, for an executor hosting only some of them.
struct RemotePlacement {
  std::string job_id;  // names the job's channels on the data plane
  NetworkEnvironment* network = nullptr;
  std::string local_address;  // this TaskManager's data address
  // Data address of every subtask of the job: (chain id, subtask) -> host:port.
  std::map<std::pair<int, int>, std::string> locations;
};

// How a job's tasks take part in checkpoints (see StreamTask). The callbacks identify the subtask;
// they are called on the executor's checkpoint writer thread (acknowledge, decline) or a task
// thread (decline, end_of_data).
struct ExecutorCheckpointing {
  bool enabled = false;   // barriers and snapshots (savepoints need no more)
  bool periodic = false;  // periodic checkpoints: tasks wait for a final one (see StreamTask)
  std::filesystem::path job_dir;
  bool incremental = true;
  bool unaligned = false;  // see TaskCheckpointing
  std::chrono::milliseconds aligned_timeout{0};
  std::function<void(thrift::CheckpointAck)> acknowledge;
  std::function<void(std::int64_t checkpoint_id, int chain_id, int subtask,
                     const std::string& reason)>
      decline;
  std::function<void(int chain_id, int subtask)> end_of_data;
};

// The data plane's name for the channel between two subtasks.
std::string channelKey(const std::string& job_id, int producer_chain, int producer_subtask,
                       int consumer_chain, int consumer_subtask, int consumer_channel);

struct TaskSnapshot {
  std::string name;
  int chain_id = 0;
  int subtask = 0;
  std::string failure;  // once failed
  TaskState state = TaskState::kCreated;
  std::uint64_t busy_ns = 0;
  std::uint64_t idle_ns = 0;
  std::uint64_t backpressured_ns = 0;
  struct Vertex {
    int id = 0;
    std::uint64_t records_in = 0;
    std::uint64_t records_out = 0;
    std::uint64_t late_records = 0;
    std::int64_t watermark = kMinWatermark;
  };
  std::vector<Vertex> vertices;
  std::size_t buffers_in_use = 0;  // output buffers held right now
  std::size_t peak_buffers_in_use = 0;
  std::size_t max_buffers = 0;  // bound of the task's output pools
  std::size_t max_overdraft = 0;  // buffers they may take beyond it (for a record under way)
};

class TaskExecutor {
 public:
  explicit TaskExecutor(TaskExecutorOptions options = {});
  ~TaskExecutor();
  TaskExecutor(const TaskExecutor&) = delete;
  TaskExecutor& operator=(const TaskExecutor&) = delete;

  // Set-up, before deploy(): checkpoints, and the state each subtask (chain, subtask) resumes from.
  void setCheckpointing(ExecutorCheckpointing checkpointing);
  void setRestores(std::map<std::pair<int, int>, thrift::TaskRestore> restores);

  // Starts a checkpoint at the listed subtasks (chain, subtask) running here.
  Status triggerCheckpoint(const CheckpointBarrier& barrier,
                           const std::vector<std::pair<int, int>>& subtasks);
  // Tells every task that a checkpoint completed (or was aborted).
  void notifyCheckpoint(std::int64_t checkpoint_id, bool completed);

  // Creates and starts every task of `plan` (with `placement`: those placed here). On error
  // nothing is left running.
  Status deploy(const ProgramPtr& program, const JobGraph& graph, const ExecutionPlan& plan,
                const RemotePlacement* placement = nullptr);

  // Blocks until every task has ended; the job's result.
  Status wait();
  // Like wait(), but gives up after `timeout`; true when the job has ended.
  bool waitFor(std::chrono::milliseconds timeout);
  bool finished() const;
  // True when no remote output channel holds buffers still to be sent (end of input included).
  bool drained() const;
  // True when every task finished (none failed or was cancelled).
  bool succeeded() const;
  void cancel();

  std::vector<TaskSnapshot> snapshot() const;
  static TaskSnapshot snapshotOf(const StreamTask& task);
  // Called on a task's thread when it has ended (set before deploy).
  std::function<void(const StreamTask&)> on_task_done;
  const ExecutionPlan& plan() const { return plan_; }

 private:
  void onTaskDone(StreamTask& task);
  void joinAll();

  TaskExecutorOptions options_;
  std::unique_ptr<LazyRocksDbResources> own_rocksdb_;  // when options_ brings none
  ExecutionPlan plan_;
  std::size_t reserved_segments_ = 0;  // in options_.memory
  NetworkEnvironment* network_ = nullptr;
  std::string channel_prefix_;  // of this job's remote channels
  std::vector<std::shared_ptr<RemoteOutputChannel>> remote_outputs_;
  ExecutorCheckpointing checkpointing_;
  std::map<std::pair<int, int>, thrift::TaskRestore> restores_;
  std::vector<std::unique_ptr<StreamTask>> tasks_;
  std::vector<std::thread> threads_;
  // Writes checkpoints while the tasks run; destroyed before them (its work refers to them).
  std::unique_ptr<AsyncCheckpointWriter> writer_;

  mutable std::mutex mu_;
  std::condition_variable done_cv_;
  int running_ = 0;                // guarded by mu_
  Status job_result_;              // guarded by mu_: first failure
  bool cancel_requested_ = false;  // guarded by mu_
};

}  // namespace weir::engine
