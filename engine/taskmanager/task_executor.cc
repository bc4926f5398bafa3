#include "taskmanager/task_executor.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <map>
#include <utility>

#include "common/ids.h"
#include "state/state_settings.h"

namespace weir::engine {

TaskExecutor::TaskExecutor(TaskExecutorOptions options) : options_(options) {}

TaskExecutor::~TaskExecutor() {
  cancel();
  joinAll();
  writer_.reset();  // finishes the checkpoint work that refers to the tasks
  // Channels on the data plane point into this executor's gates: forget them before the tasks go.
  if (network_ != nullptr) network_->releaseChannels(channel_prefix_);
  tasks_.clear();
  if (options_.memory != nullptr) options_.memory->release(reserved_segments_);
}

std::string channelKey(const std::string& job_id, int producer_chain, int producer_subtask,
                       int consumer_chain, int consumer_subtask, int consumer_channel) {
  return job_id + "/" + std::to_string(producer_chain) + "." + std::to_string(producer_subtask) +
         "/" + std::to_string(consumer_chain) + "." + std::to_string(consumer_subtask) + "." +
         std::to_string(consumer_channel);
}

Status TaskExecutor::deploy(const ProgramPtr& program, const JobGraph& graph,
                            const ExecutionPlan& plan, const RemotePlacement* placement) {
  if (!tasks_.empty()) return Status::internal("executor already runs a job");
  plan_ = plan;
  const JobArgs args(
      std::map<std::string, std::string>(graph.jobArgs.begin(), graph.jobArgs.end()));
  StreamTask::Options task_options;
  task_options.buffer_timeout = options_.buffer_timeout;
  task_options.auto_watermark_interval = options_.auto_watermark_interval;
  auto state =
      jobStateChoice(std::map<std::string, std::string>(graph.jobArgs.begin(), graph.jobArgs.end()),
                     options_.state_backend, options_.rocksdb_timers_in_kv_store);
  if (!state.isOk()) return state.status();
  task_options.state_backend = state->backend;
  task_options.timers_in_kv_store = state->timers_in_kv_store;
  // Without a placement the whole job runs here: any name unique in this process will do.
  task_options.job_id = placement != nullptr ? placement->job_id : "local-" + randomHexId(1);
  if (state->backend == StateBackendKind::kRocksDb) {
    task_options.rocksdb = options_.rocksdb_resources;
    if (task_options.rocksdb == nullptr) {
      own_rocksdb_ = std::make_unique<LazyRocksDbResources>(options_.rocksdb);
      task_options.rocksdb = own_rocksdb_.get();
    }
  }

  auto location = [&](int chain, int subtask) -> const std::string* {
    if (placement == nullptr) return nullptr;
    auto it = placement->locations.find({chain, subtask});
    return it == placement->locations.end() ? nullptr : &it->second;
  };
  auto is_local = [&](int chain, int subtask) {
    const std::string* where = location(chain, subtask);
    return placement == nullptr || (where != nullptr && *where == placement->local_address);
  };
  if (placement != nullptr) {
    // The placement names the subtasks here and every subtask they exchange data with; it need
    // not name the others (with parallelisms that differ, a TaskManager may have no channel to
    // some subtasks of the job).
    auto named = [&](int chain, int subtask) -> Status {
      if (location(chain, subtask) != nullptr) return Status::ok();
      return Status::invalidArgument("deployment names no TaskManager for subtask " +
                                     std::to_string(subtask) + " of chain " +
                                     std::to_string(chain));
    };
    for (const TaskDeployment& d : plan.tasks) {
      if (!is_local(d.chain_id, d.subtask)) continue;
      for (const InputChannelSource& in : d.inputs) {
        if (Status s = named(in.producer_chain, in.producer_subtask); !s.isOk()) return s;
      }
      for (const auto& routes : d.routes) {
        for (const ChannelRoute& r : routes) {
          if (Status s = named(r.consumer_chain, r.consumer_subtask); !s.isOk()) return s;
        }
      }
    }
  }

  std::map<std::pair<int, int>, StreamTask*> by_id;  // (chain, subtask) -> task
  std::vector<std::unique_ptr<StreamTask>> tasks;
  if (checkpointing_.enabled && !writer_) writer_ = std::make_unique<AsyncCheckpointWriter>();
  for (const TaskDeployment& d : plan.tasks) {
    if (!is_local(d.chain_id, d.subtask)) continue;
    tasks.push_back(std::make_unique<StreamTask>(d, args, task_options));
    StreamTask& task = *tasks.back();
    by_id[{d.chain_id, d.subtask}] = &task;
    if (auto it = restores_.find({d.chain_id, d.subtask}); it != restores_.end()) {
      task.setRestore(it->second);
    }
    if (!checkpointing_.enabled) continue;
    TaskCheckpointing c;
    c.enabled = true;
    c.periodic = checkpointing_.periodic;
    c.job_dir = checkpointing_.job_dir;
    c.incremental = checkpointing_.incremental;
    c.unaligned = checkpointing_.unaligned;
    c.aligned_timeout = checkpointing_.aligned_timeout;
    c.writer = writer_.get();
    c.acknowledge = checkpointing_.acknowledge;
    const int chain = d.chain_id;
    const int subtask = d.subtask;
    if (checkpointing_.decline) {
      c.decline = [cb = checkpointing_.decline, chain, subtask](std::int64_t id,
                                                               const std::string& reason) {
        cb(id, chain, subtask, reason);
      };
    }
    if (checkpointing_.end_of_data) {
      c.end_of_data = [cb = checkpointing_.end_of_data, chain, subtask] { cb(chain, subtask); };
    }
    task.setCheckpointing(std::move(c));
  }
  if (tasks.empty()) return Status::invalidArgument("no subtask of the job is placed here");

  // Memory first: output pools, and receive buffers of remote input channels.
  const std::size_t per_channel = static_cast<std::size_t>(options_.buffers_per_channel);
  std::size_t budget = 0;
  for (auto& task : tasks) {
    const TaskDeployment& d = task->deployment();
    for (const auto& routes : d.routes) {
      budget += routes.size() * per_channel +
                static_cast<std::size_t>(options_.extra_buffers_per_output) +
                static_cast<std::size_t>(options_.overdraft_buffers_per_output);
    }
    for (const InputChannelSource& in : d.inputs) {
      if (!is_local(in.producer_chain, in.producer_subtask)) budget += per_channel;
    }
  }
  if (options_.memory != nullptr) {
    if (!options_.memory->reserve(budget)) {
      return Status::invalidArgument("insufficient network memory: the job's subtasks here need " +
                                     std::to_string(budget) + " buffers of " +
                                     std::to_string(options_.segment_size) + " bytes, " +
                                     std::to_string(options_.memory->available()) + " of " +
                                     std::to_string(options_.memory->total()) + " are free");
    }
    reserved_segments_ = budget;
  } else if (budget > options_.total_buffers) {
    return Status::invalidArgument("insufficient network buffers: the job needs " +
                                   std::to_string(budget) + " buffers of " +
                                   std::to_string(options_.segment_size) + " bytes, " +
                                   std::to_string(options_.total_buffers) + " are configured");
  }

  if (placement != nullptr) {
    network_ = placement->network;
    channel_prefix_ = placement->job_id + "/";
  }
  for (auto& task : tasks) {
    const TaskDeployment& d = task->deployment();
    StreamTask* t = task.get();
    auto on_failure = [t](const Status& why) { t->fail(why); };
    for (std::size_t i = 0; i < d.spec.outputs.size(); ++i) {
      std::vector<std::shared_ptr<ChannelSink>> targets;
      for (const ChannelRoute& r : d.routes[i]) {
        if (is_local(r.consumer_chain, r.consumer_subtask)) {
          StreamTask* consumer = by_id.at({r.consumer_chain, r.consumer_subtask});
          targets.push_back(
              std::make_shared<LocalChannelSink>(consumer->inputGate(), r.consumer_channel));
        } else {
          auto channel = network_->createOutputChannel(
              channelKey(placement->job_id, d.chain_id, d.subtask, r.consumer_chain,
                         r.consumer_subtask, r.consumer_channel),
              *location(r.consumer_chain, r.consumer_subtask), on_failure);
          remote_outputs_.push_back(channel);
          targets.push_back(std::move(channel));
        }
      }
      const std::size_t max_buffers = targets.size() * per_channel +
                                      static_cast<std::size_t>(options_.extra_buffers_per_output);
      auto pool = std::make_shared<BufferPool>(
          options_.segment_size, max_buffers,
          static_cast<std::size_t>(options_.overdraft_buffers_per_output));
      task->addOutput(std::make_unique<ResultPartition>(
          std::move(pool), std::move(targets), task->cancelFlag(), task->backpressureTimer()));
    }
  }
  for (auto& task : tasks) {
    Status s = task->init(program);
    if (!s.isOk()) {
      if (network_ != nullptr) network_->releaseChannels(channel_prefix_);
      return s;
    }
  }
  // Remote inputs last: once requested, data may arrive at the gates.
  for (auto& task : tasks) {
    const TaskDeployment& d = task->deployment();
    StreamTask* t = task.get();
    for (std::size_t ch = 0; ch < d.inputs.size(); ++ch) {
      const InputChannelSource& in = d.inputs[ch];
      if (is_local(in.producer_chain, in.producer_subtask)) continue;
      const int channel = static_cast<int>(ch);
      network_->openInputChannel(channelKey(placement->job_id, in.producer_chain,
                                            in.producer_subtask, d.chain_id, d.subtask, channel),
                                 *location(in.producer_chain, in.producer_subtask), t->inputGate(),
                                 channel, [t](const Status& why) { t->fail(why); });
    }
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

void TaskExecutor::setCheckpointing(ExecutorCheckpointing checkpointing) {
  checkpointing_ = std::move(checkpointing);
}

void TaskExecutor::setRestores(std::map<std::pair<int, int>, thrift::TaskRestore> restores) {
  restores_ = std::move(restores);
}

Status TaskExecutor::triggerCheckpoint(const CheckpointBarrier& barrier,
                                       const std::vector<std::pair<int, int>>& subtasks) {
  if (!checkpointing_.enabled) return Status::invalidArgument("the job takes no checkpoints");
  auto shared = std::make_shared<const CheckpointBarrier>(barrier);
  std::vector<StreamTask*> targets;
  for (const auto& [chain, subtask] : subtasks) {
    StreamTask* found = nullptr;
    for (auto& t : tasks_) {
      if (t->deployment().chain_id == chain && t->deployment().subtask == subtask) found = t.get();
    }
    if (found == nullptr) {
      return Status::notFound("subtask " + std::to_string(subtask) + " of chain " +
                              std::to_string(chain) + " does not run here");
    }
    targets.push_back(found);
  }
  for (StreamTask* t : targets)
    t->triggerCheckpoint(shared);
  return Status::ok();
}

void TaskExecutor::notifyCheckpoint(std::int64_t checkpoint_id, bool completed) {
  for (auto& t : tasks_)
    t->notifyCheckpoint(checkpoint_id, completed);
}

void TaskExecutor::onTaskDone(StreamTask& task) {
  if (on_task_done) on_task_done(task);
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

bool TaskExecutor::drained() const {
  for (const auto& c : remote_outputs_) {
    if (c->queued() > 0) return false;
  }
  return true;
}

bool TaskExecutor::succeeded() const {
  if (!finished()) return false;
  for (const auto& t : tasks_) {
    if (t->state() != TaskState::kFinished) return false;
  }
  return true;
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
  out.reserve(tasks_.size());
  for (const auto& t : tasks_)
    out.push_back(snapshotOf(*t));
  return out;
}

TaskSnapshot TaskExecutor::snapshotOf(const StreamTask& t) {
  TaskSnapshot s;
  s.name = t.deployment().task_name;
  s.chain_id = t.deployment().chain_id;
  s.subtask = t.deployment().subtask;
  s.state = t.state();
  if (s.state == TaskState::kFailed) s.failure = t.result().message();
  const auto now = StateTimer::Clock::now();
  s.busy_ns = t.metrics().busy.read(now);
  s.idle_ns = t.metrics().idle.read(now);
  s.backpressured_ns = t.metrics().backpressured.read(now);
  for (int v : t.deployment().spec.vertex_ids) {
    TaskSnapshot::Vertex vs;
    vs.id = v;
    if (const VertexCounters* c = t.counters(v)) {
      vs.records_in = c->records_in.load(std::memory_order_relaxed);
      vs.records_out = c->records_out.load(std::memory_order_relaxed);
      vs.late_records = c->late_records.load(std::memory_order_relaxed);
      vs.watermark = c->watermark.load(std::memory_order_relaxed);
    }
    s.vertices.push_back(vs);
  }
  for (const auto& o : t.outputs()) {
    s.buffers_in_use += o->pool().inUse();
    s.peak_buffers_in_use += o->pool().peakInUse();
    s.max_buffers += o->pool().maxSegments();
    s.max_overdraft += o->pool().maxOverdraft();
  }
  return s;
}

}  // namespace weir::engine
