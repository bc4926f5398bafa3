#include "taskmanager/task_manager.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <random>

namespace weir::engine {

namespace {

std::string newResourceId() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%d-%016llx", static_cast<int>(getpid()),
                static_cast<unsigned long long>(dist(rd)));
  return buf;
}

class ControlHandler final : public thrift::TaskManagerServiceIf {
 public:
  explicit ControlHandler(TaskManager& tm) : tm_(tm) {}
  void heartbeat(const std::string& job_manager_id) override {
    Status s = tm_.heartbeatFromJobManager(job_manager_id);
    if (!s.isOk()) throw toWeirError(s);
  }

 private:
  TaskManager& tm_;
};

}  // namespace

TaskManager::TaskManager(Configuration config)
    : config_(std::move(config)),
      resource_id_(newResourceId()),
      retry_interval_(config_.getDuration("taskmanager.registration.retry-interval")),
      job_manager_(config_.getString("jobmanager.rpc.address"),
                   static_cast<int>(config_.getInt("jobmanager.rpc.port")),
                   config_.getDuration("rpc.timeout")) {}

TaskManager::~TaskManager() { stop(); }

int TaskManager::rpcPort() const { return rpc_server_ ? rpc_server_->port() : 0; }

std::string TaskManager::taskManagerId() const {
  std::lock_guard<std::mutex> lock(mu_);
  return task_manager_id_;
}

bool TaskManager::registered() const { return !taskManagerId().empty(); }

Status TaskManager::start() {
  rpc_server_ = std::make_unique<RpcServer>(
      "TaskManager control service",
      std::make_shared<thrift::TaskManagerServiceProcessor>(std::make_shared<ControlHandler>(*this)));
  Status s = rpc_server_->start(config_.getString("taskmanager.host"),
                                static_cast<int>(config_.getInt("taskmanager.rpc.port")));
  if (!s.isOk()) return s;
  connection_ = std::thread([this] { connectionLoop(); });
  return Status::ok();
}

void TaskManager::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (connection_.joinable()) connection_.join();
  if (rpc_server_) rpc_server_->stop();
}

Status TaskManager::heartbeatFromJobManager(const std::string& job_manager_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (task_manager_id_.empty() || job_manager_id != job_manager_id_) {
    return Status::notFound("this TaskManager is not registered with JobManager " +
                            job_manager_id);
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
  }
  job_manager_.close();
}

void TaskManager::connectionLoop() {
  thrift::TaskManagerRegistration registration;
  registration.resourceId = resource_id_;
  registration.host = config_.getString("taskmanager.host");
  registration.rpcPort = rpcPort();
  registration.numSlots = static_cast<std::int32_t>(config_.getInt("taskmanager.numberOfTaskSlots"));
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
