#include "taskmanager/task_executor.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <map>
#include <utility>

namespace weir::engine {

TaskExecutor::TaskExecutor(TaskExecutorOptions options) : options_(options) {}

TaskExecutor::~TaskExecutor() {
  cancel();
  joinAll();
}

Status TaskExecutor::deploy(const ProgramPtr& program, const JobGraph& graph,
                            const ExecutionPlan& plan) {
  if (!tasks_.empty()) return Status::internal("executor already runs a job");
  plan_ = plan;
  const JobArgs args(
      std::map<std::string, std::string>(graph.jobArgs.begin(), graph.jobArgs.end()));
  StreamTask::Options task_options;
  task_options.buffer_timeout = options_.buffer_timeout;

  std::map<std::pair<int, int>, StreamTask*> by_id;  // (chain, subtask) -> task
  std::vector<std::unique_ptr<StreamTask>> tasks;
  for (const TaskDeployment& d : plan.tasks) {
    tasks.push_back(std::make_unique<StreamTask>(d, args, task_options));
    by_id[{d.chain_id, d.subtask}] = tasks.back().get();
  }

  std::size_t budget = 0;
  for (auto& task : tasks) {
    const TaskDeployment& d = task->deployment();
    for (std::size_t i = 0; i < d.spec.outputs.size(); ++i) {
      std::vector<std::shared_ptr<ChannelSink>> targets;
      for (const ChannelRoute& r : d.routes[i]) {
        StreamTask* consumer = by_id.at({r.consumer_chain, r.consumer_subtask});
        targets.push_back(
            std::make_shared<LocalChannelSink>(consumer->inputGate(), r.consumer_channel));
      }
      const std::size_t max_buffers =
          targets.size() * static_cast<std::size_t>(options_.buffers_per_channel) +
          static_cast<std::size_t>(options_.extra_buffers_per_output);
      budget += max_buffers;
      auto pool = std::make_shared<BufferPool>(options_.segment_size, max_buffers);
      task->addOutput(std::make_unique<ResultPartition>(
          std::move(pool), std::move(targets), task->cancelFlag(), task->backpressureTimer()));
    }
  }
  if (budget > options_.total_buffers) {
    return Status::invalidArgument("insufficient network buffers: the job needs " +
                                   std::to_string(budget) + " buffers of " +
                                   std::to_string(options_.segment_size) + " bytes, " +
                                   std::to_string(options_.total_buffers) + " are configured");
  }
  for (auto& task : tasks) {
    Status s = task->init(program);
    if (!s.isOk()) return s;
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = static_cast<int>(tasks.size());
    job_result_ = Status::ok();
  }
  tasks_ = std::move(tasks);
  for (auto& task : tasks_) {
    task->on_done = [this](StreamTask& t) { onTaskDone(t); };
  }
  for (auto& task : tasks_) {
    StreamTask* t = task.get();
    threads_.emplace_back([t] {
      // Thread names are limited to 15 characters; enough to tell tasks apart in a debugger.
      std::string name = "weir-" + std::to_string(t->deployment().chain_id) + "-" +
                         std::to_string(t->deployment().subtask);
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      t->run();
    });
  }
  spdlog::info("deployed {} tasks of job '{}'", tasks_.size(), graph.name);
  return Status::ok();
}

void TaskExecutor::onTaskDone(StreamTask& task) {
  bool cancel_others = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const TaskState st = task.state();
    if (st == TaskState::kFailed && job_result_.isOk()) {
      job_result_ = task.result();
      cancel_others = true;
    }
    --running_;
  }
  if (cancel_others) {
    for (auto& t : tasks_)
      t->cancel();
  }
  done_cv_.notify_all();
}

Status TaskExecutor::wait() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return running_ == 0; });
  }
  joinAll();
  std::lock_guard<std::mutex> lock(mu_);
  if (!job_result_.isOk()) return job_result_;
  if (cancel_requested_) return Status::cancelled("job cancelled");
  return Status::ok();
}

bool TaskExecutor::waitFor(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return done_cv_.wait_for(lock, timeout, [&] { return running_ == 0; });
}

bool TaskExecutor::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_ == 0;
}

void TaskExecutor::cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ == 0) return;
    cancel_requested_ = true;
  }
  for (auto& t : tasks_)
    t->cancel();
}

void TaskExecutor::joinAll() {
  for (auto& th : threads_) {
    if (th.joinable()) th.join();
  }
  threads_.clear();
}

std::vector<TaskSnapshot> TaskExecutor::snapshot() const {
  std::vector<TaskSnapshot> out;
  for (const auto& t : tasks_) {
    TaskSnapshot s;
    s.name = t->deployment().task_name;
    s.chain_id = t->deployment().chain_id;
    s.subtask = t->deployment().subtask;
    s.state = t->state();
    const auto now = StateTimer::Clock::now();
    s.busy_ns = t->metrics().busy.read(now);
    s.idle_ns = t->metrics().idle.read(now);
    s.backpressured_ns = t->metrics().backpressured.read(now);
    for (int v : t->deployment().spec.vertex_ids) {
      TaskSnapshot::Vertex vs;
      vs.id = v;
      if (const VertexCounters* c = t->counters(v)) {
        vs.records_in = c->records_in.load(std::memory_order_relaxed);
        vs.records_out = c->records_out.load(std::memory_order_relaxed);
      }
      s.vertices.push_back(vs);
    }
    for (const auto& o : t->outputs()) {
      s.buffers_in_use += o->pool().inUse();
      s.peak_buffers_in_use += o->pool().peakInUse();
      s.max_buffers += o->pool().maxSegments();
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace weir::engine
