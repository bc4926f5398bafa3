#include "jobmanager/local_job.h"

namespace weir::engine {

Result<std::unique_ptr<LocalJob>> LocalJob::start(const ProgramFactory& factory, int parallelism,
                                                  const JobArgs& args,
                                                  TaskExecutorOptions options,
                                                  ExecutorCheckpointing checkpointing) {
  // Client side: build, resolve, validate.
  auto client_program = factory();
  if (!client_program.isOk()) return client_program.status();
  auto graph = buildJobGraph((*client_program)->graph(), parallelism, args);
  if (!graph.isOk()) return graph.status();

  // TaskManager side: rebuild from the same plugin and arguments, check, plan, deploy.
  auto task_program = factory();
  if (!task_program.isOk()) return task_program.status();
  Status s = checkSameGraph(*graph, (*task_program)->graph());
  if (!s.isOk()) return s;

  std::unique_ptr<LocalJob> job(new LocalJob(options));
  job->graph_ = std::move(*graph);
  job->executor_.setCheckpointing(std::move(checkpointing));
  s = job->executor_.deploy(*task_program, job->graph_, planExecution(job->graph_));
  if (!s.isOk()) return s;
  return job;
}

ProgramFactory pluginProgramFactory(std::shared_ptr<LoadedPlugin> plugin, JobArgs args) {
  return [plugin = std::move(plugin), args = std::move(args)]() {
    return plugin->createProgram(args);
  };
}

}  // namespace weir::engine
