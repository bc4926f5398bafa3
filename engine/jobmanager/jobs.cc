// The JobManager's jobs: submission, slot allocation, deployment and the job state machine (see
// job_manager.h).
#include <spdlog/spdlog.h>

#include <algorithm>

#include <future>

#include "checkpoint/checkpoint_storage.h"
#include "common/ids.h"
#include "jobmanager/job_manager.h"
#include "jobmanager/job_settings.h"
#include "state/state_settings.h"

namespace weir::engine {

std::vector<AssignmentVertex> assignmentVertices(const JobGraph& graph) {
  std::vector<AssignmentVertex> out;
  for (const auto& v : graph.vertices) {
    out.push_back(AssignmentVertex{v.uid, v.name, v.parallelism, v.maxParallelism});
  }
  return out;
}

namespace {

// The state a job submitted with --from-savepoint resumes from: a savepoint, or a retained
// checkpoint (whose files are relative to the job directory above it).
struct ResumeState {
  thrift::CheckpointMetadata metadata;
  std::filesystem::path base;
};

Result<ResumeState> loadResumeState(const std::string& uri) {
  auto path = parseCheckpointUri(uri);
  if (!path.isOk()) return path.status();
  std::filesystem::path dir = *path;
  if (dir.filename() == kMetadataFileName) dir = dir.parent_path();
  auto metadata = readMetadataFile(dir);
  if (!metadata.isOk()) return metadata.status();
  ResumeState r;
  r.base = metadata->isSavepoint ? dir : dir.parent_path();
  if (Status s = verifyStateFiles(r.base, *metadata); !s.isOk()) return s;
  r.metadata = std::move(*metadata);
  return r;
}

}  // namespace

Result<std::string> JobManager::fetchBlob(const std::string& sha256, std::int64_t offset,
                                          std::int32_t length) const {
  return blobs_->readChunk(sha256, offset, length);
}

Result<std::string> JobManager::submitJob(const thrift::JobSubmission& submission) {
  const JobGraph& graph = submission.graph;
  const std::map<std::string, std::string> job_args(graph.jobArgs.begin(), graph.jobArgs.end());
  Status s = validateJobStateArgs(job_args);
  if (!s.isOk()) return s;
  // Checkpoint and restart settings: the job's arguments over this cluster's defaults.
  JobSettings settings = JobSettings::fromConfig(config_);
  s = settings.applyJobArgs(job_args);
  if (!s.isOk()) return s;
  s = validateJobGraph(graph);
  if (!s.isOk()) return s.withContext("invalid job graph");
  if (settings.checkpoint.enabled() && settings.checkpoint.checkpoints_dir.empty()) {
    return Status::invalidArgument(
        "execution.checkpointing.interval is set but state.checkpoints.dir is not: checkpoints "
        "need a directory all hosts share");
  }
  const StateSettings state = stateSettingsFromConfig(config_);
  auto backend = jobStateChoice(job_args, state.backend, state.rocksdb_timers_in_kv_store);
  if (!backend.isOk()) return backend.status();
  if (backend->backend == StateBackendKind::kRocksDb && !backend->timers_in_kv_store &&
      settings.checkpoint.enabled()) {
    return Status::invalidArgument(
        "timers of the rocksdb state backend kept on the heap "
        "(state.backend.rocksdb.timer-service.factory=heap) are not checkpointed: use "
        "state.backend.rocksdb.timer-service.factory=rocksdb");
  }
  std::optional<ResumeState> resume;
  if (submission.__isset.fromSavepoint && !submission.fromSavepoint.empty()) {
    auto loaded = loadResumeState(submission.fromSavepoint);
    if (!loaded.isOk()) {
      return loaded.status().withContext("cannot resume from " + submission.fromSavepoint);
    }
    auto assigned = assignState(loaded->metadata, assignmentVertices(graph),
                                submission.allowNonRestoredState);
    if (!assigned.isOk()) {
      return assigned.status().withContext("cannot resume from " + submission.fromSavepoint);
    }
    resume = std::move(*loaded);
  }
  auto size = blobs_->size(submission.pluginHash);
  if (!size.isOk()) {
    return Status::notFound("plugin " + submission.pluginHash +
                            " was not uploaded to this JobManager");
  }
  JobEntry job;
  job.id = randomHexId(2);  // 32 hex digits, like Flink's job ids
  job.graph = graph;
  job.plugin_hash = submission.pluginHash;
  job.plugin_size = *size;
  job.plugin = submission.pluginName + " " + submission.pluginVersion + " (" +
               submission.pluginHash.substr(0, 12) + ")";
  job.plan = planExecution(graph);
  job.settings = settings;
  job.state_backend = stateBackendName(backend->backend);
  job.restart = std::make_unique<RestartStrategy>(settings.restartSettings());
  if (resume) {
    job.savepoint = std::move(resume->metadata);
    job.savepoint_dir = resume->base.string();
    job.allow_non_restored_state = submission.allowNonRestoredState;
  }
  s = createCoordinator(job);
  if (!s.isOk()) return s;
  job.submitted_at_ms = unixMillis();
  job.submitted = Clock::now();
  for (const auto& v : graph.vertices)
    job.slots_needed = std::max(job.slots_needed, static_cast<int>(v.parallelism));
  for (const auto& t : job.plan.tasks)
    job.subtasks[{t.chain_id, t.subtask}] = SubtaskEntry{};
  const std::string id = job.id;
  spdlog::info("job {} ('{}') submitted from plugin {}: {} subtasks, needs {} slots", id,
               graph.name, job.plugin, job.plan.tasks.size(), job.slots_needed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::failed("the JobManager is shutting down");
    jobs_.emplace(id, std::move(job));
    job_order_.push_back(id);
    wakeSchedulerLocked();
  }
  return id;
}

bool JobManager::tryScheduleLocked(JobEntry& job) {
  // Free slots per alive TaskManager; take from the one with the most free slots each time.
  std::vector<TaskManagerEntry*> candidates;
  int free_total = 0;
  for (auto& [id, tm] : task_managers_) {
    if (tm.info.state != thrift::TaskManagerState::ALIVE || tm.info.freeSlots <= 0) continue;
    candidates.push_back(&tm);
    free_total += tm.info.freeSlots;
  }
  if (free_total < job.slots_needed) return false;
  std::map<std::string, int> free;
  for (auto* tm : candidates)
    free[tm->info.id] = tm->info.freeSlots;
  std::vector<TaskManagerEntry*> slots;  // slot i -> TaskManager
  for (int i = 0; i < job.slots_needed; ++i) {
    TaskManagerEntry* best = nullptr;
    for (auto* tm : candidates) {
      if (free[tm->info.id] == 0) continue;
      if (best == nullptr || free[tm->info.id] > free[best->info.id] ||
          (free[tm->info.id] == free[best->info.id] && tm->number < best->number)) {
        best = tm;
      }
    }
    --free[best->info.id];
    slots.push_back(best);
  }
  if (!prepareRestoreLocked(job)) return true;  // failed
  for (auto* tm : slots) {
    --tm->info.freeSlots;
    ++job.slots_held[tm->info.id];
  }
  std::optional<thrift::JobCheckpointing> checkpointing;
  if (job.coordinator) {
    checkpointing.emplace();
    const CheckpointSettings& c = job.settings.checkpoint;
    checkpointing->jobDir = "";
    if (!c.checkpoints_dir.empty()) {
      if (auto root = parseCheckpointUri(c.checkpoints_dir); root.isOk()) {
        checkpointing->jobDir = (*root / job.id).string();
      }
    }
    checkpointing->__set_incremental(c.incremental);
    checkpointing->__set_unaligned(c.unaligned);
    checkpointing->__set_alignedTimeoutMs(c.aligned_checkpoint_timeout.count());
    checkpointing->__set_periodic(c.enabled());
  }

  auto address = [&](int subtask) -> const std::string& {
    return slots[static_cast<std::size_t>(subtask)]->data_address;
  };
  std::map<std::string, std::shared_ptr<thrift::JobDeployment>> deployments;
  for (const TaskDeployment& t : job.plan.tasks) {
    TaskManagerEntry* tm = slots[static_cast<std::size_t>(t.subtask)];
    auto& d = deployments[tm->info.id];
    if (!d) {
      d = std::make_shared<thrift::JobDeployment>();
      d->jobId = job.id;
      d->graph = job.graph;
      d->pluginHash = job.plugin_hash;
      d->pluginSize = job.plugin_size;
      d->__set_attempt(job.attempt);
      if (checkpointing) d->__set_checkpointing(*checkpointing);
    }
    thrift::TaskDeploymentDescriptor tdd;
    tdd.chainId = t.chain_id;
    tdd.subtask = t.subtask;
    tdd.parallelism = job.plan.chains[static_cast<std::size_t>(t.chain_id)].parallelism;
    for (int v : t.spec.vertex_ids)
      tdd.vertexUids.push_back(job.graph.vertices[static_cast<std::size_t>(v)].uid);
    if (job.restore_checkpoint != 0) {
      thrift::TaskRestore restore;
      restore.checkpointId = job.restore_checkpoint;
      restore.baseDir = job.restore_base;
      for (const std::string& uid : tdd.vertexUids) {
        auto it = job.restore.find({uid, t.subtask});
        if (it != job.restore.end()) restore.vertices.push_back(it->second);
      }
      if (!restore.vertices.empty()) tdd.__set_restore(std::move(restore));
    }
    for (const auto& in : t.inputs)
      tdd.inputAddresses.push_back(address(in.producer_subtask));
    for (const auto& routes : t.routes) {
      std::vector<std::string> out;
      for (const auto& r : routes)
        out.push_back(address(r.consumer_subtask));
      tdd.outputAddresses.push_back(std::move(out));
    }
    d->tasks.push_back(std::move(tdd));
    SubtaskEntry& sub = job.subtasks[{t.chain_id, t.subtask}];
    sub.task_manager = tm->info.id;
    sub.state = thrift::ExecutionState::DEPLOYING;
  }
  job.state = thrift::JobState::RUNNING;
  job.attempt_started = false;
  for (auto& [tm, d] : deployments) {
    PendingCall& call = queueCallLocked(PendingCall::kDeploy, tm, job.id);
    call.deployment = d;
  }
  std::string where;
  for (auto& [tm, n] : job.slots_held)
    where += (where.empty() ? "" : ", ") + tm + " x" + std::to_string(n);
  spdlog::info("job {}: deploying{} on {}", job.id,
               job.attempt == 0 ? "" : " attempt " + std::to_string(job.attempt), where);
  return true;
}

void JobManager::schedulerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    const auto now = Clock::now();
    for (const std::string& id : job_order_) {
      JobEntry& job = jobs_.at(id);
      if (job.state == thrift::JobState::RESTARTING && now >= job.restart_at) {
        beginAttemptLocked(job);
      }
      if (job.state != thrift::JobState::CREATED) continue;
      if (tryScheduleLocked(job)) continue;
      if (now - job.submitted >= slot_timeout_) {
        int free_slots = 0;
        int total_slots = 0;
        int alive = 0;
        for (const auto& [tm_id, tm] : task_managers_) {
          if (tm.info.state != thrift::TaskManagerState::ALIVE) continue;
          ++alive;
          free_slots += tm.info.freeSlots;
          total_slots += tm.info.slots;
        }
        failJobLocked(
            job, "not enough task slots: the job needs " + std::to_string(job.slots_needed) + ", " +
                     std::to_string(free_slots) + " of " + std::to_string(total_slots) +
                     " are free on " + std::to_string(alive) + " TaskManager(s), after waiting " +
                     std::to_string(slot_timeout_.count()) + " ms (slot.request.timeout)");
      }
    }
    while (!pending_calls_.empty() && !stopping_) {
      PendingCall call = std::move(pending_calls_.front());
      pending_calls_.pop_front();
      auto tm = task_managers_.find(call.task_manager);
      if (tm == task_managers_.end() || tm->second.info.state != thrift::TaskManagerState::ALIVE) {
        continue;  // its loss already failed the job
      }
      auto client = tm->second.client;
      if (call.kind == PendingCall::kTrigger || call.kind == PendingCall::kNotify) {
        runPendingCall(call, client, lock);
        continue;
      }
      lock.unlock();
      Status s = client->call([&](thrift::TaskManagerServiceClient& c) {
        if (call.kind == PendingCall::kDeploy) {
          c.deployTasks(id_, *call.deployment);
        } else if (call.kind == PendingCall::kCancel) {
          c.cancelJob(id_, call.job);
        } else {
          c.heartbeat(id_);
        }
      });
      lock.lock();
      if (call.kind == PendingCall::kProbe) {
        // A subtask lost its data connection to this TaskManager. If the TaskManager is gone,
        // that is the job's failure (markLostLocked reports it); otherwise the subtask's is.
        auto tm_it = task_managers_.find(call.task_manager);
        if (!s.isOk() && s.message().find("timed out") == std::string::npos &&
            tm_it != task_managers_.end() &&
            tm_it->second.info.state == thrift::TaskManagerState::ALIVE) {
          markLostLocked(tm_it->second, "connection lost: " + s.message());
        }
        auto job = jobs_.find(call.job);
        if (job != jobs_.end()) handleFailureLocked(job->second, call.failure);
        continue;
      }
      if (!s.isOk()) {
        spdlog::warn("job {}: {} on {} failed: {}", call.job,
                     call.deployment ? "deployment" : "cancellation", call.task_manager,
                     s.message());
        markLostIfGoneLocked(call.task_manager, s);
        auto job = jobs_.find(call.job);
        if (job != jobs_.end() && call.deployment &&
            job->second.state == thrift::JobState::RUNNING &&
            call.deployment->attempt == job->second.attempt) {
          handleFailureLocked(job->second, "deployment to TaskManager " + call.task_manager +
                                               " failed: " + s.message());
        }
      }
    }
    // Waiting jobs are looked at again when slots may have changed, and at least every 100 ms
    // for their timeouts.
    scheduler_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] {
      return stopping_ || !pending_calls_.empty() || scheduler_woken_;
    });
    scheduler_woken_ = false;
  }
}

void JobManager::markLostIfGoneLocked(const std::string& task_manager, const Status& failure) {
  // A refused or reset connection means the process is gone: declare it lost now rather than at
  // the next heartbeat, so that a restart does not choose it again. A timeout decides nothing.
  if (failure.code() != Status::Code::kIoError ||
      failure.message().find("timed out") != std::string::npos) {
    return;
  }
  auto it = task_managers_.find(task_manager);
  if (it != task_managers_.end() && it->second.info.state == thrift::TaskManagerState::ALIVE) {
    markLostLocked(it->second, "connection lost: " + failure.message());
  }
}

void JobManager::updateTaskStatus(const std::string& task_manager_id,
                                  const std::vector<thrift::TaskStatus>& statuses) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& st : statuses) {
    auto job = jobs_.find(st.jobId);
    if (job == jobs_.end()) continue;  // not ours (this JobManager restarted)
    applyStatusLocked(job->second, task_manager_id, st);
  }
}

void JobManager::applyStatusLocked(JobEntry& job, const std::string& task_manager,
                                   const thrift::TaskStatus& status) {
  if (status.attempt != job.attempt) return;  // of a deployment that was replaced
  auto it = job.subtasks.find({status.chainId, status.subtask});
  if (it == job.subtasks.end() || it->second.task_manager != task_manager) return;
  SubtaskEntry& sub = it->second;
  // Metrics only grow; a report never leads out of a final state (a heartbeat taken before the
  // subtask ended may arrive after the report of its end).
  if (!isTerminal(sub.state) || status.state == sub.state) sub.last = status;
  if (isTerminal(sub.state)) return;
  if (status.state == thrift::ExecutionState::DEPLOYING &&
      sub.state != thrift::ExecutionState::DEPLOYING) {
    return;
  }
  sub.state = status.state;
  if (status.__isset.failure) sub.failure = status.failure;
  const bool ended_now = status.__isset.endOfData && status.endOfData && !sub.end_of_data;
  if (ended_now) sub.end_of_data = true;
  if (status.state == thrift::ExecutionState::FAILED && job.state == thrift::JobState::RUNNING) {
    const std::string failure = describeSubtaskLocked(job, status.chainId, status.subtask) +
                                " on " + task_manager + " failed: " + sub.failure;
    // A broken data connection usually means the TaskManager at its other end died: check that
    // first, so that the job fails with the root cause.
    for (const auto& [id, tm] : task_managers_) {
      if (tm.info.state == thrift::TaskManagerState::ALIVE && id != task_manager &&
          sub.failure.find("data connection to TaskManager at " + tm.data_address + " ") !=
              std::string::npos) {
        if (job.probing) return;
        job.probing = true;
        PendingCall& call = queueCallLocked(PendingCall::kProbe, id, job.id);
        call.failure = failure;
        wakeSchedulerLocked();
        return;
      }
    }
    handleFailureLocked(job, failure);
    return;
  }
  if (job.coordinator && job.state == thrift::JobState::RUNNING) {
    if (!job.attempt_started) {
      bool all_running = true;
      for (const auto& [key, sub] : job.subtasks) {
        if (sub.state != thrift::ExecutionState::RUNNING &&
            sub.state != thrift::ExecutionState::FINISHED) {
          all_running = false;
        }
      }
      if (all_running) {
        std::vector<CoordinatorTask> tasks;
        for (const auto& t : job.plan.tasks) {
          tasks.push_back(CoordinatorTask{t.chain_id, t.subtask, t.spec.num_input_channels == 0});
        }
        job.coordinator->startAttempt(job.attempt, std::move(tasks));
        job.attempt_started = true;
        // Subtasks may end their data before the last one of the attempt runs.
        for (const auto& [key, s] : job.subtasks) {
          if (s.end_of_data) job.coordinator->endOfData(job.attempt, key.first, key.second);
        }
      }
    } else if (ended_now) {
      job.coordinator->endOfData(job.attempt, status.chainId, status.subtask);
    }
  }
  evaluateJobLocked(job);
}

std::string JobManager::describeSubtaskLocked(const JobEntry& job, int chain, int subtask) const {
  const auto& c = job.plan.chains[static_cast<std::size_t>(chain)];
  return "'" + c.name + "' (" + std::to_string(subtask + 1) + "/" + std::to_string(c.parallelism) +
         ")";
}

void JobManager::evaluateJobLocked(JobEntry& job) {
  bool all_finished = true;
  bool all_ended = true;
  for (const auto& [key, sub] : job.subtasks) {
    if (sub.state != thrift::ExecutionState::FINISHED) all_finished = false;
    if (!isTerminal(sub.state)) all_ended = false;
  }
  if (job.state == thrift::JobState::RUNNING && all_finished) {
    endJobLocked(job, thrift::JobState::FINISHED);
  } else if (job.state == thrift::JobState::CANCELLING && all_ended) {
    endJobLocked(job, thrift::JobState::CANCELED);
  }
}

void JobManager::failJobLocked(JobEntry& job, const std::string& reason) {
  if (isTerminal(job.state)) return;
  job.failure = reason;
  spdlog::error("job {} ('{}') failed: {}", job.id, job.graph.name, reason);
  cancelSubtasksLocked(job);
  endJobLocked(job, thrift::JobState::FAILED);
}

void JobManager::cancelSubtasksLocked(JobEntry& job) {
  for (const auto& [tm, n] : job.slots_held) {
    auto it = task_managers_.find(tm);
    if (it != task_managers_.end() && it->second.info.state == thrift::TaskManagerState::ALIVE) {
      queueCallLocked(PendingCall::kCancel, tm, job.id);
    }
  }
  for (auto& [key, sub] : job.subtasks) {
    if (!isTerminal(sub.state)) sub.state = thrift::ExecutionState::CANCELING;
  }
  wakeSchedulerLocked();
}

void JobManager::releaseSlotsLocked(JobEntry& job) {
  for (const auto& [tm, n] : job.slots_held) {
    auto it = task_managers_.find(tm);
    if (it != task_managers_.end()) it->second.info.freeSlots += n;
  }
  job.slots_held.clear();
}

void JobManager::endJobLocked(JobEntry& job, thrift::JobState::type state) {
  job.state = state;
  job.ended = Clock::now();
  if (job.coordinator) job.coordinator->stopAttempt("the job is " + thrift::to_string(state));
  releaseSlotsLocked(job);
  if (state != thrift::JobState::FAILED) {
    spdlog::info("job {} ('{}') {}", job.id, job.graph.name, thrift::to_string(state));
  }
  wakeSchedulerLocked();  // freed slots may let a waiting job run
  job_ended_cv_.notify_all();
}

JobManager::PendingCall& JobManager::queueCallLocked(PendingCall::Kind kind,
                                                     const std::string& task_manager,
                                                     const std::string& job) {
  PendingCall& call = pending_calls_.emplace_back();
  call.kind = kind;
  call.task_manager = task_manager;
  call.job = job;
  return call;
}

void JobManager::wakeSchedulerLocked() {
  scheduler_woken_ = true;
  scheduler_cv_.notify_all();
}

Result<thrift::JobSummary> JobManager::awaitJob(const std::string& job_id,
                                                std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Status::notFound("no job with id " + job_id);
  job_ended_cv_.wait_for(lock, timeout, [&] { return isTerminal(it->second.state); });
  return summaryLocked(it->second);
}

Status JobManager::cancelJob(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Status::notFound("no job with id " + job_id);
  JobEntry& job = it->second;
  if (isTerminal(job.state) || job.state == thrift::JobState::CANCELLING) {
    return Status::failed("job " + job_id + " is already " + thrift::to_string(job.state));
  }
  spdlog::info("cancelling job {} ('{}')", job.id, job.graph.name);
  if (job.state == thrift::JobState::CREATED || job.state == thrift::JobState::RESTARTING) {
    for (auto& [key, sub] : job.subtasks) {
      if (!isTerminal(sub.state)) sub.state = thrift::ExecutionState::CANCELED;
    }
    endJobLocked(job, thrift::JobState::CANCELED);
    return Status::ok();
  }
  job.state = thrift::JobState::CANCELLING;
  cancelSubtasksLocked(job);
  evaluateJobLocked(job);
  return Status::ok();
}

thrift::JobSummary JobManager::summaryLocked(const JobEntry& job) const {
  thrift::JobSummary s;
  s.id = job.id;
  s.name = job.graph.name;
  s.state = job.state;
  s.submittedAtMs = job.submitted_at_ms;
  const auto end = isTerminal(job.state) ? job.ended : Clock::now();
  s.durationMs = std::chrono::duration_cast<std::chrono::milliseconds>(end - job.submitted).count();
  s.parallelism = job.slots_needed;
  s.tasksTotal = static_cast<std::int32_t>(job.subtasks.size());
  s.tasksRunning = 0;
  s.tasksFinished = 0;
  for (const auto& [key, sub] : job.subtasks) {
    if (sub.state == thrift::ExecutionState::RUNNING) ++s.tasksRunning;
    if (sub.state == thrift::ExecutionState::FINISHED) ++s.tasksFinished;
  }
  if (!job.failure.empty()) s.__set_failure(job.failure);
  s.plugin = job.plugin;
  s.__set_restarts(job.restart ? static_cast<std::int32_t>(job.restart->restarts()) : 0);
  if (job.coordinator) s.__set_lastCheckpointId(job.coordinator->lastCompletedId());
  return s;
}

std::vector<thrift::JobSummary> JobManager::listJobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<thrift::JobSummary> out;
  for (const std::string& id : job_order_)
    out.push_back(summaryLocked(jobs_.at(id)));
  return out;
}

Result<thrift::JobDetails> JobManager::jobDetails(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Status::notFound("no job with id " + job_id);
  const JobEntry& job = it->second;
  thrift::JobDetails details;
  details.summary = summaryLocked(job);
  for (const auto& chain : job.plan.chains) {
    for (int v : chain.vertices) {
      const auto& vertex = job.graph.vertices[static_cast<std::size_t>(v)];
      thrift::VertexInfo info;
      info.id = vertex.id;
      info.name = vertex.name;
      info.uid = vertex.uid;
      info.parallelism = vertex.parallelism;
      for (int s = 0; s < chain.parallelism; ++s) {
        const SubtaskEntry& sub = job.subtasks.at({chain.id, s});
        thrift::SubtaskInfo si;
        si.subtask = s;
        si.state = sub.state;
        si.taskManagerId = sub.task_manager;
        si.taskManagerAddress = "";
        auto tm = task_managers_.find(sub.task_manager);
        if (tm != task_managers_.end()) {
          si.taskManagerAddress =
              tm->second.info.host + ":" + std::to_string(tm->second.info.rpcPort);
        }
        si.recordsIn = 0;
        si.recordsOut = 0;
        for (const auto& r : sub.last.vertices) {
          if (r.vertexId == v) {
            si.recordsIn = r.recordsIn;
            si.recordsOut = r.recordsOut;
            si.__set_lateRecords(r.lateRecords);
            si.__set_watermark(r.watermark);
          }
        }
        si.busyMs = sub.last.busyMs;
        si.idleMs = sub.last.idleMs;
        si.backpressuredMs = sub.last.backpressuredMs;
        if (!sub.failure.empty()) si.__set_failure(sub.failure);
        info.subtasks.push_back(std::move(si));
      }
      details.vertices.push_back(std::move(info));
    }
  }
  std::sort(details.vertices.begin(), details.vertices.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return details;
}

}  // namespace weir::engine
