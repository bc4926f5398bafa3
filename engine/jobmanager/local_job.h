// One job run entirely in this process: the embedded mode behind `weir local`.
//
// It does what the distributed path does, in one process: the "client" builds the program and
// derives and validates the JobGraph; the "TaskManager" builds the program again from the same
// plugin and arguments, checks that it describes the same graph, and runs the planned tasks on a
// TaskExecutor.
#pragma once

#include <functional>
#include <memory>

#include "runtime/execution_plan.h"
#include "runtime/job_graph.h"
#include "runtime/plugin_loader.h"
#include "taskmanager/task_executor.h"

namespace weir::engine {

// Builds the job's program; called once per "process" that needs it.
using ProgramFactory = std::function<Result<ProgramPtr>()>;

class LocalJob {
 public:
  // `checkpointing`: how the tasks take part in checkpoints, which the caller triggers (there is
  // no coordinator here).
  static Result<std::unique_ptr<LocalJob>> start(const ProgramFactory& factory, int parallelism,
                                                 const JobArgs& args,
                                                 TaskExecutorOptions options = {},
                                                 ExecutorCheckpointing checkpointing = {});

  Status wait() { return executor_.wait(); }
  bool waitFor(std::chrono::milliseconds timeout) { return executor_.waitFor(timeout); }
  void cancel() { executor_.cancel(); }
  Status triggerCheckpoint(const CheckpointBarrier& barrier,
                           const std::vector<std::pair<int, int>>& subtasks) {
    return executor_.triggerCheckpoint(barrier, subtasks);
  }
  const JobGraph& graph() const { return graph_; }
  const ExecutionPlan& plan() const { return executor_.plan(); }
  std::vector<TaskSnapshot> snapshot() const { return executor_.snapshot(); }

 private:
  explicit LocalJob(TaskExecutorOptions options) : executor_(options) {}

  JobGraph graph_;
  TaskExecutor executor_;
};

// A factory running a loaded plugin's builder.
ProgramFactory pluginProgramFactory(std::shared_ptr<LoadedPlugin> plugin, JobArgs args);

}  // namespace weir::engine
