// The JobManager's fault tolerance: each job's checkpoint coordinator wired to the TaskManagers,
// restarts from the latest completed checkpoint, savepoints (see job_manager.h).
#include <spdlog/spdlog.h>

#include <future>

#include "checkpoint/checkpoint_storage.h"
#include "jobmanager/job_manager.h"

namespace weir::engine {

Status JobManager::createCoordinator(JobEntry& job) {
  CheckpointCoordinator::Options options;
  options.job_id = job.id;
  options.settings = job.settings.checkpoint;
  options.state_backend = job.state_backend;
  for (const auto& chain : job.plan.chains) {
    for (int v : chain.vertices) {
      const auto& vertex = job.graph.vertices[static_cast<std::size_t>(v)];
      options.vertices.push_back(
          CoordinatorVertex{vertex.uid, chain.id, vertex.parallelism, vertex.maxParallelism});
    }
  }
  // The callbacks run on the coordinator's thread, never under its lock: they may take mu_.
  const std::string job_id = job.id;
  CheckpointCoordinator::Callbacks callbacks;
  callbacks.trigger = [this, job_id](int attempt, const thrift::CheckpointTrigger& trigger,
                                     const std::vector<thrift::SubtaskId>& subtasks) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.attempt != attempt) return;
    JobEntry& job = it->second;
    auto shared = std::make_shared<thrift::CheckpointTrigger>(trigger);
    std::map<std::string, std::vector<thrift::SubtaskId>> by_tm;
    for (const auto& s : subtasks) {
      auto sub = job.subtasks.find({s.chainId, s.subtask});
      if (sub != job.subtasks.end()) by_tm[sub->second.task_manager].push_back(s);
    }
    for (auto& [tm, list] : by_tm) {
      PendingCall& call = queueCallLocked(PendingCall::kTrigger, tm, job_id);
      call.attempt = attempt;
      call.trigger = shared;
      call.subtasks = std::move(list);
    }
    wakeSchedulerLocked();
  };
  auto notify = [this, job_id](int attempt, std::int64_t checkpoint_id, bool completed) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.attempt != attempt) return;
    for (const auto& [tm, n] : it->second.slots_held) {
      PendingCall& call = queueCallLocked(PendingCall::kNotify, tm, job_id);
      call.attempt = attempt;
      call.checkpoint_id = checkpoint_id;
      call.completed = completed;
    }
    wakeSchedulerLocked();
  };
  callbacks.notify_complete = [notify](int attempt, std::int64_t id) { notify(attempt, id, true); };
  callbacks.notify_aborted = [notify](int attempt, std::int64_t id) { notify(attempt, id, false); };
  callbacks.fail_job = [this, job_id](const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it != jobs_.end()) handleFailureLocked(it->second, reason);
  };
  auto coordinator = CheckpointCoordinator::create(std::move(options), std::move(callbacks));
  if (!coordinator.isOk()) return coordinator.status().withContext("checkpoints of job " + job.id);
  job.coordinator = std::shared_ptr<CheckpointCoordinator>(std::move(*coordinator));
  return Status::ok();
}

void JobManager::runPendingCall(PendingCall& call, const std::shared_ptr<TaskManagerClient>& client,
                                std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  Status s = client->call([&](thrift::TaskManagerServiceClient& c) {
    if (call.kind == PendingCall::kTrigger) {
      c.triggerCheckpoint(id_, call.job, call.attempt, *call.trigger, call.subtasks);
    } else if (call.completed) {
      c.notifyCheckpointComplete(id_, call.job, call.attempt, call.checkpoint_id);
    } else {
      c.notifyCheckpointAborted(id_, call.job, call.attempt, call.checkpoint_id);
    }
  });
  lock.lock();
  if (s.isOk()) return;
  markLostIfGoneLocked(call.task_manager, s);
  auto job = jobs_.find(call.job);
  if (call.kind == PendingCall::kTrigger && job != jobs_.end() && job->second.coordinator &&
      !call.subtasks.empty()) {
    job->second.coordinator->decline(call.attempt, call.trigger->checkpointId,
                                     call.subtasks.front().chainId, call.subtasks.front().subtask,
                                     "triggering it on TaskManager " + call.task_manager +
                                         " failed: " + s.message());
  } else if (call.kind == PendingCall::kNotify) {
    spdlog::debug("job {}: telling {} about checkpoint {} failed: {}", call.job, call.task_manager,
                  call.checkpoint_id, s.message());
  }
}

void JobManager::handleFailureLocked(JobEntry& job, const std::string& reason) {
  if (job.state != thrift::JobState::RUNNING && job.state != thrift::JobState::CREATED) {
    if (job.state == thrift::JobState::CANCELLING) failJobLocked(job, reason);
    return;
  }
  const RestartDecision decision = job.restart->onFailure();
  if (!decision.restart) {
    failJobLocked(job, decision.reason.empty() ? reason : reason + " (" + decision.reason + ")");
    return;
  }
  spdlog::warn("job {} ('{}') failed: {}; restarting in {} ms (restart {} with {})", job.id,
               job.graph.name, reason, decision.delay.count(), job.restart->restarts(),
               restartStrategyName(job.restart->settings().kind));
  job.failure = reason;
  if (job.coordinator) job.coordinator->stopAttempt(reason);
  cancelSubtasksLocked(job);
  releaseSlotsLocked(job);
  job.state = thrift::JobState::RESTARTING;
  job.restart_at = Clock::now() + decision.delay;
}

void JobManager::beginAttemptLocked(JobEntry& job) {
  ++job.attempt;
  job.state = thrift::JobState::CREATED;
  job.submitted = Clock::now();  // the slot request timeout starts again
  job.probing = false;
  job.attempt_started = false;
  for (auto& [key, sub] : job.subtasks)
    sub = SubtaskEntry{};
}

bool JobManager::prepareRestoreLocked(JobEntry& job) {
  job.restore.clear();
  job.restore_checkpoint = 0;
  job.restore_base.clear();
  const std::vector<AssignmentVertex> vertices = assignmentVertices(job.graph);
  if (job.attempt > 0 && job.coordinator) {
    auto latest = job.coordinator->latestForRestore();
    if (!latest.isOk()) {
      failJobLocked(job, "cannot find a checkpoint to restore from: " + latest.status().message());
      return false;
    }
    if (latest->has_value()) {
      const CompletedCheckpoint& chk = **latest;
      auto assigned = assignState(chk.metadata, vertices, false);
      if (!assigned.isOk()) {
        failJobLocked(job, "cannot restore from checkpoint " + std::to_string(chk.id) + ": " +
                               assigned.status().message());
        return false;
      }
      job.restore = std::move(*assigned);
      job.restore_checkpoint = chk.id;
      job.restore_base = chk.dir.parent_path().string();
      job.coordinator->markRestoredFrom(chk.id);
      spdlog::info("job {}: attempt {} restores checkpoint {} ({})", job.id, job.attempt, chk.id,
                   chk.dir.string());
      return true;
    }
  }
  if (job.savepoint) {
    auto assigned = assignState(*job.savepoint, vertices, job.allow_non_restored_state);
    if (!assigned.isOk()) {
      failJobLocked(job, "cannot restore from " + job.savepoint_dir + ": " +
                             assigned.status().message());
      return false;
    }
    job.restore = std::move(*assigned);
    job.restore_checkpoint = std::max<std::int64_t>(1, job.savepoint->checkpointId);
    job.restore_base = job.savepoint_dir;
    spdlog::info("job {}: attempt {} resumes from {}", job.id, job.attempt, job.savepoint_dir);
  }
  return true;
}

void JobManager::acknowledgeCheckpoint(const std::string& task_manager_id,
                                       const thrift::CheckpointAck& ack) {
  std::shared_ptr<CheckpointCoordinator> coordinator;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(ack.jobId);
    if (it == jobs_.end()) return;
    coordinator = it->second.coordinator;
  }
  if (!coordinator) return;
  Status s = coordinator->acknowledge(ack);
  if (!s.isOk()) {
    spdlog::warn("job {}: acknowledgement of checkpoint {} from {} refused: {}", ack.jobId,
                 ack.checkpointId, task_manager_id, s.message());
  }
}

void JobManager::declineCheckpoint(const std::string& task_manager_id, const std::string& job_id,
                                   int attempt, std::int64_t checkpoint_id, int chain_id,
                                   int subtask, const std::string& reason) {
  std::shared_ptr<CheckpointCoordinator> coordinator;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return;
    coordinator = it->second.coordinator;
  }
  if (coordinator) {
    coordinator->decline(attempt, checkpoint_id, chain_id, subtask,
                         reason + " (on TaskManager " + task_manager_id + ")");
  }
}

Result<std::string> JobManager::triggerSavepoint(const std::string& job_id,
                                                 const std::string& target_dir, bool stop,
                                                 bool drain) {
  std::shared_ptr<CheckpointCoordinator> coordinator;
  std::chrono::milliseconds timeout{0};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return Status::notFound("no job with id " + job_id);
    const JobEntry& job = it->second;
    if (job.state != thrift::JobState::RUNNING || !job.attempt_started) {
      return Status::failed("job " + job_id + " is " + thrift::to_string(job.state) +
                            (job.state == thrift::JobState::RUNNING ? " but not all its subtasks are"
                                                                    : "") +
                            "; a savepoint needs every subtask running");
    }
    coordinator = job.coordinator;
    timeout = job.settings.checkpoint.timeout + std::chrono::seconds(10);
  }
  if (!coordinator) return Status::failed("job " + job_id + " takes no savepoints");
  auto future = coordinator->triggerSavepoint(target_dir, stop, drain);
  if (future.wait_for(timeout) != std::future_status::ready) {
    return Status::failed("the savepoint of job " + job_id + " did not complete in " +
                          std::to_string(timeout.count()) + " ms");
  }
  return future.get();
}

Result<std::vector<thrift::CheckpointInfo>> JobManager::listCheckpoints(
    const std::string& job_id) const {
  std::shared_ptr<CheckpointCoordinator> coordinator;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return Status::notFound("no job with id " + job_id);
    coordinator = it->second.coordinator;
  }
  if (!coordinator) return std::vector<thrift::CheckpointInfo>{};
  return coordinator->history();
}

}  // namespace weir::engine
