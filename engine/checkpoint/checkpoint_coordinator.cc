#include "checkpoint/checkpoint_coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <system_error>

#include "common/ids.h"

namespace weir::engine {

namespace fs = std::filesystem;

namespace {

// Finished entries kept in the history beyond the retained checkpoints.
constexpr std::size_t kMaxFinishedHistory = 50;

const char* kindName(bool savepoint) {
  return savepoint ? "savepoint" : "checkpoint";
}

// Sum of the sizes of every file `metadata` references.
std::int64_t referencedSize(const thrift::CheckpointMetadata& metadata) {
  std::int64_t total = 0;
  for (const auto& op : metadata.operators) {
    for (const auto& subtask : op.subtasks) {
      total += static_cast<std::int64_t>(subtask.operatorState.size());
      for (const auto& handle : subtask.keyed) {
        for (const auto& f : handle.privateFiles)
          total += f.size;
        for (const auto& f : handle.sharedFiles)
          total += f.size;
      }
      for (const auto& f : subtask.inputChannelState)
        total += f.size;
      for (const auto& f : subtask.outputChannelState)
        total += f.size;
    }
  }
  return total;
}

// The largest n of the `chk-<n>` directories in `job_dir` (0: none).
std::int64_t newestCheckpointDirId(const fs::path& job_dir) {
  std::int64_t newest = 0;
  std::error_code ec;
  for (fs::directory_iterator it(job_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("chk-", 0) != 0) continue;
    std::int64_t id = 0;
    const char* first = name.data() + 4;
    const char* last = name.data() + name.size();
    auto [ptr, err] = std::from_chars(first, last, id);
    if (err == std::errc() && ptr == last && first != last) newest = std::max(newest, id);
  }
  return newest;
}

}  // namespace

Result<std::unique_ptr<CheckpointCoordinator>> CheckpointCoordinator::create(Options options,
                                                                             Callbacks callbacks) {
  if (options.job_id.empty()) {
    return Status::invalidArgument("checkpoint coordinator needs a job id");
  }
  std::optional<CheckpointStorage> storage;
  std::unique_ptr<CompletedCheckpointStore> store;
  std::int64_t next_id = 1;
  if (!options.settings.checkpoints_dir.empty()) {
    auto opened = CheckpointStorage::open(options.settings.checkpoints_dir);
    if (!opened) {
      return opened.status().withContext("checkpoint storage of job " + options.job_id);
    }
    store = std::make_unique<CompletedCheckpointStore>(
        *opened, options.job_id,
        static_cast<std::size_t>(std::max<std::int64_t>(options.settings.num_retained, 1)));
    if (Status s = store->recover(); !s) {
      return s.withContext("cannot recover the completed checkpoints of job " + options.job_id);
    }
    if (auto latest = store->latest()) next_id = latest->id + 1;
    next_id = std::max(next_id, newestCheckpointDirId(opened->jobDir(options.job_id)) + 1);
    storage = std::move(*opened);
  } else if (options.settings.enabled()) {
    return Status::invalidArgument("job " + options.job_id +
                                   " checkpoints periodically but has no state.checkpoints.dir");
  }
  std::unique_ptr<CheckpointCoordinator> coordinator(new CheckpointCoordinator(
      std::move(options), std::move(callbacks), std::move(storage), std::move(store), next_id));
  coordinator->thread_ = std::thread([c = coordinator.get()] { c->run(); });
  return Result<std::unique_ptr<CheckpointCoordinator>>(std::move(coordinator));
}

CheckpointCoordinator::CheckpointCoordinator(Options options, Callbacks callbacks,
                                             std::optional<CheckpointStorage> storage,
                                             std::unique_ptr<CompletedCheckpointStore> store,
                                             std::int64_t next_id)
    : options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      storage_(std::move(storage)),
      store_(std::move(store)),
      next_id_(next_id) {
  if (!store_) return;
  const auto recovered = store_->all();  // newest first
  for (auto it = recovered.rbegin(); it != recovered.rend(); ++it) {
    thrift::CheckpointInfo info;
    info.id = it->id;
    info.status = thrift::CheckpointStatus::COMPLETED;
    info.savepoint = false;
    info.triggeredAtMs = it->metadata.timestampMs;
    info.durationMs = 0;
    info.acknowledged = 0;
    info.total = 0;
    info.checkpointedSize = 0;
    info.stateSize = referencedSize(it->metadata);
    info.__set_path(it->dir.string());
    retained_ids_.insert(it->id);
    finished_.push_front(std::move(info));
  }
  if (!recovered.empty()) {
    last_completed_id_ = recovered.front().id;
    spdlog::info("job {}: recovered {} completed checkpoints (newest {}); next checkpoint id {}",
                 options_.job_id, recovered.size(), last_completed_id_, next_id_);
  }
}

CheckpointCoordinator::~CheckpointCoordinator() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

// ---- Public methods: state changes under the mutex, the thread does the rest ----

void CheckpointCoordinator::startAttempt(int attempt, std::vector<CoordinatorTask> tasks) {
  std::lock_guard lock(mutex_);
  if (attempt_ >= 0) {
    abortAllLocked("attempt " + std::to_string(attempt_) + " was superseded by attempt " +
                   std::to_string(attempt));
  }
  attempt_ = attempt;
  running_ = true;
  tasks_ = std::move(tasks);
  ended_.clear();
  final_checkpoint_requested_ = false;
  attempt_stopping_ = false;
  if (options_.settings.enabled()) {
    next_periodic_ = Clock::now() + options_.settings.interval;
  } else {
    next_periodic_.reset();
  }
  spdlog::debug("job {}: checkpoint coordinator follows attempt {} ({} subtasks)", options_.job_id,
                attempt, tasks_.size());
  wake_.notify_all();
}

void CheckpointCoordinator::stopAttempt(const std::string& reason) {
  std::lock_guard lock(mutex_);
  running_ = false;
  next_periodic_.reset();
  abortAllLocked("attempt " + std::to_string(attempt_) + " ended: " + reason);
  wake_.notify_all();
}

void CheckpointCoordinator::endOfData(int attempt, int chain_id, int subtask) {
  std::lock_guard lock(mutex_);
  if (!isCurrentSubtaskLocked(attempt, chain_id, subtask)) {
    spdlog::debug("job {}: ignoring end of data of chain {} subtask {} of attempt {}",
                  options_.job_id, chain_id, subtask, attempt);
    return;
  }
  const bool inserted = ended_.insert({chain_id, subtask}).second;
  const bool source = std::any_of(tasks_.begin(), tasks_.end(), [&](const CoordinatorTask& t) {
    return t.chain_id == chain_id && t.subtask == subtask && t.source;
  });
  if (inserted && !source) {  // sources got the trigger of every checkpoint in flight
    for (const auto& [id, pending] : pending_) {
      if (pending.phase != Phase::kTriggered || pending.acks.count({chain_id, subtask}) > 0) {
        continue;
      }
      LateTrigger late;
      late.attempt = attempt;
      late.trigger = pending.trigger;
      late.subtask.chainId = chain_id;
      late.subtask.subtask = subtask;
      late_triggers_.push_back(std::move(late));
      wake_.notify_all();
    }
  }
  if (inserted && ended_.size() == tasks_.size() && options_.settings.enabled()) {
    spdlog::info("job {}: every subtask of attempt {} ended its data; checkpointing at once",
                 options_.job_id, attempt);
    final_checkpoint_requested_ = true;
    wake_.notify_all();
  }
}

Status CheckpointCoordinator::acknowledge(const thrift::CheckpointAck& ack) {
  if (ack.jobId != options_.job_id) {
    return Status::invalidArgument("acknowledgement of job " + ack.jobId +
                                   " sent to the checkpoint coordinator of job " + options_.job_id);
  }
  std::lock_guard lock(mutex_);
  auto it = pending_.find(ack.checkpointId);
  if (it == pending_.end() || it->second.attempt != ack.attempt || !running_ ||
      attempt_ != ack.attempt || it->second.phase != Phase::kTriggered) {
    spdlog::debug(
        "job {}: ignoring acknowledgement of checkpoint {} by chain {} subtask {} of "
        "attempt {} (not pending for the current attempt)",
        options_.job_id, ack.checkpointId, ack.chainId, ack.subtask, ack.attempt);
    return Status::ok();
  }
  Pending& pending = it->second;
  const SubtaskKey key{ack.chainId, ack.subtask};
  if (pending.expected.count(key) == 0) {
    spdlog::debug(
        "job {}: ignoring acknowledgement of checkpoint {} by unknown chain {} subtask {}",
        options_.job_id, ack.checkpointId, ack.chainId, ack.subtask);
    return Status::ok();
  }
  if (!pending.acks.emplace(key, ack).second) {
    spdlog::debug(
        "job {}: ignoring duplicate acknowledgement of checkpoint {} by chain {} "
        "subtask {}",
        options_.job_id, ack.checkpointId, ack.chainId, ack.subtask);
    return Status::ok();
  }
  if (pending.acks.size() == pending.expected.size()) {
    pending.phase = Phase::kCompleting;
    wake_.notify_all();
  }
  return Status::ok();
}

void CheckpointCoordinator::decline(int attempt, std::int64_t checkpoint_id, int chain_id,
                                    int subtask, const std::string& reason) {
  std::lock_guard lock(mutex_);
  auto it = pending_.find(checkpoint_id);
  if (it == pending_.end() || it->second.attempt != attempt ||
      !isCurrentSubtaskLocked(attempt, chain_id, subtask) ||
      it->second.phase != Phase::kTriggered) {
    spdlog::debug("job {}: ignoring decline of checkpoint {} by chain {} subtask {} of attempt {}",
                  options_.job_id, checkpoint_id, chain_id, subtask, attempt);
    return;
  }
  abortLocked(checkpoint_id,
              std::string(kindName(it->second.savepoint)) + " " + std::to_string(checkpoint_id) +
                  " was declined by chain " + std::to_string(chain_id) + " subtask " +
                  std::to_string(subtask) + ": " + reason,
              /*counted=*/true, /*notify=*/true);
}

std::shared_future<Result<std::string>> CheckpointCoordinator::triggerSavepoint(
    const std::string& target_uri, bool stop, bool drain) {
  auto promise = std::make_shared<std::promise<Result<std::string>>>();
  std::shared_future<Result<std::string>> future = promise->get_future().share();
  const std::string target = target_uri.empty() ? options_.settings.savepoints_dir : target_uri;
  if (target.empty()) {
    promise->set_value(Status::invalidArgument(
        "no savepoint directory: give a target directory or set state.savepoints.dir"));
    return future;
  }
  if (auto parsed = parseCheckpointUri(target); !parsed) {
    promise->set_value(parsed.status().withContext("savepoint target"));
    return future;
  }
  std::lock_guard lock(mutex_);
  if (!running_ || tasks_.empty() || attempt_stopping_) {
    promise->set_value(Status::failed("cannot take a savepoint: job " + options_.job_id +
                                      (attempt_stopping_ ? " is finishing" : " is not running")));
    return future;
  }
  savepoint_requests_.push_back({target, stop, drain, promise});
  wake_.notify_all();
  return future;
}

std::vector<thrift::CheckpointInfo> CheckpointCoordinator::history() const {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  std::vector<thrift::CheckpointInfo> out;
  out.reserve(pending_.size() + finished_.size());
  for (const auto& [id, pending] : pending_)
    out.push_back(infoLocked(pending, now));
  out.insert(out.end(), finished_.begin(), finished_.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.id > b.id; });
  if (restored_from_ > 0) {
    for (auto& info : out) {
      if (info.id == restored_from_ && !info.savepoint) info.__set_restoredFrom(true);
    }
  }
  return out;
}

Result<std::optional<CompletedCheckpoint>> CheckpointCoordinator::latestForRestore() const {
  if (!store_) return std::optional<CompletedCheckpoint>();
  auto usable = store_->latestUsable(/*verify_files=*/true);
  if (usable) return std::optional<CompletedCheckpoint>(std::move(*usable));
  if (usable.status().code() == Status::Code::kNotFound) {
    return std::optional<CompletedCheckpoint>();
  }
  return usable.status();
}

void CheckpointCoordinator::markRestoredFrom(std::int64_t checkpoint_id) {
  std::lock_guard lock(mutex_);
  restored_from_ = checkpoint_id;
}

std::int64_t CheckpointCoordinator::lastCompletedId() const {
  std::lock_guard lock(mutex_);
  return last_completed_id_;
}

// ---- The coordinator's thread ----

void CheckpointCoordinator::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (doWork(lock)) continue;
    if (auto wake = nextWakeLocked()) {
      wake_.wait_until(lock, *wake);
    } else {
      wake_.wait(lock);
    }
  }
  // Shutting down: everything still pending is abandoned, without callbacks.
  std::vector<std::int64_t> ids;
  for (const auto& [id, pending] : pending_)
    ids.push_back(id);
  for (std::int64_t id : ids) {
    abortLocked(id, "the checkpoint coordinator of job " + options_.job_id + " shut down",
                /*counted=*/false, /*notify=*/false);
  }
  abortAllLocked("the checkpoint coordinator of job " + options_.job_id + " shut down");
  std::vector<Aborted> aborted = std::move(aborted_);
  aborted_.clear();
  lock.unlock();
  for (const auto& a : aborted)
    cleanUpAborted(a, /*callbacks=*/false);
}

bool CheckpointCoordinator::doWork(std::unique_lock<std::mutex>& lock) {
  const auto now = Clock::now();
  if (options_.settings.timeout.count() > 0) {
    std::vector<std::int64_t> expired;
    for (const auto& [id, pending] : pending_) {
      if (pending.phase != Phase::kCompleting &&
          now >= pending.triggered_at + options_.settings.timeout) {
        expired.push_back(id);
      }
    }
    for (std::int64_t id : expired) {
      const Pending& pending = pending_.at(id);
      std::string missing;
      int named = 0;
      for (const auto& key : pending.expected) {
        if (pending.acks.count(key) > 0) continue;
        if (named++ == 4) {
          missing += ", ...";
          break;
        }
        missing += (missing.empty() ? "" : ", ") + std::string("chain ") +
                   std::to_string(key.first) + " subtask " + std::to_string(key.second);
      }
      abortLocked(id,
                  std::string(kindName(pending.savepoint)) + " " + std::to_string(id) +
                      " expired before completing (timeout " +
                      std::to_string(options_.settings.timeout.count()) + " ms; " +
                      std::to_string(pending.acks.size()) + "/" +
                      std::to_string(pending.expected.size()) +
                      " subtasks acknowledged; missing: " + missing + ")",
                  /*counted=*/true, /*notify=*/true);
    }
  }

  if (!aborted_.empty() || !fail_job_reasons_.empty()) {
    std::vector<Aborted> aborted = std::move(aborted_);
    aborted_.clear();
    std::vector<std::string> reasons = std::move(fail_job_reasons_);
    fail_job_reasons_.clear();
    lock.unlock();
    for (const auto& a : aborted)
      cleanUpAborted(a, /*callbacks=*/true);
    for (const auto& reason : reasons) {
      spdlog::error("job {}: {}", options_.job_id, reason);
      if (callbacks_.fail_job) callbacks_.fail_job(reason);
    }
    lock.lock();
    return true;
  }

  if (!late_triggers_.empty()) {
    std::vector<LateTrigger> late = std::move(late_triggers_);
    late_triggers_.clear();
    lock.unlock();
    for (const auto& t : late) {
      if (callbacks_.trigger) callbacks_.trigger(t.attempt, t.trigger, {t.subtask});
    }
    lock.lock();
    return true;
  }

  for (auto& [id, pending] : pending_) {
    if (pending.phase == Phase::kCompleting && !pending.completion_started) {
      completePending(lock, id);
      return true;
    }
  }

  if (auto id = nextTriggerLocked(now)) {
    triggerPending(lock, *id);
    return true;
  }
  return false;
}

std::optional<std::int64_t> CheckpointCoordinator::nextTriggerLocked(Clock::time_point now) {
  if (!running_ || tasks_.empty()) return std::nullopt;
  if (attempt_stopping_) {
    failSavepointRequestsLocked("the job is finishing");
    return std::nullopt;
  }
  const auto max_concurrent = static_cast<std::size_t>(
      std::max<std::int64_t>(options_.settings.max_concurrent_checkpoints, 1));
  if (pending_.size() >= max_concurrent) return std::nullopt;

  Pending pending;
  if (!savepoint_requests_.empty()) {
    SavepointRequest request = std::move(savepoint_requests_.front());
    savepoint_requests_.pop_front();
    pending.savepoint = true;
    pending.stop = request.stop;
    pending.drain = request.drain;
    pending.savepoint_target = std::move(request.target_uri);
    pending.promise = std::move(request.promise);
  } else if (final_checkpoint_requested_ && storage_) {
    final_checkpoint_requested_ = false;
  } else if (next_periodic_ && now >= *next_periodic_ && storage_ &&
             (!last_end_ || now >= *last_end_ + options_.settings.min_pause)) {
    next_periodic_ = now + options_.settings.interval;
  } else {
    return std::nullopt;
  }
  // Once every subtask ended its data, a checkpoint is the job's last: it carries `stop`, and the
  // subtasks finish when it completed.
  if (!pending.savepoint && ended_.size() == tasks_.size()) pending.stop = true;
  pending.id = next_id_++;
  pending.attempt = attempt_;
  pending.triggered_at = now;
  pending.triggered_at_ms = unixMillis();
  for (const auto& task : tasks_)
    pending.expected.insert({task.chain_id, task.subtask});
  const std::int64_t id = pending.id;
  pending_.emplace(id, std::move(pending));
  return id;
}

std::optional<CheckpointCoordinator::Clock::time_point> CheckpointCoordinator::nextWakeLocked()
    const {
  std::optional<Clock::time_point> wake;
  auto consider = [&](Clock::time_point t) {
    if (!wake || t < *wake) wake = t;
  };
  if (options_.settings.timeout.count() > 0) {
    for (const auto& [id, pending] : pending_) {
      if (pending.phase != Phase::kCompleting) {
        consider(pending.triggered_at + options_.settings.timeout);
      }
    }
  }
  const auto max_concurrent = static_cast<std::size_t>(
      std::max<std::int64_t>(options_.settings.max_concurrent_checkpoints, 1));
  if (running_ && !tasks_.empty() && pending_.size() < max_concurrent && next_periodic_) {
    Clock::time_point t = *next_periodic_;
    if (last_end_) t = std::max(t, *last_end_ + options_.settings.min_pause);
    consider(t);
  }
  return wake;
}

void CheckpointCoordinator::triggerPending(std::unique_lock<std::mutex>& lock, std::int64_t id) {
  const Pending& before = pending_.at(id);
  const bool savepoint = before.savepoint;
  const std::string target = before.savepoint_target;
  lock.unlock();

  Result<fs::path> dir = savepoint ? createSavepointDir(target, options_.job_id)
                                   : storage_->createCheckpointDir(options_.job_id, id);

  lock.lock();
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    // Aborted while its directory was being created: nothing else knows the directory.
    if (dir) {
      lock.unlock();
      cleanUpAborted(Aborted{id, 0, savepoint, *dir, false, false, {}, nullptr},
                     /*callbacks=*/false);
      lock.lock();
    }
    return;
  }
  if (!dir) {
    abortLocked(id,
                "cannot create the directory of " + std::string(kindName(savepoint)) + " " +
                    std::to_string(id) + ": " + dir.status().message(),
                /*counted=*/true, /*notify=*/false);
    return;
  }
  Pending& pending = it->second;
  pending.dir = *dir;
  pending.phase = Phase::kTriggered;

  thrift::CheckpointTrigger trigger;
  trigger.checkpointId = id;
  trigger.timestampMs = pending.triggered_at_ms;
  trigger.__set_savepoint(savepoint);
  trigger.__set_stop(pending.stop);
  trigger.__set_drain(pending.drain);
  trigger.targetDir = dir->string();
  pending.trigger = trigger;
  std::vector<thrift::SubtaskId> targets;
  for (const auto& task : tasks_) {
    if (task.source || ended_.count({task.chain_id, task.subtask}) > 0) {
      thrift::SubtaskId target_subtask;
      target_subtask.chainId = task.chain_id;
      target_subtask.subtask = task.subtask;
      targets.push_back(target_subtask);
    }
  }
  const int attempt = pending.attempt;
  lock.unlock();

  spdlog::info("job {}: triggering {} {} of attempt {} at {} subtasks into {}", options_.job_id,
               kindName(savepoint), id, attempt, targets.size(), trigger.targetDir);
  if (callbacks_.trigger) callbacks_.trigger(attempt, trigger, targets);
  lock.lock();
}

void CheckpointCoordinator::completePending(std::unique_lock<std::mutex>& lock, std::int64_t id) {
  Pending& in_map = pending_.at(id);
  in_map.completion_started = true;
  const Pending pending = in_map;
  lock.unlock();

  const thrift::CheckpointMetadata metadata = buildMetadata(pending);
  const Status written =
      pending.savepoint ? writeSavepointMetadata(pending.dir, metadata) : store_->add(metadata);
  std::set<std::int64_t> retained;
  if (written && !pending.savepoint) {
    for (const auto& c : store_->all())
      retained.insert(c.id);
  }

  lock.lock();
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // only the shutdown removes completing checkpoints
  const bool current = running_ && attempt_ == pending.attempt;
  if (!written) {
    abortLocked(id,
                "cannot write the metadata of " + std::string(kindName(pending.savepoint)) + " " +
                    std::to_string(id) + ": " + written.message(),
                /*counted=*/true, /*notify=*/current);
    return;
  }
  const auto now = Clock::now();
  thrift::CheckpointInfo info = infoLocked(it->second, now);
  info.status = thrift::CheckpointStatus::COMPLETED;
  info.__set_path(pending.dir.string());
  pending_.erase(it);
  last_end_ = now;
  if (current && pending.stop) attempt_stopping_ = true;
  if (!pending.savepoint) {
    last_completed_id_ = id;
    consecutive_failures_ = 0;
    retained_ids_ = std::move(retained);
  }
  recordFinishedLocked(std::move(info));
  lock.unlock();

  spdlog::info(
      "job {}: completed {} {} of attempt {} in {} ms ({})", options_.job_id,
      kindName(pending.savepoint), id, pending.attempt,
      std::chrono::duration_cast<std::chrono::milliseconds>(now - pending.triggered_at).count(),
      pending.dir.string());
  if (current && callbacks_.notify_complete) callbacks_.notify_complete(pending.attempt, id);
  if (pending.promise) pending.promise->set_value(pending.dir.string());
  lock.lock();
}

void CheckpointCoordinator::cleanUpAborted(const Aborted& aborted, bool callbacks) {
  if (!aborted.dir.empty()) {
    if (aborted.savepoint) {
      std::error_code ec;
      fs::remove_all(aborted.dir, ec);
      if (ec) {
        spdlog::warn("job {}: cannot delete the directory {} of failed savepoint {}: {}",
                     options_.job_id, aborted.dir.string(), aborted.id, ec.message());
      }
    } else if (storage_) {
      if (Status s = storage_->deleteCheckpoint(options_.job_id, aborted.id); !s) {
        spdlog::warn("job {}: cannot delete failed checkpoint {}: {}", options_.job_id, aborted.id,
                     s.message());
      }
    }
  }
  if (aborted.failed) {
    spdlog::warn("job {}: {}", options_.job_id, aborted.failure);
  } else if (!aborted.failure.empty()) {
    spdlog::info("job {}: aborted {} {}: {}", options_.job_id, kindName(aborted.savepoint),
                 aborted.id, aborted.failure);
  }
  if (callbacks && aborted.notify && callbacks_.notify_aborted) {
    callbacks_.notify_aborted(aborted.attempt, aborted.id);
  }
  if (aborted.promise) aborted.promise->set_value(Status::failed(aborted.failure));
}

// ---- Helpers under the mutex ----

void CheckpointCoordinator::abortLocked(std::int64_t id, const std::string& failure, bool counted,
                                        bool notify) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  const auto now = Clock::now();
  Pending& pending = it->second;
  thrift::CheckpointInfo info = infoLocked(pending, now);
  info.status = thrift::CheckpointStatus::FAILED;
  info.__set_failure(failure);
  recordFinishedLocked(std::move(info));
  const bool savepoint = pending.savepoint;
  aborted_.push_back(Aborted{id, pending.attempt, savepoint, pending.dir, notify, counted, failure,
                             pending.promise});
  pending_.erase(it);
  last_end_ = now;
  if (counted && !savepoint) countFailureLocked(failure);
  wake_.notify_all();
}

void CheckpointCoordinator::abortAllLocked(const std::string& failure) {
  std::vector<std::int64_t> ids;
  for (const auto& [id, pending] : pending_) {
    if (pending.phase != Phase::kCompleting) ids.push_back(id);
  }
  for (std::int64_t id : ids)
    abortLocked(id, failure, /*counted=*/false, /*notify=*/false);
  failSavepointRequestsLocked(failure);
  final_checkpoint_requested_ = false;
}

void CheckpointCoordinator::failSavepointRequestsLocked(const std::string& reason) {
  for (auto& request : savepoint_requests_)
    request.promise->set_value(Status::failed("savepoint was not taken: " + reason));
  savepoint_requests_.clear();
}

void CheckpointCoordinator::countFailureLocked(const std::string& failure) {
  ++consecutive_failures_;
  const std::int64_t tolerable = options_.settings.tolerable_failed_checkpoints;
  if (consecutive_failures_ > tolerable) {
    fail_job_reasons_.push_back(std::to_string(consecutive_failures_) +
                                " checkpoints failed in a row, more than execution.checkpointing."
                                "tolerable-failed-checkpoints (" +
                                std::to_string(tolerable) + "); the last: " + failure);
    consecutive_failures_ = 0;
  }
}

void CheckpointCoordinator::recordFinishedLocked(thrift::CheckpointInfo info) {
  finished_.push_front(std::move(info));
  std::stable_sort(finished_.begin(), finished_.end(),
                   [](const auto& a, const auto& b) { return a.id > b.id; });
  auto removable = [&](const thrift::CheckpointInfo& entry) {
    return entry.savepoint || entry.status != thrift::CheckpointStatus::COMPLETED ||
           retained_ids_.count(entry.id) == 0;
  };
  std::size_t others = 0;
  for (const auto& entry : finished_) {
    if (removable(entry)) ++others;
  }
  // Drops the oldest entries that are not retained checkpoints beyond the limit.
  for (auto it = finished_.end(); others > kMaxFinishedHistory && it != finished_.begin();) {
    --it;
    if (removable(*it)) {
      it = finished_.erase(it);
      --others;
    }
  }
}

thrift::CheckpointInfo CheckpointCoordinator::infoLocked(const Pending& pending,
                                                         Clock::time_point now) const {
  thrift::CheckpointInfo info;
  info.id = pending.id;
  info.status = thrift::CheckpointStatus::IN_PROGRESS;
  info.savepoint = pending.savepoint;
  info.triggeredAtMs = pending.triggered_at_ms;
  info.durationMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - pending.triggered_at).count();
  info.acknowledged = static_cast<std::int32_t>(pending.acks.size());
  info.total = static_cast<std::int32_t>(pending.expected.size());
  info.checkpointedSize = 0;
  info.stateSize = 0;
  for (const auto& [key, ack] : pending.acks) {
    info.checkpointedSize += ack.stats.checkpointedSize;
    info.stateSize += ack.stats.stateSize;
  }
  return info;
}

bool CheckpointCoordinator::isCurrentSubtaskLocked(int attempt, int chain_id, int subtask) const {
  if (!running_ || attempt != attempt_) return false;
  return std::any_of(tasks_.begin(), tasks_.end(), [&](const CoordinatorTask& task) {
    return task.chain_id == chain_id && task.subtask == subtask;
  });
}

thrift::CheckpointMetadata CheckpointCoordinator::buildMetadata(const Pending& pending) const {
  thrift::CheckpointMetadata metadata;
  metadata.formatVersion = kCheckpointFormatVersion;
  metadata.jobId = options_.job_id;
  metadata.checkpointId = pending.id;
  metadata.timestampMs = pending.triggered_at_ms;
  metadata.isSavepoint = pending.savepoint;
  metadata.stateBackend = options_.state_backend;

  // (uid, subtask index) -> that subtask's state of the vertex.
  std::map<std::pair<std::string, int>, const thrift::VertexSubtaskState*> states;
  for (const auto& [key, ack] : pending.acks) {
    for (const auto& vertex : ack.vertices)
      states[{vertex.uid, key.second}] = &vertex;
  }
  std::set<std::string> known;
  for (const auto& vertex : options_.vertices) {
    known.insert(vertex.uid);
    thrift::OperatorState op;
    op.uid = vertex.uid;
    op.parallelism = vertex.parallelism;
    op.maxParallelism = vertex.max_parallelism;
    for (int i = 0; i < vertex.parallelism; ++i) {
      thrift::SubtaskState subtask;
      subtask.subtask = i;
      if (auto found = states.find({vertex.uid, i}); found != states.end()) {
        subtask.operatorState = found->second->operatorState;
        subtask.keyed = found->second->keyed;
        if (!found->second->inputChannelState.empty()) {
          subtask.__set_inputChannelState(found->second->inputChannelState);
        }
        if (!found->second->outputChannelState.empty()) {
          subtask.__set_outputChannelState(found->second->outputChannelState);
        }
      }
      op.subtasks.push_back(std::move(subtask));
    }
    metadata.operators.push_back(std::move(op));
  }
  for (const auto& [key, state] : states) {
    if (known.count(key.first) == 0) {
      spdlog::warn("job {}: {} {} has state of unknown vertex uid '{}' (subtask {}); dropped",
                   options_.job_id, kindName(pending.savepoint), pending.id, key.first, key.second);
    }
  }
  return metadata;
}

}  // namespace weir::engine
