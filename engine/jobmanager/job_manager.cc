#include "jobmanager/job_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "common/ids.h"
#include "weir/sdk_fingerprint.h"

namespace weir::engine {

namespace {

// Control service for TaskManagers.
class ControlHandler final : public thrift::JobManagerServiceIf {
 public:
  explicit ControlHandler(JobManager& jm) : jm_(jm) {}
  void registerTaskManager(thrift::RegistrationResponse& out,
                           const thrift::TaskManagerRegistration& registration) override {
    auto r = jm_.registerTaskManager(registration);
    if (!r.isOk()) throw toWeirError(r.status());
    out = std::move(*r);
  }
  void heartbeat(thrift::HeartbeatResponse& out,
                 const thrift::TaskManagerHeartbeat& heartbeat) override {
    out = jm_.heartbeatFrom(heartbeat);
  }
  void updateTaskStatus(const std::string& task_manager_id,
                        const std::vector<thrift::TaskStatus>& statuses) override {
    jm_.updateTaskStatus(task_manager_id, statuses);
  }
  void acknowledgeCheckpoint(const std::string& task_manager_id,
                             const thrift::CheckpointAck& ack) override {
    jm_.acknowledgeCheckpoint(task_manager_id, ack);
  }
  void declineCheckpoint(const std::string& task_manager_id, const std::string& job_id,
                         const int32_t attempt, const int64_t checkpoint_id, const int32_t chain_id,
                         const int32_t subtask, const std::string& reason) override {
    jm_.declineCheckpoint(task_manager_id, job_id, attempt, checkpoint_id, chain_id, subtask,
                          reason);
  }
  void fetchBlob(std::string& out, const std::string& sha256, const int64_t offset,
                 const int32_t length) override {
    auto r = jm_.fetchBlob(sha256, offset, length);
    if (!r.isOk()) throw toWeirError(r.status());
    out = std::move(*r);
  }

 private:
  JobManager& jm_;
};

template <class T>
T unwrap(Result<T> r) {
  if (!r.isOk()) throw toWeirError(r.status());
  return std::move(*r);
}

void check(const Status& s) {
  if (!s.isOk()) throw toWeirError(s);
}

class AdminHandler final : public thrift::AdminServiceIf {
 public:
  explicit AdminHandler(JobManager& jm) : jm_(jm) {}
  void clusterInfo(thrift::ClusterInfo& out) override { out = jm_.clusterInfo(); }
  void listTaskManagers(std::vector<thrift::TaskManagerInfo>& out) override {
    out = jm_.taskManagers();
  }
  void beginUpload(std::string& out, const int64_t size) override {
    out = unwrap(jm_.blobs().beginUpload(size));
  }
  void uploadChunk(const std::string& upload_id, const int64_t offset,
                   const std::string& data) override {
    check(jm_.blobs().appendChunk(upload_id, offset, data));
  }
  void finishUpload(std::string& out, const std::string& upload_id,
                    const std::string& sha256) override {
    out = unwrap(jm_.blobs().finishUpload(upload_id, sha256));
    spdlog::info("stored plugin {}", out);
  }
  void submitJob(std::string& out, const thrift::JobSubmission& submission) override {
    out = unwrap(jm_.submitJob(submission));
  }
  void listJobs(std::vector<thrift::JobSummary>& out) override { out = jm_.listJobs(); }
  void jobDetails(thrift::JobDetails& out, const std::string& job_id) override {
    out = unwrap(jm_.jobDetails(job_id));
  }
  void cancelJob(const std::string& job_id) override { check(jm_.cancelJob(job_id)); }
  void triggerSavepoint(std::string& out, const std::string& job_id,
                        const std::string& target_dir) override {
    out = unwrap(jm_.triggerSavepoint(job_id, target_dir, false, false));
  }
  void stopWithSavepoint(std::string& out, const std::string& job_id,
                         const std::string& target_dir, const bool drain) override {
    out = unwrap(jm_.triggerSavepoint(job_id, target_dir, true, drain));
  }
  void listCheckpoints(std::vector<thrift::CheckpointInfo>& out,
                       const std::string& job_id) override {
    out = unwrap(jm_.listCheckpoints(job_id));
  }

 private:
  JobManager& jm_;
};

}  // namespace

JobManager::JobManager(Configuration config)
    : config_(std::move(config)),
      id_(randomHexId(1)),
      heartbeat_interval_(config_.getDuration("heartbeat.interval")),
      heartbeat_timeout_(config_.getDuration("heartbeat.timeout")),
      rpc_timeout_(config_.getDuration("rpc.timeout")),
      started_at_ms_(unixMillis()),
      slot_timeout_(config_.getDuration("slot.request.timeout")) {}

JobManager::~JobManager() {
  stop();
}

int JobManager::rpcPort() const {
  return rpc_server_ ? rpc_server_->port() : 0;
}
int JobManager::adminPort() const {
  return admin_server_ ? admin_server_->port() : 0;
}

Status JobManager::start() {
  std::filesystem::path blob_dir = config_.getString("jobmanager.blob.dir");
  if (blob_dir.empty()) {
    std::error_code ec;
    auto base = std::filesystem::temp_directory_path(ec);
    if (ec) base = "/tmp";
    default_blob_dir_ = base / ("weir-jobmanager-" + id_);
    blob_dir = default_blob_dir_ / "blobs";
  }
  blobs_ = std::make_unique<BlobStore>(blob_dir);
  Status blob_status = blobs_->open();
  if (!blob_status.isOk()) return blob_status.withContext("blob store");

  const std::string host = config_.getString("jobmanager.bind-host");
  rpc_server_ = std::make_unique<RpcServer>("JobManager control service",
                                            std::make_shared<thrift::JobManagerServiceProcessor>(
                                                std::make_shared<ControlHandler>(*this)));
  Status s = rpc_server_->start(host, static_cast<int>(config_.getInt("jobmanager.rpc.port")));
  if (!s.isOk()) return s;
  admin_server_ = std::make_unique<RpcServer>(
      "JobManager admin service",
      std::make_shared<thrift::AdminServiceProcessor>(std::make_shared<AdminHandler>(*this)));
  s = admin_server_->start(host, static_cast<int>(config_.getInt("jobmanager.admin.port")));
  if (!s.isOk()) {
    rpc_server_->stop();
    return s;
  }
  monitor_ = std::thread([this] { monitorLoop(); });
  scheduler_ = std::thread([this] { schedulerLoop(); });
  spdlog::info("JobManager {} started", id_);
  return Status::ok();
}

void JobManager::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  scheduler_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  if (scheduler_.joinable()) scheduler_.join();
  if (admin_server_) admin_server_->stop();
  if (rpc_server_) rpc_server_->stop();
  // Coordinators call back into this JobManager from their threads: stop them while it is whole.
  std::vector<std::shared_ptr<CheckpointCoordinator>> coordinators;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, job] : jobs_) {
      if (job.coordinator) coordinators.push_back(std::move(job.coordinator));
      job.coordinator.reset();
    }
  }
  coordinators.clear();
  if (!default_blob_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(default_blob_dir_, ec);
  }
}

Result<thrift::RegistrationResponse> JobManager::registerTaskManager(
    const thrift::TaskManagerRegistration& r) {
  if (r.numSlots < 1) {
    return Status::invalidArgument("a TaskManager must offer at least one slot, got " +
                                   std::to_string(r.numSlots));
  }
  if (r.host.empty() || r.rpcPort < 1 || r.rpcPort > 65535 || r.dataPort < 1 ||
      r.dataPort > 65535) {
    return Status::invalidArgument("TaskManager registration without a reachable address");
  }
  std::lock_guard<std::mutex> lock(mu_);
  // A TaskManager registering again (it lost us, or we forgot it) replaces its old entry.
  for (auto& [id, tm] : task_managers_) {
    if (tm.resource_id == r.resourceId && tm.info.state == thrift::TaskManagerState::ALIVE) {
      markLostLocked(tm, "registered again as a new TaskManager");
    }
  }
  TaskManagerEntry tm;
  tm.resource_id = r.resourceId;
  tm.number = next_task_manager_++;
  tm.info.id = "tm-" + std::to_string(tm.number);
  tm.data_address = r.host + ":" + std::to_string(r.dataPort);
  tm.info.host = r.host;
  tm.info.rpcPort = r.rpcPort;
  tm.info.slots = r.numSlots;
  tm.info.freeSlots = r.numSlots;
  tm.info.state = thrift::TaskManagerState::ALIVE;
  tm.info.registeredAtMs = unixMillis();
  tm.last_heartbeat = Clock::now();
  tm.client = std::make_shared<TaskManagerClient>(r.host, r.rpcPort,
                                                  std::min(rpc_timeout_, heartbeat_timeout_));
  thrift::RegistrationResponse response;
  response.taskManagerId = tm.info.id;
  response.jobManagerId = id_;
  response.heartbeatIntervalMs = heartbeat_interval_.count();
  response.heartbeatTimeoutMs = heartbeat_timeout_.count();
  spdlog::info("TaskManager {} registered from {}:{} with {} slots", tm.info.id, r.host, r.rpcPort,
               r.numSlots);
  task_managers_.emplace(tm.info.id, std::move(tm));
  wakeSchedulerLocked();
  return response;
}

thrift::HeartbeatResponse JobManager::heartbeatFrom(const thrift::TaskManagerHeartbeat& hb) {
  thrift::HeartbeatResponse response;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = task_managers_.find(hb.taskManagerId);
  response.known = hb.jobManagerId == id_ && it != task_managers_.end() &&
                   it->second.info.state == thrift::TaskManagerState::ALIVE;
  if (response.known) {
    it->second.last_heartbeat = Clock::now();
    if (hb.__isset.tasks) {
      for (const auto& st : hb.tasks) {
        auto job = jobs_.find(st.jobId);
        if (job != jobs_.end()) applyStatusLocked(job->second, hb.taskManagerId, st);
      }
    }
  }
  return response;
}

void JobManager::markLostLocked(TaskManagerEntry& tm, const std::string& reason) {
  tm.info.state = thrift::TaskManagerState::LOST;
  tm.info.__set_lostReason(reason);
  spdlog::warn("TaskManager {} ({}:{}) lost: {}", tm.info.id, tm.info.host, tm.info.rpcPort,
               reason);
  const std::string why = "TaskManager " + tm.info.id + " (" + tm.info.host + ":" +
                          std::to_string(tm.info.rpcPort) + ") lost: " + reason;
  for (auto& [id, job] : jobs_) {
    if (job.slots_held.count(tm.info.id) == 0) continue;
    if (job.state == thrift::JobState::RUNNING) {
      for (auto& [key, sub] : job.subtasks) {
        if (sub.task_manager == tm.info.id && sub.state != thrift::ExecutionState::FINISHED) {
          sub.state = thrift::ExecutionState::FAILED;
          sub.failure = why;
        }
      }
      handleFailureLocked(job, why);
    } else if (job.state == thrift::JobState::CANCELLING) {
      for (auto& [key, sub] : job.subtasks) {
        if (sub.task_manager == tm.info.id) sub.state = thrift::ExecutionState::CANCELED;
      }
      evaluateJobLocked(job);
    }
  }
}

void JobManager::monitorLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    std::vector<std::pair<std::string, std::shared_ptr<TaskManagerClient>>> alive;
    for (auto& [id, tm] : task_managers_) {
      if (tm.info.state == thrift::TaskManagerState::ALIVE) alive.emplace_back(id, tm.client);
    }
    lock.unlock();
    // The JobManager's half of the heartbeat. A refused or broken connection means the process
    // is gone: it is lost at once; a slow one is left to the heartbeat timeout.
    std::vector<std::pair<std::string, Status>> failures;
    for (auto& [id, client] : alive) {
      Status s = client->call([this](thrift::TaskManagerServiceClient& c) { c.heartbeat(id_); });
      if (!s.isOk() && s.message().find("timed out") == std::string::npos) {
        failures.emplace_back(id, s);
      }
    }
    lock.lock();
    const auto now = Clock::now();
    for (auto& [id, s] : failures) {
      auto it = task_managers_.find(id);
      if (it != task_managers_.end() && it->second.info.state == thrift::TaskManagerState::ALIVE) {
        markLostLocked(it->second, "connection lost: " + s.message());
      }
    }
    for (auto& [id, tm] : task_managers_) {
      if (tm.info.state != thrift::TaskManagerState::ALIVE) continue;
      const auto silent =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - tm.last_heartbeat);
      if (silent > heartbeat_timeout_) {
        markLostLocked(tm, "no heartbeat for " + std::to_string(silent.count()) + " ms (timeout " +
                               std::to_string(heartbeat_timeout_.count()) + " ms)");
      }
    }
    stop_cv_.wait_for(lock, heartbeat_interval_, [&] { return stopping_; });
  }
}

thrift::ClusterInfo JobManager::clusterInfo() const {
  thrift::ClusterInfo info;
  info.jobManagerId = id_;
  info.version = WEIR_VERSION_STRING;
  info.startedAtMs = started_at_ms_;
  return info;
}

std::vector<thrift::TaskManagerInfo> JobManager::taskManagers() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<thrift::TaskManagerInfo> out;
  const auto now = Clock::now();
  for (const auto& [id, tm] : task_managers_) {
    thrift::TaskManagerInfo info = tm.info;
    info.lastHeartbeatAgeMs =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - tm.last_heartbeat).count();
    out.push_back(std::move(info));
  }
  // In registration order (ids are "tm-<n>", so order by length first).
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.id.size(), a.id) < std::make_pair(b.id.size(), b.id);
  });
  return out;
}

}  // namespace weir::engine
