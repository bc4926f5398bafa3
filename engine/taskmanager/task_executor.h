// Hosts the tasks of a job in this process: creates them from their deployments, connects their
// channels through memory, runs each on its own thread and reports how the job ended.
//
// This is the runtime a TaskManager hosts; `weir local` runs a whole job on one executor.
//
// Failure handling: when a task fails, every other task of the job is cancelled and the job's
// result is that first failure. cancel() stops the job gracefully (result: cancelled).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/execution_plan.h"
#include "runtime/job_graph.h"
#include "runtime/plugin_loader.h"
#include "runtime/task.h"

namespace weir::engine {

struct TaskExecutorOptions {
  std::size_t segment_size = 32 * 1024;  // bytes per network buffer
  int buffers_per_channel = 2;           // per output channel of a task
  int extra_buffers_per_output = 8;      // floating buffers per task output
  std::size_t total_buffers = 16384;     // the executor's network memory, in segments
  std::chrono::milliseconds buffer_timeout{10};
};

struct TaskSnapshot {
  std::string name;
  int chain_id = 0;
  int subtask = 0;
  TaskState state = TaskState::kCreated;
  std::uint64_t busy_ns = 0;
  std::uint64_t idle_ns = 0;
  std::uint64_t backpressured_ns = 0;
  struct Vertex {
    int id = 0;
    std::uint64_t records_in = 0;
    std::uint64_t records_out = 0;
  };
  std::vector<Vertex> vertices;
  std::size_t buffers_in_use = 0;  // output buffers held right now
  std::size_t peak_buffers_in_use = 0;
  std::size_t max_buffers = 0;  // bound of the task's output pools
};

class TaskExecutor {
 public:
  explicit TaskExecutor(TaskExecutorOptions options = {});
  ~TaskExecutor();
  TaskExecutor(const TaskExecutor&) = delete;
  TaskExecutor& operator=(const TaskExecutor&) = delete;

  // Creates and starts every task of `plan`. On error nothing is left running.
  Status deploy(const ProgramPtr& program, const JobGraph& graph, const ExecutionPlan& plan);

  // Blocks until every task has ended; the job's result.
  Status wait();
  // Like wait(), but gives up after `timeout`; true when the job has ended.
  bool waitFor(std::chrono::milliseconds timeout);
  bool finished() const;
  void cancel();

  std::vector<TaskSnapshot> snapshot() const;
  const ExecutionPlan& plan() const { return plan_; }

 private:
  void onTaskDone(StreamTask& task);
  void joinAll();

  TaskExecutorOptions options_;
  ExecutionPlan plan_;
  std::vector<std::unique_ptr<StreamTask>> tasks_;
  std::vector<std::thread> threads_;

  mutable std::mutex mu_;
  std::condition_variable done_cv_;
  int running_ = 0;                // guarded by mu_
  Status job_result_;              // guarded by mu_: first failure
  bool cancel_requested_ = false;  // guarded by mu_
};

}  // namespace weir::engine
