// Running jobs built in the test process on the real runtime (LocalJob + TaskExecutor).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "jobmanager/local_job.h"
#include "weir/plugin.h"

namespace weir::testing {

template <class BuildFn>
engine::ProgramFactory factoryFor(BuildFn build, JobArgs args = {}) {
  return [build, args]() mutable -> Result<engine::ProgramPtr> {
    auto program = makeProgram(build, args);
    if (!program.isOk()) return program.status();
    return engine::adoptProgram(std::move(*program));
  };
}

template <class BuildFn>
Result<std::unique_ptr<engine::LocalJob>> startJob(BuildFn build, int parallelism,
                                                   JobArgs args = {},
                                                   engine::TaskExecutorOptions options = {},
                                                   engine::ExecutorCheckpointing checkpointing = {}) {
  return engine::LocalJob::start(factoryFor(build, args), parallelism, args, options,
                                 std::move(checkpointing));
}

// Runs a bounded job to completion.
template <class BuildFn>
Status runJob(BuildFn build, int parallelism, JobArgs args = {}) {
  auto job = startJob(build, parallelism, args);
  if (!job.isOk()) return job.status();
  return (*job)->wait();
}

// Polls `condition` until it holds or `timeout` passes; true when it held.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace weir::testing
