#include "taskmanager/task_manager.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <set>

#include "common/ids.h"
#include "runtime/execution_plan.h"
#include "runtime/job_graph.h"
#include "state/state_settings.h"

namespace weir::engine {

namespace {

// Unique per process start: the JobManager tells a restarted TaskManager from the old one.
std::string newResourceId() {
  return std::to_string(getpid()) + "-" + randomHexId(1);
}

class ControlHandler final : public thrift::TaskManagerServiceIf {
 public:
  explicit ControlHandler(TaskManager& tm) : tm_(tm) {}
  void heartbeat(const std::string& job_manager_id) override {
    Status s = tm_.heartbeatFromJobManager(job_manager_id);
    if (!s.isOk()) throw toWeirError(s);
  }
  void deployTasks(const std::string& job_manager_id,
                   const thrift::JobDeployment& deployment) override {
    Status s = tm_.deployTasks(job_manager_id, deployment);
    if (!s.isOk()) throw toWeirError(s);
  }
  void cancelJob(const std::string& job_manager_id, const std::string& job_id) override {
    Status s = tm_.cancelJob(job_manager_id, job_id);
    if (!s.isOk()) throw toWeirError(s);
  }
  void triggerCheckpoint(const std::string& job_manager_id, const std::string& job_id,
                         const int32_t attempt, const thrift::CheckpointTrigger& trigger,
                         const std::vector<thrift::SubtaskId>& subtasks) override {
    Status s = tm_.triggerCheckpoint(job_manager_id, job_id, attempt, trigger, subtasks);
    if (!s.isOk()) throw toWeirError(s);
  }
  void notifyCheckpointComplete(const std::string& job_manager_id, const std::string& job_id,
                                const int32_t attempt, const int64_t checkpoint_id) override {
    Status s = tm_.notifyCheckpoint(job_manager_id, job_id, attempt, checkpoint_id, true);
    if (!s.isOk()) throw toWeirError(s);
  }
  void notifyCheckpointAborted(const std::string& job_manager_id, const std::string& job_id,
                               const int32_t attempt, const int64_t checkpoint_id) override {
    Status s = tm_.notifyCheckpoint(job_manager_id, job_id, attempt, checkpoint_id, false);
    if (!s.isOk()) throw toWeirError(s);
  }

 private:
  TaskManager& tm_;
};

thrift::ExecutionState::type toExecutionState(TaskState s) {
  switch (s) {
    case TaskState::kCreated:
      return thrift::ExecutionState::DEPLOYING;
    case TaskState::kRunning:
      return thrift::ExecutionState::RUNNING;
    case TaskState::kFinished:
      return thrift::ExecutionState::FINISHED;
    case TaskState::kCanceled:
      return thrift::ExecutionState::CANCELED;
    case TaskState::kFailed:
      return thrift::ExecutionState::FAILED;
  }
  return thrift::ExecutionState::FAILED;
}

thrift::TaskStatus toTaskStatus(const std::string& job_id, int attempt, const TaskSnapshot& snap) {
  thrift::TaskStatus st;
  st.jobId = job_id;
  st.__set_attempt(attempt);
  st.chainId = snap.chain_id;
  st.subtask = snap.subtask;
  st.state = toExecutionState(snap.state);
  if (!snap.failure.empty()) st.__set_failure(snap.failure);
  st.busyMs = static_cast<std::int64_t>(snap.busy_ns / 1000000);
  st.idleMs = static_cast<std::int64_t>(snap.idle_ns / 1000000);
  st.backpressuredMs = static_cast<std::int64_t>(snap.backpressured_ns / 1000000);
  for (const auto& v : snap.vertices) {
    thrift::VertexRecords r;
    r.vertexId = v.id;
    r.recordsIn = static_cast<std::int64_t>(v.records_in);
    r.recordsOut = static_cast<std::int64_t>(v.records_out);
    r.__set_lateRecords(static_cast<std::int64_t>(v.late_records));
    r.__set_watermark(v.watermark);
    st.vertices.push_back(r);
  }
  return st;
}

std::filesystem::path defaultCacheDir(const std::string& resource_id) {
  std::error_code ec;
  auto base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  return base / ("weir-taskmanager-" + resource_id);
}

}  // namespace

TaskManager::TaskManager(Configuration config)
    : config_(std::move(config)),
      resource_id_(newResourceId()),
      retry_interval_(config_.getDuration("taskmanager.registration.retry-interval")),
      job_manager_(config_.getString("jobmanager.rpc.address"),
                   static_cast<int>(config_.getInt("jobmanager.rpc.port")),
                   config_.getDuration("rpc.timeout")),
      reporter_client_(config_.getString("jobmanager.rpc.address"),
                       static_cast<int>(config_.getInt("jobmanager.rpc.port")),
                       config_.getDuration("rpc.timeout")) {
  executor_options_.segment_size = config_.getMemorySize("taskmanager.memory.segment-size");
  executor_options_.buffers_per_channel =
      static_cast<int>(config_.getInt("taskmanager.network.buffers-per-channel"));
  executor_options_.extra_buffers_per_output =
      static_cast<int>(config_.getInt("taskmanager.network.extra-buffers-per-output"));
  executor_options_.overdraft_buffers_per_output =
      static_cast<int>(config_.getInt("taskmanager.network.overdraft-buffers-per-output"));
  executor_options_.buffer_timeout = config_.getDuration("execution.buffer-timeout");
  const StateSettings state = stateSettingsFromConfig(config_);
  executor_options_.auto_watermark_interval =
      std::chrono::milliseconds(state.auto_watermark_interval_ms);
  executor_options_.state_backend = state.backend;
  executor_options_.rocksdb_timers_in_kv_store = state.rocksdb_timers_in_kv_store;
  executor_options_.rocksdb = state.rocksdb;
  rocksdb_ = std::make_unique<LazyRocksDbResources>(state.rocksdb);
  executor_options_.rocksdb_resources = rocksdb_.get();
  memory_ = std::make_unique<NetworkMemory>(
      config_.getMemorySize("taskmanager.memory.network.max") / executor_options_.segment_size);
  executor_options_.memory = memory_.get();
}

TaskManager::~TaskManager() {
  stop();
}

int TaskManager::rpcPort() const {
  return rpc_server_ ? rpc_server_->port() : 0;
}

int TaskManager::dataPort() const {
  if (!network_) return 0;
  std::string host;
  int port = 0;
  return parseHostPort(network_->address(), host, port).isOk() ? port : 0;
}

std::size_t TaskManager::jobCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

std::string TaskManager::taskManagerId() const {
  std::lock_guard<std::mutex> lock(mu_);
  return task_manager_id_;
}

bool TaskManager::registered() const {
  return !taskManagerId().empty();
}

Status TaskManager::start() {
  const std::string cache_dir = config_.getString("taskmanager.plugin-cache.dir");
  plugins_ = std::make_unique<PluginCache>(cache_dir.empty() ? defaultCacheDir(resource_id_)
                                                             : std::filesystem::path(cache_dir));
  Status cache = plugins_->open();
  if (!cache.isOk()) return cache;

  NetworkOptions net;
  net.host = config_.getString("taskmanager.host");
  net.port = static_cast<int>(config_.getInt("taskmanager.data.port"));
  net.segment_size = executor_options_.segment_size;
  net.buffers_per_channel = executor_options_.buffers_per_channel;
  network_ = std::make_unique<NetworkEnvironment>(net);
  Status data = network_->start();
  if (!data.isOk()) return data.withContext("data plane");

  rpc_server_ = std::make_unique<RpcServer>("TaskManager control service",
                                            std::make_shared<thrift::TaskManagerServiceProcessor>(
                                                std::make_shared<ControlHandler>(*this)));
  Status s = rpc_server_->start(config_.getString("taskmanager.host"),
                                static_cast<int>(config_.getInt("taskmanager.rpc.port")));
  if (!s.isOk()) return s;
  connection_ = std::thread([this] { connectionLoop(); });
  reporter_ = std::thread([this] { reporterLoop(); });
  return Status::ok();
}

void TaskManager::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  reporter_wake_.notify_all();
  if (connection_.joinable()) connection_.join();
  if (reporter_.joinable()) reporter_.join();
  if (rpc_server_) rpc_server_->stop();
  cancelAllJobs();
  std::map<JobKey, std::shared_ptr<HostedJob>> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs.swap(jobs_);
  }
  for (auto& [id, job] : jobs) {
    if (job->preparer.joinable()) job->preparer.join();
  }
  jobs.clear();  // joins the task threads
  if (network_) network_->stop();
  if (config_.getString("taskmanager.plugin-cache.dir").empty()) {
    std::error_code ec;
    std::filesystem::remove_all(defaultCacheDir(resource_id_), ec);
  }
}

Status TaskManager::heartbeatFromJobManager(const std::string& job_manager_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (task_manager_id_.empty() || job_manager_id != job_manager_id_) {
    return Status::notFound("this TaskManager is not registered with JobManager " + job_manager_id);
  }
  last_jm_heartbeat_ = Clock::now();
  return Status::ok();
}

void TaskManager::jobManagerLost(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    spdlog::warn("JobManager {} at {} lost: {}; registering again", job_manager_id_,
                 job_manager_.address(), reason);
    task_manager_id_.clear();
    job_manager_id_.clear();
    reports_.clear();  // the next JobManager does not know these jobs
    calls_.clear();
  }
  job_manager_.close();
  reporter_client_.close();
  cancelAllJobs();
}

void TaskManager::cancelAllJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, job] : jobs_) {
    job->cancelled.store(true);
    if (job->executor) job->executor->cancel();
  }
}

Status TaskManager::deployTasks(const std::string& job_manager_id,
                                const thrift::JobDeployment& deployment) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return Status::failed("this TaskManager is shutting down");
  if (task_manager_id_.empty() || job_manager_id != job_manager_id_) {
    return Status::notFound("this TaskManager is not registered with JobManager " + job_manager_id);
  }
  if (deployment.tasks.empty()) return Status::invalidArgument("a deployment without subtasks");
  const JobKey key{deployment.jobId, deployment.attempt};
  if (jobs_.count(key) != 0) {
    return Status::invalidArgument("job " + deployment.jobId + " (attempt " +
                                   std::to_string(deployment.attempt) + ") already runs here");
  }
  auto job = std::make_shared<HostedJob>();
  job->deployment = deployment;
  jobs_.emplace(key, job);
  for (const auto& t : deployment.tasks) {
    thrift::TaskStatus st;
    st.jobId = deployment.jobId;
    st.__set_attempt(deployment.attempt);
    st.chainId = t.chainId;
    st.subtask = t.subtask;
    st.state = thrift::ExecutionState::DEPLOYING;
    reports_.push_back(std::move(st));
  }
  reporter_wake_.notify_all();
  job->preparer = std::thread([this, job] { prepare(job); });
  spdlog::info("deploying {} subtasks of job {} ('{}')", deployment.tasks.size(), deployment.jobId,
               deployment.graph.name);
  return Status::ok();
}

Status TaskManager::cancelJob(const std::string& job_manager_id, const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (task_manager_id_.empty() || job_manager_id != job_manager_id_) {
    return Status::notFound("this TaskManager is not registered with JobManager " + job_manager_id);
  }
  for (auto& [key, job] : jobs_) {
    if (key.first != job_id) continue;
    spdlog::info("cancelling the subtasks of job {} (attempt {})", job_id, key.second);
    job->cancelled.store(true);
    if (job->executor) job->executor->cancel();
  }
  return Status::ok();
}

void TaskManager::prepare(const std::shared_ptr<HostedJob>& job) {
  std::unique_ptr<TaskExecutor> executor;
  Status s = startJob(*job, executor);
  const std::string& job_id = job->deployment.jobId;
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.isOk()) {
    job->failed_to_deploy = true;
    const bool cancelled = s.code() == Status::Code::kCancelled;
    if (!cancelled) spdlog::error("job {}: deployment failed: {}", job_id, s.message());
    for (const auto& t : job->deployment.tasks) {
      thrift::TaskStatus st;
      st.jobId = job_id;
      st.__set_attempt(job->deployment.attempt);
      st.chainId = t.chainId;
      st.subtask = t.subtask;
      st.state = cancelled ? thrift::ExecutionState::CANCELED : thrift::ExecutionState::FAILED;
      if (!cancelled) st.__set_failure(s.message());
      reports_.push_back(std::move(st));
    }
    reporter_wake_.notify_all();
    return;
  }
  for (const TaskSnapshot& snap : executor->snapshot()) {
    thrift::TaskStatus st = toTaskStatus(job_id, job->deployment.attempt, snap);
    if (st.state == thrift::ExecutionState::DEPLOYING) st.state = thrift::ExecutionState::RUNNING;
    reports_.push_back(std::move(st));
  }
  job->executor = std::move(executor);
  if (job->cancelled.load()) job->executor->cancel();
  reporter_wake_.notify_all();
}

Status TaskManager::startJob(HostedJob& job, std::unique_ptr<TaskExecutor>& executor) {
  const thrift::JobDeployment& d = job.deployment;
  if (job.cancelled.load()) return Status::cancelled();
  auto path =
      plugins_->get(d.pluginHash, d.pluginSize,
                    [this, &d](std::int64_t offset, std::int32_t length) -> Result<std::string> {
                      std::string chunk;
                      Status s = reporter_client_.call([&](thrift::JobManagerServiceClient& c) {
                        c.fetchBlob(chunk, d.pluginHash, offset, length);
                      });
                      if (!s.isOk()) return s;
                      return chunk;
                    });
  if (!path.isOk()) return path.status().withContext("fetching plugin " + d.pluginHash);
  if (job.cancelled.load()) return Status::cancelled();
  auto plugin = LoadedPlugin::load(path->string());
  if (!plugin.isOk()) return plugin.status();
  job.plugin = *plugin;
  const JobArgs args(
      std::map<std::string, std::string>(d.graph.jobArgs.begin(), d.graph.jobArgs.end()));
  auto program = job.plugin->createProgram(args);
  if (!program.isOk()) return program.status();
  job.program = *program;
  Status s = validateJobGraph(d.graph);
  if (!s.isOk()) return s;
  s = checkSameGraph(d.graph, job.program->graph());
  if (!s.isOk()) return s;
  const ExecutionPlan plan = planExecution(d.graph);

  RemotePlacement placement;
  // Channels and RocksDB stores of a restarted job must not meet those of its failed attempt.
  placement.job_id = d.jobId + "#" + std::to_string(d.attempt);
  placement.network = network_.get();
  placement.local_address = network_->address();
  auto place = [&](int chain, int subtask, const std::string& address) -> Status {
    auto [it, inserted] = placement.locations.emplace(std::make_pair(chain, subtask), address);
    if (!inserted && it->second != address) {
      return Status::invalidArgument("deployment places subtask " + std::to_string(subtask) +
                                     " of chain " + std::to_string(chain) + " at both " +
                                     it->second + " and " + address);
    }
    return Status::ok();
  };
  for (const auto& t : d.tasks) {
    const TaskDeployment* planned = nullptr;
    for (const auto& p : plan.tasks) {
      if (p.chain_id == t.chainId && p.subtask == t.subtask) planned = &p;
    }
    const std::string what =
        "subtask " + std::to_string(t.subtask) + " of chain " + std::to_string(t.chainId);
    if (planned == nullptr) return Status::invalidArgument("the job has no " + what);
    std::vector<std::string> uids;
    for (int v : planned->spec.vertex_ids)
      uids.push_back(d.graph.vertices[static_cast<std::size_t>(v)].uid);
    if (uids != t.vertexUids) {
      return Status::invalidArgument("the vertices of " + what +
                                     " differ between the JobManager's plan and this one");
    }
    if (t.inputAddresses.size() != planned->inputs.size() ||
        t.outputAddresses.size() != planned->routes.size()) {
      return Status::invalidArgument("the channels of " + what + " do not match the plan");
    }
    s = place(t.chainId, t.subtask, placement.local_address);
    if (!s.isOk()) return s;
    for (std::size_t ch = 0; ch < planned->inputs.size(); ++ch) {
      const auto& in = planned->inputs[ch];
      s = place(in.producer_chain, in.producer_subtask, t.inputAddresses[ch]);
      if (!s.isOk()) return s;
    }
    for (std::size_t o = 0; o < planned->routes.size(); ++o) {
      if (t.outputAddresses[o].size() != planned->routes[o].size()) {
        return Status::invalidArgument("the channels of " + what + " do not match the plan");
      }
      for (std::size_t ch = 0; ch < planned->routes[o].size(); ++ch) {
        const auto& r = planned->routes[o][ch];
        s = place(r.consumer_chain, r.consumer_subtask, t.outputAddresses[o][ch]);
        if (!s.isOk()) return s;
      }
    }
  }
  std::set<std::pair<int, int>> deployed;
  for (const auto& t : d.tasks)
    deployed.emplace(t.chainId, t.subtask);
  for (const auto& [where, address] : placement.locations) {
    if (address == placement.local_address && deployed.count(where) == 0) {
      return Status::invalidArgument("subtask " + std::to_string(where.second) + " of chain " +
                                     std::to_string(where.first) +
                                     " is said to run here but was not deployed here");
    }
  }

  if (job.cancelled.load()) return Status::cancelled();
  executor = std::make_unique<TaskExecutor>(executor_options_);
  const std::string job_id = d.jobId;
  const int attempt = d.attempt;
  executor->on_task_done = [this, job_id, attempt](const StreamTask& task) {
    std::fflush(stdout);  // what print sinks wrote reaches the TaskManager's log now
    report(toTaskStatus(job_id, attempt, TaskExecutor::snapshotOf(task)));
  };
  if (d.__isset.checkpointing) {
    ExecutorCheckpointing c;
    c.enabled = true;
    c.periodic = d.checkpointing.periodic;
    c.job_dir = d.checkpointing.jobDir;
    c.incremental = d.checkpointing.incremental;
    c.unaligned = d.checkpointing.unaligned;
    c.aligned_timeout = std::chrono::milliseconds(d.checkpointing.alignedTimeoutMs);
    c.acknowledge = [this, job_id, attempt](thrift::CheckpointAck ack) {
      ack.jobId = job_id;
      ack.attempt = attempt;
      callJobManager([ack = std::move(ack)](thrift::JobManagerServiceClient& c,
                                            const std::string& tm_id) {
        c.acknowledgeCheckpoint(tm_id, ack);
      });
    };
    c.decline = [this, job_id, attempt](std::int64_t id, int chain, int subtask,
                                         const std::string& reason) {
      spdlog::warn("job {}: subtask {} of chain {} declines checkpoint {}: {}", job_id, subtask,
                   chain, id, reason);
      callJobManager([=](thrift::JobManagerServiceClient& c, const std::string& tm_id) {
        c.declineCheckpoint(tm_id, job_id, attempt, id, chain, subtask, reason);
      });
    };
    TaskExecutor* exec = executor.get();
    c.end_of_data = [this, job_id, attempt, exec](int chain, int subtask) {
      for (const TaskSnapshot& snap : exec->snapshot()) {
        if (snap.chain_id != chain || snap.subtask != subtask) continue;
        thrift::TaskStatus st = toTaskStatus(job_id, attempt, snap);
        st.__set_endOfData(true);
        report(std::move(st));
      }
    };
    executor->setCheckpointing(std::move(c));
  }
  std::map<std::pair<int, int>, thrift::TaskRestore> restores;
  for (const auto& t : d.tasks) {
    if (t.__isset.restore) restores[{t.chainId, t.subtask}] = t.restore;
  }
  executor->setRestores(std::move(restores));
  s = executor->deploy(job.program, d.graph, plan, &placement);
  if (!s.isOk()) executor.reset();
  return s;
}

void TaskManager::report(thrift::TaskStatus status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reports_.push_back(std::move(status));
  }
  reporter_wake_.notify_all();
}

std::vector<thrift::TaskStatus> TaskManager::runningStatuses() const {
  std::vector<thrift::TaskStatus> out;
  for (const auto& [key, job] : jobs_) {
    if (!job->executor) continue;
    for (const TaskSnapshot& snap : job->executor->snapshot()) {
      out.push_back(toTaskStatus(key.first, key.second, snap));
    }
  }
  return out;
}

void TaskManager::reporterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    reporter_wake_.wait_for(lock, std::chrono::milliseconds(200),
                            [&] { return stopping_ || !reports_.empty() || !calls_.empty(); });
    if (stopping_) break;
    std::vector<thrift::TaskStatus> batch(reports_.begin(), reports_.end());
    reports_.clear();
    std::deque<JobManagerCall> calls;
    calls.swap(calls_);
    const std::string tm_id = task_manager_id_;
    // Jobs whose subtasks have all ended leave once their last reports are out.
    std::vector<std::shared_ptr<HostedJob>> ended;
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      const auto& job = it->second;
      // A job that finished here leaves only once its last buffers (and ends of input) have
      // been sent to consumers on other TaskManagers.
      const bool done =
          job->executor && job->executor->finished() &&
          (!job->executor->succeeded() || job->executor->drained() || job->cancelled.load());
      if (job->failed_to_deploy || done) {
        ended.push_back(job);
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
    lock.unlock();
    if (!batch.empty() && !tm_id.empty()) {
      Status s = reporter_client_.call(
          [&](thrift::JobManagerServiceClient& c) { c.updateTaskStatus(tm_id, batch); });
      if (!s.isOk()) spdlog::warn("cannot report task states to the JobManager: {}", s.message());
    }
    // After the states: an end of data is known before the acknowledgements that follow it.
    for (auto& call : calls) {
      if (tm_id.empty()) break;
      Status s = reporter_client_.call([&](thrift::JobManagerServiceClient& c) { call(c, tm_id); });
      if (!s.isOk()) spdlog::warn("cannot send a checkpoint message to the JobManager: {}", s.message());
    }
    for (auto& job : ended) {
      if (job->preparer.joinable()) job->preparer.join();
      spdlog::info("job {}: all subtasks here have ended", job->deployment.jobId);
    }
    ended.clear();
    lock.lock();
  }
}

void TaskManager::connectionLoop() {
  thrift::TaskManagerRegistration registration;
  registration.resourceId = resource_id_;
  registration.host = config_.getString("taskmanager.host");
  registration.rpcPort = rpcPort();
  registration.numSlots =
      static_cast<std::int32_t>(config_.getInt("taskmanager.numberOfTaskSlots"));
  registration.dataPort = dataPort();
  std::string last_failure;

  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (task_manager_id_.empty()) {
      lock.unlock();
      thrift::RegistrationResponse response;
      Status s = job_manager_.call([&](thrift::JobManagerServiceClient& c) {
        c.registerTaskManager(response, registration);
      });
      lock.lock();
      if (s.isOk()) {
        task_manager_id_ = response.taskManagerId;
        job_manager_id_ = response.jobManagerId;
        heartbeat_interval_ = std::chrono::milliseconds(response.heartbeatIntervalMs);
        heartbeat_timeout_ = std::chrono::milliseconds(response.heartbeatTimeoutMs);
        last_response_ = last_jm_heartbeat_ = Clock::now();
        last_failure.clear();
        spdlog::info("registered with JobManager {} at {} as {}", job_manager_id_,
                     job_manager_.address(), task_manager_id_);
        continue;
      }
      if (s.message() != last_failure) {
        spdlog::warn("cannot register with the JobManager at {}: {} (retrying every {} ms)",
                     job_manager_.address(), s.message(), retry_interval_.count());
        last_failure = s.message();
      }
      wake_.wait_for(lock, retry_interval_, [&] { return stopping_; });
      continue;
    }

    thrift::TaskManagerHeartbeat heartbeat;
    heartbeat.taskManagerId = task_manager_id_;
    heartbeat.jobManagerId = job_manager_id_;
    heartbeat.__set_tasks(runningStatuses());
    const auto interval = heartbeat_interval_;
    const auto timeout = heartbeat_timeout_;
    lock.unlock();
    thrift::HeartbeatResponse response;
    Status s = job_manager_.call(
        [&](thrift::JobManagerServiceClient& c) { c.heartbeat(response, heartbeat); });
    const auto now = Clock::now();
    std::string lost;
    lock.lock();
    if (s.isOk() && response.known) {
      last_response_ = now;
    } else if (s.isOk()) {
      lost = "it no longer knows this TaskManager";
    } else if (s.message().find("timed out") == std::string::npos) {
      lost = "connection lost: " + s.message();  // refused or reset: the process is gone
    } else if (now - last_response_ > timeout) {
      lost = "no answer for " + std::to_string(timeout.count()) + " ms: " + s.message();
    }
    if (lost.empty() && now - last_jm_heartbeat_ > timeout) {
      lost = "no heartbeat from it for " + std::to_string(timeout.count()) + " ms";
    }
    if (!lost.empty()) {
      lock.unlock();
      jobManagerLost(lost);
      lock.lock();
      continue;
    }
    wake_.wait_for(lock, interval, [&] { return stopping_; });
  }
}

}  // namespace weir::engine

namespace weir::engine {

void TaskManager::callJobManager(JobManagerCall call) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(std::move(call));
  }
  reporter_wake_.notify_all();
}

Result<std::shared_ptr<TaskManager::HostedJob>> TaskManager::runningJob(
    const std::string& job_manager_id, const std::string& job_id, int attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  if (task_manager_id_.empty() || job_manager_id != job_manager_id_) {
    return Status::notFound("this TaskManager is not registered with JobManager " + job_manager_id);
  }
  auto it = jobs_.find(JobKey{job_id, attempt});
  if (it == jobs_.end() || !it->second->executor) {
    return Status::notFound("job " + job_id + " (attempt " + std::to_string(attempt) +
                            ") does not run here");
  }
  return it->second;
}

Status TaskManager::triggerCheckpoint(const std::string& job_manager_id, const std::string& job_id,
                                      int attempt, const thrift::CheckpointTrigger& trigger,
                                      const std::vector<thrift::SubtaskId>& subtasks) {
  auto job = runningJob(job_manager_id, job_id, attempt);
  if (!job.isOk()) return job.status();
  CheckpointBarrier barrier;
  barrier.id = trigger.checkpointId;
  barrier.timestamp_ms = trigger.timestampMs;
  barrier.savepoint = trigger.savepoint;
  barrier.stop = trigger.stop;
  barrier.drain = trigger.drain;
  barrier.target_dir = trigger.targetDir;
  std::vector<std::pair<int, int>> targets;
  for (const auto& s : subtasks)
    targets.emplace_back(s.chainId, s.subtask);
  return (*job)->executor->triggerCheckpoint(barrier, targets);
}

Status TaskManager::notifyCheckpoint(const std::string& job_manager_id, const std::string& job_id,
                                     int attempt, std::int64_t checkpoint_id, bool completed) {
  auto job = runningJob(job_manager_id, job_id, attempt);
  if (!job.isOk()) return Status::ok();  // its tasks have ended here
  (*job)->executor->notifyCheckpoint(checkpoint_id, completed);
  return Status::ok();
}

}  // namespace weir::engine
