// A task: one subtask of one chain, run on its own thread.
//
// Concurrency model: the task thread owns the chain instance, its result partitions and the
// consuming end of its input gate; it makes every call into plugin code. Other threads only push
// buffers into the gate, recycle buffers into the partitions' pools, read the atomic counters and
// call cancel(), which sets a flag and wakes the thread wherever it waits (gate, pool, idle
// source).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/execution_plan.h"
#include "runtime/network/input_gate.h"
#include "runtime/network/result_partition.h"
#include "runtime/plugin_loader.h"
#include "runtime/state_timer.h"
#include "runtime/watermark_valve.h"
#include "state/rocksdb_kv_store.h"
#include "weir/job_args.h"
#include "weir/status.h"
#include "weir/task_api.h"

namespace weir::engine {

enum class TaskState : int { kCreated, kRunning, kFinished, kCanceled, kFailed };
const char* taskStateName(TaskState s);

struct TaskMetrics {
  StateTimer busy;           // processing, including back-pressured time
  StateTimer idle;           // waiting for input
  StateTimer backpressured;  // waiting for an output buffer
};

class StreamTask final : public TaskEnvironment {
 public:
  struct Options {
    std::chrono::milliseconds buffer_timeout{10};
    std::chrono::milliseconds auto_watermark_interval{200};
    StateBackendKind state_backend = StateBackendKind::kHeap;
    bool timers_in_kv_store = false;  // RocksDB backend only
    // Names the task's RocksDB stores (with the vertex uid and subtask): the job id, unique among
    // the jobs on this TaskManager.
    std::string job_id;
    // Where openKvStore opens stores; null: the RocksDB backend is not available.
    LazyRocksDbResources* rocksdb = nullptr;
  };

  StreamTask(TaskDeployment deployment, JobArgs args, Options options);
  ~StreamTask() override;

  // Set-up, before init(): outputs in the order of deployment().spec.outputs.
  void addOutput(std::unique_ptr<ResultPartition> partition);
  InputGate* inputGate() { return gate_.get(); }
  const std::atomic<bool>* cancelFlag() const { return &cancelled_; }
  StateTimer* backpressureTimer() { return &metrics_.backpressured; }

  // Instantiates the chain's operators from the program.
  Status init(const ProgramPtr& program);

  // The thread body: open, process until end of input or cancellation, close. Calls `on_done`
  // once at the end, on the task thread.
  void run();
  void cancel();
  // Ends the task as failed with `reason` (from outside the task thread: a broken channel). The
  // first reason wins; a task that already ended is left alone.
  void fail(const Status& reason);

  TaskState state() const { return state_.load(std::memory_order_acquire); }
  // The failure (or cancellation) reason once the task has ended.
  Status result() const;
  const TaskDeployment& deployment() const { return deployment_; }
  const TaskMetrics& metrics() const { return metrics_; }
  const VertexCounters* counters(int vertex_id) const;
  const std::vector<std::unique_ptr<ResultPartition>>& outputs() const { return outputs_; }

  std::function<void(StreamTask&)> on_done;

  // TaskEnvironment
  const JobArgs& args() const noexcept override { return args_; }
  OutputGate& outputGate(std::size_t index) noexcept override { return *outputs_[index]; }
  std::int64_t currentProcessingTime() const noexcept override;
  // Opens the RocksDB store of one keyed operator of this chain, named
  // rocksDbStoreName(job id, vertex uid, subtask); the same store on later calls. Stores are
  // closed and their files deleted when the task ends, after the chain closed.
  Status openKvStore(int vertex_id, KvStore*& out) noexcept override;
  // RocksDB stores open right now (for tests).
  std::size_t openKvStores() const;

 private:
  Status runSource();
  Status runInputs();
  // Hands the chain what the valve says changed.
  Status forward(const WatermarkValve::Output& out);
  // Fires the chain's processing-time work if it is due; returns the steady-clock time of the next
  // deadline (time_point::max() when none).
  Status firePendingTimers(std::chrono::steady_clock::time_point& next);
  using Clock = std::chrono::steady_clock;
  // The steady-clock time at which processing time reaches `due` (max() for kNoDeadline).
  Clock::time_point steadyDeadline(std::int64_t due) const;
  void flushOutputs();
  bool anyPendingOutput() const;
  void finishOutputs();

  TaskDeployment deployment_;
  JobArgs args_;
  Options options_;
  std::unique_ptr<InputGate> gate_;
  std::vector<std::unique_ptr<ResultPartition>> outputs_;
  // Task thread only; closed before on_done runs (their files go with them).
  std::map<int, std::unique_ptr<RocksDbKvStore>> kv_stores_;  // by vertex id
  std::atomic<std::size_t> num_kv_stores_{0};
  ChainPtr chain_;
  bool is_source_ = false;

  std::atomic<bool> cancelled_{false};
  std::atomic<TaskState> state_{TaskState::kCreated};
  TaskMetrics metrics_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // wakes an idle source on cancel
  Status result_;                    // guarded by mu_
  Status external_failure_;          // guarded by mu_
};

}  // namespace weir::engine
