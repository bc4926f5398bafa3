#include "runtime/task.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <set>

#include "checkpoint/channel_state_file.h"
#include "checkpoint/heap_state_file.h"
#include "weir/key_groups.h"

namespace weir::engine {

namespace {

using Clock = std::chrono::steady_clock;

// How long an idle source waits before it is polled again.
constexpr auto kIdleSourceBackoff = std::chrono::milliseconds(1);

}  // namespace

const char* taskStateName(TaskState s) {
  switch (s) {
    case TaskState::kCreated:
      return "CREATED";
    case TaskState::kRunning:
      return "RUNNING";
    case TaskState::kFinished:
      return "FINISHED";
    case TaskState::kCanceled:
      return "CANCELED";
    case TaskState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

StreamTask::StreamTask(TaskDeployment deployment, JobArgs args, Options options)
    : deployment_(std::move(deployment)), args_(std::move(args)), options_(options) {
  if (deployment_.spec.num_input_channels > 0) {
    gate_ = std::make_unique<InputGate>(deployment_.spec.num_input_channels);
  }
  is_source_ = deployment_.spec.num_input_channels == 0;
  deployment_.spec.auto_watermark_interval_ms = options_.auto_watermark_interval.count();
  deployment_.spec.state_backend = options_.state_backend;
  deployment_.spec.timers_in_kv_store =
      options_.state_backend == StateBackendKind::kRocksDb && options_.timers_in_kv_store;
}

StreamTask::~StreamTask() {
  // The chain references the partitions and the stores: destroy it first.
  chain_.reset();
  kv_stores_.clear();
}

void StreamTask::addOutput(std::unique_ptr<ResultPartition> partition) {
  outputs_.push_back(std::move(partition));
}

void StreamTask::setCheckpointing(TaskCheckpointing checkpointing) {
  checkpointing_ = std::move(checkpointing);
  deployment_.spec.checkpointing = checkpointing_.enabled && checkpointing_.periodic;
}

void StreamTask::setRestore(thrift::TaskRestore restore) {
  restore_ = std::move(restore);
}

Status StreamTask::init(const ProgramPtr& program) {
  if (outputs_.size() != deployment_.spec.outputs.size()) {
    return Status::internal("task " + deployment_.task_name + ": outputs not wired");
  }
  if (checkpointing_.enabled && checkpointing_.writer == nullptr) {
    return Status::internal("task " + deployment_.task_name + ": checkpoints without a writer");
  }
  channel_ended_.assign(static_cast<std::size_t>(deployment_.spec.num_input_channels), 0);
  if (gate_) {
    gate_->setBarrierListener([this] {
      barrier_queued_.store(true, std::memory_order_release);
      for (const auto& o : outputs_)
        o->pool().wakeAll();
    });
  }
  Status s = createChain(program, deployment_.spec, *this, chain_);
  if (s.isOk() && restore_) s = restoreChain();
  return s.withContext("task " + deployment_.task_name);
}

std::string StreamTask::vertexUid(std::size_t index) const {
  const ChainSpec& spec = deployment_.spec;
  return index < spec.vertex_uids.size() ? spec.vertex_uids[index]
                                         : "vertex-" + std::to_string(spec.vertex_ids[index]);
}

const thrift::VertexSubtaskState* StreamTask::restoredState(std::size_t index) const {
  if (!restore_) return nullptr;
  const std::string uid = vertexUid(index);
  for (const auto& v : restore_->vertices) {
    if (v.uid == uid) return &v;
  }
  return nullptr;
}

namespace {

bool holdsRocksDbState(const thrift::VertexSubtaskState& state) {
  return std::any_of(state.keyed.begin(), state.keyed.end(), [](const auto& h) {
    return h.kind == thrift::KeyedStateKind::ROCKSDB_INCREMENTAL;
  });
}

KeyGroupRange subtaskRange(const ChainSpec& spec, std::size_t index) {
  return keyGroupRangeForSubtask(spec.subtask_index, spec.parallelism, spec.max_parallelism[index]);
}

}  // namespace

Status StreamTask::restoreChain() {
  const ChainSpec& spec = deployment_.spec;
  ChainRestore restore;
  restore.checkpoint_id = restore_->checkpointId;
  const std::filesystem::path base = restore_->baseDir;
  for (std::size_t i = 0; i < spec.vertex_ids.size(); ++i) {
    const thrift::VertexSubtaskState* state = restoredState(i);
    if (state == nullptr) continue;
    if (i == 0) {
      restored_input_state_ = state->inputChannelState;
      restored_output_state_ = state->outputChannelState;
    }
    VertexRestore v;
    v.vertex_id = spec.vertex_ids[i];
    v.operator_state = state->operatorState;
    if (!state->keyed.empty()) {
      const bool rocks = holdsRocksDbState(*state);
      const bool rocks_backend = options_.state_backend == StateBackendKind::kRocksDb;
      if (rocks != rocks_backend) {
        return Status::invalidArgument(
            "operator '" + vertexUid(i) + "': checkpoint " +
            std::to_string(restore_->checkpointId) + " holds its keyed state for the " +
            (rocks ? "rocksdb" : "heap") + " state backend, but the job runs on the " +
            stateBackendName(options_.state_backend) + " backend");
      }
      if (!rocks) {
        const KeyGroupRange range = subtaskRange(spec, i);
        auto groups = readHeapKeyedState(base, state->keyed, range.start, range.end);
        if (!groups.isOk()) {
          return groups.status().withContext("restoring the keyed state of '" + vertexUid(i) +
                                             "'");
        }
        v.key_group_start = range.start;
        v.key_groups = std::move(*groups);
      }
      // RocksDB stores are restored when the operator opens them (openKvStore).
    }
    restore.vertices.push_back(std::move(v));
  }
  return chain_->restoreState(restore);
}

std::int64_t StreamTask::currentProcessingTime() const noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status StreamTask::openKvStore(int vertex_id, KvStore*& out) noexcept {
  out = nullptr;
  if (options_.rocksdb == nullptr) {
    return Status::invalidArgument("the RocksDB state backend is not available to this task");
  }
  const ChainSpec& spec = deployment_.spec;
  const auto at = std::find(spec.vertex_ids.begin(), spec.vertex_ids.end(), vertex_id);
  if (at == spec.vertex_ids.end()) {
    return Status::invalidArgument("vertex " + std::to_string(vertex_id) + " is not part of task " +
                                   deployment_.task_name);
  }
  try {
    if (auto it = kv_stores_.find(vertex_id); it != kv_stores_.end()) {
      out = it->second.get();
      return Status::ok();
    }
    const auto index = static_cast<std::size_t>(at - spec.vertex_ids.begin());
    const std::string uid = index < spec.vertex_uids.size() ? spec.vertex_uids[index]
                                                            : "vertex-" + std::to_string(vertex_id);
    const std::string job = options_.job_id.empty() ? "job" : options_.job_id;
    const std::string name = rocksDbStoreName(job, uid, deployment_.subtask);
    const thrift::VertexSubtaskState* restored = restoredState(index);
    Result<std::unique_ptr<RocksDbKvStore>> store = Status::internal("unset");
    if (restored != nullptr && !restored->keyed.empty()) {
      const KeyGroupRange range = subtaskRange(spec, index);
      store = options_.rocksdb->openStoreFrom(name, restore_->baseDir, restored->keyed,
                                              range.start, range.end);
      // Incremental checkpoints build on the restored files when the store is the very one that
      // was checkpointed (same key groups) into this job's checkpoint directory; after rescaling,
      // or from a savepoint, the first checkpoint uploads all.
      if (store.isOk() && restored->keyed.size() == 1 &&
          std::filesystem::path(restore_->baseDir) == checkpointing_.job_dir &&
          restored->keyed[0].keyGroupStart == range.start &&
          restored->keyed[0].keyGroupEnd == range.end) {
        previous_shared_[vertex_id] = restored->keyed[0].sharedFiles;
      }
    } else {
      store = options_.rocksdb->openStore(name);
    }
    if (!store.isOk()) return store.status();
    out = store->get();
    kv_stores_.emplace(vertex_id, std::move(*store));
    num_kv_stores_.store(kv_stores_.size(), std::memory_order_relaxed);
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::internal(std::string("opening a RocksDB store: ") + e.what());
  }
}

std::size_t StreamTask::openKvStores() const {
  return num_kv_stores_.load(std::memory_order_relaxed);
}

Status StreamTask::firePendingTimers(Clock::time_point& next) {
  next = Clock::time_point::max();
  std::int64_t due = chain_->nextProcessingTime();
  if (due == kNoDeadline) return Status::ok();
  std::int64_t now = currentProcessingTime();
  if (now >= due) {
    const auto start = Clock::now();
    metrics_.busy.begin(start);
    Status s = chain_->onProcessingTime(now);
    metrics_.busy.end(Clock::now());
    if (!s.isOk()) return s;
    due = chain_->nextProcessingTime();
  }
  next = steadyDeadline(due);
  return Status::ok();
}

StreamTask::Clock::time_point StreamTask::steadyDeadline(std::int64_t due) const {
  if (due == kNoDeadline) return Clock::time_point::max();
  const std::int64_t wait_ms = std::max<std::int64_t>(0, due - currentProcessingTime());
  return Clock::now() + std::chrono::milliseconds(wait_ms);
}

Status StreamTask::forward(const WatermarkValve::Output& out) {
  if (out.watermark_advanced) {
    if (Status s = chain_->processWatermark(out.watermark); !s.isOk()) return s;
  }
  if (out.status_changed) return chain_->processWatermarkStatus(out.idle);
  return Status::ok();
}

const VertexCounters* StreamTask::counters(int vertex_id) const {
  return chain_ ? chain_->counters(vertex_id) : nullptr;
}

Status StreamTask::result() const {
  std::lock_guard<std::mutex> lock(mu_);
  return result_;
}

void StreamTask::cancel() {
  cancelled_.store(true, std::memory_order_release);
  if (gate_) gate_->wake();
  for (auto& o : outputs_)
    o->pool().wakeAll();
  { std::lock_guard<std::mutex> lock(mu_); }
  idle_cv_.notify_all();
  { std::lock_guard<std::mutex> lock(mail_mu_); }
  mail_cv_.notify_all();
}

void StreamTask::fail(const Status& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (external_failure_.isOk())
      external_failure_ = reason.isOk() ? Status::internal("failed") : reason;
  }
  cancel();
}

void StreamTask::run() {
  state_.store(TaskState::kRunning, std::memory_order_release);
  Status s = chain_->open();
  if (s.isOk() && !restored_output_state_.empty()) s = replayOutputState();
  if (s.isOk()) s = is_source_ ? runSource() : runInputs();
  // Stopped with a savepoint: the input did not end, unless the stop drains it.
  if (s.isOk() && (!stopped_ || stop_drain_)) s = chain_->endInput();
  if (s.isOk() && !stopped_ && checkpointing_.periodic &&
      !cancelled_.load(std::memory_order_acquire)) {
    // Downstream tasks may end too; this one stays until a checkpoint covers all it did.
    finishOutputs();
    outputs_finished_ = true;
    data_ended_ = true;
    if (checkpointing_.end_of_data) checkpointing_.end_of_data();
    s = awaitFinalCheckpoint();
  }
  if (capture_) {
    // The task ends with an unaligned checkpoint's in-flight data incomplete: it never completes.
    if (capture_->discard) capture_->discard();
    capture_.reset();
  }
  if (settling_) {
    settling_->discard();
    settling_.reset();
  }
  Status closed = chain_->close();
  if (s.isOk()) s = std::move(closed);
  // Keyed state dies with the task (it survives through checkpoints): the chain is closed and no
  // longer touches the stores.
  kv_stores_.clear();
  num_kv_stores_.store(0, std::memory_order_relaxed);
  if (s.isOk() && cancelled_.load(std::memory_order_acquire)) s = Status::cancelled();
  if (s.code() == Status::Code::kCancelled) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!external_failure_.isOk()) s = external_failure_;
  }
  if (s.isOk() && stopped_ && !stop_drain_) {
    for (auto& o : outputs_)
      o->discard();  // every task of the job stops at the same savepoint
  } else if (s.isOk()) {
    if (!outputs_finished_) finishOutputs();
  } else {
    for (auto& o : outputs_)
      o->discard();
  }

  TaskState final_state = TaskState::kFinished;
  if (!s.isOk()) {
    final_state = s.code() == Status::Code::kCancelled ? TaskState::kCanceled : TaskState::kFailed;
    if (final_state == TaskState::kFailed) {
      spdlog::error("task {} failed: {}", deployment_.task_name, s.message());
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = s.withContext("task " + deployment_.task_name);
  }
  state_.store(final_state, std::memory_order_release);
  if (on_done) on_done(*this);
}

Status StreamTask::runSource() {
  auto flush_deadline = Clock::time_point::max();
  auto timer_deadline = Clock::time_point::min();  // check at once
  for (;;) {
    if (cancelled_.load(std::memory_order_acquire)) return Status::cancelled();
    bool resumed = false;
    if (Status s = handleMail(resumed); !s.isOk()) return s;
    if (stopped_) return Status::ok();
    if (resumed) continue;
    if (Clock::now() >= timer_deadline) {
      if (Status s = firePendingTimers(timer_deadline); !s.isOk()) return s;
    }
    if (alignedTimeoutOn() && Clock::now() >= next_promotion_check_) checkAlignedTimeout();
    const auto wake_at = std::min(
        timer_deadline, alignedTimeoutOn() ? next_promotion_check_ : Clock::time_point::max());
    if (!awaitOutputBuffers(flush_deadline, wake_at)) continue;
    const auto start = Clock::now();
    metrics_.busy.begin(start);
    SourceStatus status = SourceStatus::kMoreAvailable;
    std::size_t emitted = 0;
    Status s = chain_->pollSource(records_per_call_, status, emitted);
    const auto now = Clock::now();
    metrics_.busy.end(now);
    if (!s.isOk()) return s;
    adaptRecordsPerCall(emitted, now - start);
    if (status == SourceStatus::kEndOfInput) {
      // Event time ends with the input: every event-time timer fires.
      return chain_->processWatermark(kMaxWatermark);
    }
    if (status == SourceStatus::kNothingAvailable) {
      flushOutputs();
      flush_deadline = Clock::time_point::max();
      metrics_.idle.begin(now);
      std::unique_lock<std::mutex> lock(mu_);
      idle_cv_.wait_until(lock, std::min(now + kIdleSourceBackoff, wake_at), [&] {
        return cancelled_.load(std::memory_order_acquire) || hasMail();
      });
      metrics_.idle.end(Clock::now());
      continue;
    }
    if (now >= flush_deadline) {
      flushOutputs();
      flush_deadline = Clock::time_point::max();
    }
    if (flush_deadline == Clock::time_point::max() && anyPendingOutput()) {
      flush_deadline = now + options_.buffer_timeout;
    }
  }
}

bool StreamTask::outputsAvailable() const {
  for (const auto& o : outputs_) {
    if (!o->pool().available()) return false;
  }
  return true;
}

bool StreamTask::awaitOutputBuffers(Clock::time_point& flush_deadline, Clock::time_point wake_at) {
  for (auto& o : outputs_) {
    if (o->pool().available()) continue;
    // Back-pressured: the task waits here, between records, where mail (a checkpoint trigger)
    // and barriers still reach it, rather than inside its next record.
    if (Clock::now() >= flush_deadline) {
      flushOutputs();
      flush_deadline = Clock::time_point::max();
    }
    metrics_.backpressured.begin(Clock::now());
    const bool available = o->pool().awaitAvailable(std::min(flush_deadline, wake_at), cancelled_,
                                                    has_mail_, &barrier_queued_);
    metrics_.backpressured.end(Clock::now());
    if (!available) return false;
  }
  return true;
}

Status StreamTask::replayInputState() {
  const std::filesystem::path base = restore_->baseDir;
  for (const auto& file : restored_input_state_) {
    Status s = readChannelStateFile(
        base, file, [&](int channel, const std::uint8_t* data, std::size_t size) {
          if (channel < 0 || channel >= gate_->numChannels()) {
            return Status::corruption("in-flight state of input channel " +
                                      std::to_string(channel) + " of a task with " +
                                      std::to_string(gate_->numChannels()) + " input channels");
          }
          return readAll(channel, data, size);
        });
    if (!s.isOk()) return s.withContext("replaying the in-flight state " + file.path);
    spdlog::info("task {}: replayed {} bytes of in-flight input from checkpoint {}",
                 deployment_.task_name, file.size, restore_->checkpointId);
  }
  restored_input_state_.clear();
  return Status::ok();
}

Status StreamTask::replayOutputState() {
  const std::filesystem::path base = restore_->baseDir;
  int total = 0;
  for (const auto& o : outputs_)
    total += o->numChannels();
  std::int64_t buffers = 0;
  for (const auto& file : restored_output_state_) {
    // Channels are numbered over the outputs in order (see performCheckpoint).
    Status s = readChannelStateFile(
        base, file, [&](int channel, const std::uint8_t* data, std::size_t size) {
          if (channel < 0 || channel >= total) {
            return Status::corruption("in-flight state of output channel " +
                                      std::to_string(channel) + " of a task with " +
                                      std::to_string(total) + " output channels");
          }
          for (const auto& o : outputs_) {
            if (channel < o->numChannels()) {
              o->emitRecovered(channel, data, size);
              break;
            }
            channel -= o->numChannels();
          }
          ++buffers;
          return Status::ok();
        });
    if (!s.isOk()) return s.withContext("sending the in-flight output " + file.path);
    spdlog::info("task {}: sent {} buffers ({} bytes) of in-flight output from checkpoint {} again",
                 deployment_.task_name, buffers, file.size, restore_->checkpointId);
  }
  restored_output_state_.clear();
  return Status::ok();
}

StreamTask::Clock::time_point StreamTask::alignmentDeadline() const {
  if (aligning_ == nullptr || aligning_->savepoint || !checkpointing_.unaligned ||
      checkpointing_.aligned_timeout.count() <= 0) {
    return Clock::time_point::max();
  }
  const std::int64_t left_ms =
      aligning_->timestamp_ms + checkpointing_.aligned_timeout.count() - currentProcessingTime();
  return Clock::now() + std::chrono::milliseconds(std::max<std::int64_t>(0, left_ms));
}

Status StreamTask::runInputs() {
  if (!restored_input_state_.empty()) {
    if (Status s = replayInputState(); !s.isOk()) return s;
  }
  const int channels = gate_->numChannels();
  std::vector<bool> ended(static_cast<std::size_t>(channels), false);
  WatermarkValve valve(channels);
  int open_channels = channels;
  auto flush_deadline = Clock::time_point::max();
  auto timer_deadline = Clock::time_point::min();  // check at once
  auto after_work = [&](Clock::time_point done) {
    if (flush_deadline == Clock::time_point::max() && anyPendingOutput()) {
      flush_deadline = done + options_.buffer_timeout;
    }
    // The chain may have registered an earlier processing-time timer.
    timer_deadline = std::min(timer_deadline, steadyDeadline(chain_->nextProcessingTime()));
  };
  // However the loop ends, a buffer read in part goes back to its pool.
  struct DropReading {
    std::optional<InputGate::Item>& reading;
    ~DropReading() { reading.reset(); }
  } drop_reading{reading_};
  while (open_channels > 0) {
    if (cancelled_.load(std::memory_order_acquire)) return Status::cancelled();
    const auto wait_start = Clock::now();
    if (wait_start >= flush_deadline) {
      flushOutputs();
      flush_deadline = Clock::time_point::max();
    }
    if (wait_start >= timer_deadline) {
      if (Status s = firePendingTimers(timer_deadline); !s.isOk()) return s;
      if (flush_deadline == Clock::time_point::max() && anyPendingOutput()) {
        flush_deadline = Clock::now() + options_.buffer_timeout;
      }
    }
    bool resumed = false;
    if (Status s = handleMail(resumed); !s.isOk()) return s;
    if (stopped_) return Status::ok();
    if (resumed) continue;
    const bool aligned_timeout = alignedTimeoutOn();
    if (aligned_timeout && Clock::now() >= next_promotion_check_) checkAlignedTimeout();
    if (const auto switch_at = alignmentDeadline(); Clock::now() >= switch_at) {
      // The alignment took too long: the checkpoint goes on unaligned.
      std::shared_ptr<const CheckpointBarrier> barrier = std::move(aligning_);
      aligning_.reset();
      alignment_ms_ =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - alignment_start_)
              .count();
      gate_->unblockAll();
      if (Status s = startUnaligned(barrier, -1, 0, barrier_received_); !s.isOk()) return s;
      continue;
    }
    const auto wake_at =
        std::min({flush_deadline, timer_deadline, alignmentDeadline(),
                  aligned_timeout ? next_promotion_check_ : Clock::time_point::max()});
    std::optional<InputGate::Item> item;
    const int reading = reading_ ? reading_->channel : -1;
    if (!outputsAvailable()) {
      // Back-pressured: no input is taken until every output has a buffer free, so that records
      // rarely block halfway (see ResultPartition::advance). Barriers need no buffer: one at the
      // head of a channel is taken meanwhile, and an unaligned one overtakes the queued data.
      barrier_queued_.store(false, std::memory_order_release);
      item = gate_->pollBarrier(reading);
      if (!item) {
        awaitOutputBuffers(flush_deadline, wake_at);
        continue;
      }
    } else if (reading_) {
      // Between two batches of a buffer: a barrier queued meanwhile is taken first.
      if (barrier_queued_.load(std::memory_order_acquire) &&
          barrier_queued_.exchange(false, std::memory_order_acq_rel)) {
        item = gate_->pollBarrier(reading);
        // Another one may be queued behind it.
        if (item) barrier_queued_.store(true, std::memory_order_release);
      }
      if (!item) {
        const auto start = Clock::now();
        metrics_.busy.begin(start);
        Clock::time_point done;
        Status s = readNextBatch(start, done);
        metrics_.busy.end(done);
        if (!s.isOk()) return s;
        after_work(done);
        continue;
      }
    } else {
      metrics_.idle.begin(wait_start);
      item = gate_->poll(wake_at, cancelled_, &has_mail_);
      metrics_.idle.end(Clock::now());
      if (!item) continue;
    }
    const auto got = Clock::now();
    const int ch = item->channel;
    const auto index = static_cast<std::size_t>(ch);
    const Buffer::Kind kind = item->buffer.kind();
    if (ended[index]) {
      return Status::internal(kind == Buffer::Kind::kEndOfInput
                                  ? "end of input received twice on channel " + std::to_string(ch)
                                  : "data after end of input on channel " + std::to_string(ch));
    }
    Status s;
    metrics_.busy.begin(got);
    switch (kind) {
      case Buffer::Kind::kEndOfInput:
        ended[index] = true;
        --open_channels;
        s = forward(valve.onEndOfInput(ch));
        if (s.isOk()) s = onChannelEnded(ch);
        break;
      case Buffer::Kind::kBarrier:
        s = onBarrier(ch, item->buffer.barrier(), item->buffer.overtaken());
        break;
      case Buffer::Kind::kWatermark:
        s = forward(valve.onWatermark(ch, item->buffer.value()));
        break;
      case Buffer::Kind::kWatermarkStatus:
        s = forward(valve.onStatus(ch, item->buffer.value() != 0));
        break;
      case Buffer::Kind::kData: {
        if (capture_) captureData(ch, item->buffer);
        reading_ = std::move(item);
        reading_offset_ = 0;
        Clock::time_point read_done;
        s = readNextBatch(got, read_done);
        break;
      }
    }
    item.reset();  // recycle the buffer at once
    const auto done = Clock::now();
    metrics_.busy.end(done);
    if (!s.isOk()) return s;
    after_work(done);
  }
  return Status::ok();
}

namespace {

// What one call into the chain for records (a source's poll, a part of an input buffer) aims to
// take at most, so that mail, barriers and output buffers are looked at that often even when an
// operator is slow.
constexpr auto kRecordCallTarget = std::chrono::milliseconds(1);

// A chain reads at least one byte of what it is given, and no more.
Status checkProgress(const InputProgress& progress, std::size_t size) {
  if (progress.bytes > size || (progress.bytes == 0 && size > 0)) {
    return Status::internal("the chain read " + std::to_string(progress.bytes) + " of " +
                            std::to_string(size) + " bytes of input");
  }
  return Status::ok();
}

}  // namespace

Status StreamTask::readNextBatch(Clock::time_point start, Clock::time_point& done) {
  const Buffer& buffer = reading_->buffer;
  const std::size_t left = buffer.size() - reading_offset_;
  InputProgress progress;
  Status s = chain_->processInput(reading_->channel, buffer.bytes() + reading_offset_, left,
                                  records_per_call_, progress);
  done = Clock::now();
  if (s.isOk()) s = checkProgress(progress, left);
  adaptRecordsPerCall(progress.records, done - start);
  reading_offset_ += progress.bytes;
  if (!s.isOk() || reading_offset_ >= buffer.size()) reading_.reset();  // recycled at once
  return s;
}

void StreamTask::adaptRecordsPerCall(std::size_t records, Clock::duration took) {
  if (records == 0) return;
  using std::chrono::nanoseconds;
  const std::int64_t took_ns =
      std::max<std::int64_t>(1, std::chrono::duration_cast<nanoseconds>(took).count());
  const std::int64_t target_ns = nanoseconds(kRecordCallTarget).count();
  records_per_call_ = static_cast<std::size_t>(std::clamp<std::int64_t>(
      static_cast<std::int64_t>(records) * target_ns / took_ns, 1, kMaxRecordsPerCall));
}

Status StreamTask::readAll(int channel, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    InputProgress progress;
    Status s = chain_->processInput(channel, data, size, kMaxRecordsPerCall, progress);
    if (s.isOk()) s = checkProgress(progress, size);
    if (!s.isOk()) return s;
    data += progress.bytes;
    size -= progress.bytes;
  }
  return Status::ok();
}

void StreamTask::flushOutputs() {
  for (auto& o : outputs_)
    o->flushAll();
}

bool StreamTask::anyPendingOutput() const {
  for (const auto& o : outputs_) {
    if (o->hasPendingData()) return true;
  }
  return false;
}

void StreamTask::finishOutputs() {
  for (auto& o : outputs_)
    o->finish();
}

// ---- Checkpoints ----

void StreamTask::triggerCheckpoint(std::shared_ptr<const CheckpointBarrier> barrier) {
  post(Mail{Mail::kTrigger, std::move(barrier), 0});
}

void StreamTask::notifyCheckpoint(std::int64_t checkpoint_id, bool completed) {
  post(Mail{completed ? Mail::kComplete : Mail::kAbort, nullptr, checkpoint_id});
}

void StreamTask::post(Mail mail) {
  {
    std::lock_guard<std::mutex> lock(mail_mu_);
    mail_.push_back(std::move(mail));
    has_mail_.store(true, std::memory_order_release);
  }
  mail_cv_.notify_all();
  if (gate_) gate_->wake();
  for (const auto& o : outputs_)
    o->pool().wakeAll();  // a task waiting for a buffer (awaitOutputBuffers)
  { std::lock_guard<std::mutex> lock(mu_); }
  idle_cv_.notify_all();
}

Status StreamTask::processMail() {
  std::vector<Mail> mail;
  {
    std::lock_guard<std::mutex> lock(mail_mu_);
    mail.swap(mail_);
    has_mail_.store(false, std::memory_order_release);
  }
  for (Mail& m : mail) {
    switch (m.kind) {
      case Mail::kTrigger:
        // Taken already (its barrier came first), or superseded by a newer one.
        if (m.barrier->id <= last_checkpoint_id_ || aligning_ != nullptr || capture_) break;
        if (m.barrier->stop && m.barrier->drain && is_source_ && !data_ended_) {
          // Draining: event time ends before the savepoint, so every timer and window fires
          // and the barrier follows their output.
          if (Status s = chain_->processWatermark(kMaxWatermark); !s.isOk()) return s;
        }
        if (is_source_ && checkpointing_.unaligned && checkpointing_.aligned_timeout.count() <= 0 &&
            !m.barrier->savepoint) {
          // The barrier leaves as a priority event, ahead of the output still queued.
          auto unaligned = std::make_shared<CheckpointBarrier>(*m.barrier);
          unaligned->unaligned = true;
          m.barrier = std::move(unaligned);
        }
        if (Status s = performCheckpoint(m.barrier); !s.isOk()) return s;
        break;
      case Mail::kComplete: {
        {
          std::lock_guard<std::mutex> lock(uploads_mu_);
          if (auto it = uploaded_shared_.find(m.checkpoint_id); it != uploaded_shared_.end()) {
            for (auto& [vertex, files] : it->second)
              previous_shared_[vertex] = std::move(files);
          }
          uploaded_shared_.erase(uploaded_shared_.begin(),
                                 uploaded_shared_.upper_bound(m.checkpoint_id));
        }
        if (Status s = chain_->notifyCheckpointComplete(m.checkpoint_id); !s.isOk()) return s;
        if (final_checkpoint_id_ != 0 && m.checkpoint_id >= final_checkpoint_id_) {
          final_checkpoint_done_ = true;
        }
        if (stop_pending_ != 0 && m.checkpoint_id >= stop_pending_) stopped_ = true;
        break;
      }
      case Mail::kAbort: {
        {
          std::lock_guard<std::mutex> lock(uploads_mu_);
          uploaded_shared_.erase(m.checkpoint_id);
        }
        if (aligning_ != nullptr && aligning_->id == m.checkpoint_id) {
          abandonAlignment("checkpoint " + std::to_string(m.checkpoint_id) + " was aborted");
        }
        if (capture_ && capture_->id == m.checkpoint_id) {
          abandonCapture("checkpoint " + std::to_string(m.checkpoint_id) + " was aborted");
        }
        if (settling_ && settling_->id == m.checkpoint_id) {
          abandonSettling("checkpoint " + std::to_string(m.checkpoint_id) + " was aborted");
        }
        last_checkpoint_id_ = std::max(last_checkpoint_id_, m.checkpoint_id);
        if (Status s = chain_->notifyCheckpointAborted(m.checkpoint_id); !s.isOk()) return s;
        if (stop_pending_ == m.checkpoint_id) {
          if (stop_drain_) {
            // Event time already ended here: records after it would all be late.
            return Status::failed("the savepoint of stop-with-savepoint --drain (checkpoint " +
                                  std::to_string(m.checkpoint_id) +
                                  ") was aborted after event time ended");
          }
          stop_pending_ = 0;  // not stopping after all: processing resumes
        }
        break;
      }
    }
  }
  return Status::ok();
}

Status StreamTask::onBarrier(int channel, const std::shared_ptr<const CheckpointBarrier>& barrier,
                             std::int64_t overtaken) {
  if (!checkpointing_.enabled || barrier == nullptr) {
    return Status::internal("checkpoint barrier on channel " + std::to_string(channel) +
                            " of a task that takes no checkpoints");
  }
  const auto index = static_cast<std::size_t>(channel);
  if (capture_) {
    if (barrier->id < capture_->id) return Status::ok();  // abandoned
    if (barrier->id == capture_->id) {
      if (capture_->complete[index]) return Status::ok();  // delivered before the switch
      captureBarrier(channel, overtaken);
      return Status::ok();
    }
    abandonCapture("the barrier of checkpoint " + std::to_string(barrier->id) +
                   " arrived before the in-flight data of checkpoint " +
                   std::to_string(capture_->id) + " was captured");
  }
  if (aligning_ != nullptr && barrier->id < aligning_->id) return Status::ok();  // abandoned
  if (aligning_ == nullptr && barrier->id <= last_checkpoint_id_) return Status::ok();
  if (aligning_ != nullptr && barrier->id > aligning_->id) {
    abandonAlignment("the barrier of checkpoint " + std::to_string(barrier->id) +
                     " arrived before alignment finished");
  }
  const bool unaligned =
      !barrier->savepoint && (barrier->unaligned || (checkpointing_.unaligned &&
                                                     checkpointing_.aligned_timeout.count() <= 0));
  if (unaligned) {
    std::vector<char> received(channel_ended_.size(), 0);
    if (aligning_ != nullptr) {  // an upstream task switched to unaligned: so does this one
      received = barrier_received_;
      aligning_.reset();
      alignment_ms_ =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - alignment_start_)
              .count();
      gate_->unblockAll();
    } else {
      alignment_ms_ = 0;
    }
    return startUnaligned(barrier, channel, overtaken, received);
  }
  if (aligning_ == nullptr) {
    aligning_ = barrier;
    barrier_received_.assign(channel_ended_.size(), 0);
    barriers_missing_ = 0;
    for (char ended : channel_ended_)
      barriers_missing_ += ended ? 0 : 1;
    alignment_start_ = Clock::now();
  }
  if (barrier_received_[index]) {
    return Status::internal("two barriers of checkpoint " + std::to_string(barrier->id) +
                            " on channel " + std::to_string(channel));
  }
  barrier_received_[index] = 1;
  if (--barriers_missing_ == 0) return finishAlignment();
  gate_->blockChannel(channel);
  return Status::ok();
}

Status StreamTask::onChannelEnded(int channel) {
  const auto index = static_cast<std::size_t>(channel);
  if (index < channel_ended_.size()) channel_ended_[index] = 1;
  if (capture_ && !capture_->complete[index]) completeChannel(channel);
  if (aligning_ == nullptr || barrier_received_[index]) return Status::ok();
  if (--barriers_missing_ == 0) return finishAlignment();
  return Status::ok();
}

Status StreamTask::finishAlignment() {
  if (reading_) {
    // Every channel delivered its barrier, so no buffer before one can be read in part.
    return Status::internal("an alignment finished with a buffer of channel " +
                            std::to_string(reading_->channel) + " read only in part");
  }
  alignment_ms_ =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - alignment_start_)
          .count();
  std::shared_ptr<const CheckpointBarrier> barrier = std::move(aligning_);
  aligning_.reset();
  gate_->unblockAll();
  return performCheckpoint(barrier);
}

void StreamTask::abandonAlignment(const std::string& reason) {
  const std::int64_t id = aligning_->id;
  aligning_.reset();
  gate_->unblockAll();
  last_checkpoint_id_ = std::max(last_checkpoint_id_, id);
  if (checkpointing_.decline) checkpointing_.decline(id, reason);
}

Status StreamTask::startUnaligned(const std::shared_ptr<const CheckpointBarrier>& barrier,
                                  int channel, std::int64_t overtaken,
                                  const std::vector<char>& received) {
  InFlightCapture capture;
  capture.id = barrier->id;
  const std::size_t n = channel_ended_.size();
  capture.complete.assign(n, 0);
  capture.channels.resize(n);
  for (std::size_t ch = 0; ch < n; ++ch) {
    capture.complete[ch] = channel_ended_[ch] || (ch < received.size() && received[ch]) ? 1 : 0;
  }
  if (channel >= 0 && overtaken == 0) capture.complete[static_cast<std::size_t>(channel)] = 1;
  const int reading = reading_ ? reading_->channel : -1;
  if (reading >= 0 && capture.complete[static_cast<std::size_t>(reading)] && reading != channel) {
    // An aligned barrier is only taken after the buffer before it was read (pollBarrier).
    return Status::internal("channel " + std::to_string(reading) +
                            " delivered its barrier with a buffer of it read only in part");
  }
  std::string partial;
  for (std::size_t ch = 0; ch < n; ++ch) {
    // The barrier's own channel can be complete with a record cut: the rest of the record was in
    // a buffer the barrier overtook at the producer, which persists and sends it again.
    if (capture.complete[ch] && static_cast<int>(ch) != channel) continue;
    if (!capture.complete[ch]) ++capture.incomplete;
    // A record the snapshot cut: its bytes read so far lead the channel's in-flight state.
    partial.clear();
    if (Status s = chain_->partialInput(static_cast<int>(ch), partial); !s.isOk()) return s;
    if (!partial.empty()) {
      appendChannelBuffer(capture.channels[ch], static_cast<int>(ch),
                          reinterpret_cast<const std::uint8_t*>(partial.data()), partial.size());
    }
    if (static_cast<int>(ch) == reading) {
      // The records of the buffer the chain has not read yet follow (the barrier overtook them).
      const Buffer& buffer = reading_->buffer;
      appendChannelBuffer(capture.channels[ch], reading, buffer.bytes() + reading_offset_,
                          buffer.size() - reading_offset_);
    }
  }
  auto unaligned = std::make_shared<CheckpointBarrier>(*barrier);
  unaligned->unaligned = true;
  capture_ = std::move(capture);
  Status s = performCheckpoint(unaligned);
  if (!s.isOk() || !capture_ || !capture_->async_part) {
    capture_.reset();  // failed (and declined) in its synchronous part
    return s;
  }
  if (capture_->incomplete == 0) {
    capture_->incomplete = 1;
    completeChannel(-1);
  } else if (channel >= 0 && overtaken > 0) {
    captureBarrier(channel, overtaken);
  }
  return Status::ok();
}

void StreamTask::captureBarrier(int channel, std::int64_t overtaken) {
  std::string& out = capture_->channels[static_cast<std::size_t>(channel)];
  // What the barrier overtook waits behind it in the gate (the producer persisted what it
  // overtook before it was sent).
  const std::int64_t copied = gate_->copyQueued(channel, overtaken, [&](const Buffer& b) {
    appendChannelBuffer(out, channel, b.bytes(), b.size());
  });
  if (copied != overtaken) {
    abandonCapture("the barrier of checkpoint " + std::to_string(capture_->id) + " on channel " +
                   std::to_string(channel) + " overtook " + std::to_string(overtaken) +
                   " buffers, but only " + std::to_string(copied) + " are queued behind it");
    return;
  }
  completeChannel(channel);
}

void StreamTask::captureData(int channel, const Buffer& buffer) {
  const auto index = static_cast<std::size_t>(channel);
  if (capture_->complete[index]) return;
  appendChannelBuffer(capture_->channels[index], channel, buffer.bytes(), buffer.size());
}

void StreamTask::completeChannel(int channel) {
  if (channel >= 0) capture_->complete[static_cast<std::size_t>(channel)] = 1;
  if (--capture_->incomplete > 0) return;
  // Every channel is complete: the in-flight state goes to the asynchronous part.
  std::string& body = *capture_->body;
  for (auto& bytes : capture_->channels) {
    body += bytes;
    std::string().swap(bytes);
  }
  checkpointing_.writer->submit(std::move(capture_->async_part));
  capture_.reset();
}

void StreamTask::abandonCapture(const std::string& reason) {
  const std::int64_t id = capture_->id;
  if (capture_->discard) capture_->discard();
  capture_.reset();
  if (checkpointing_.decline) checkpointing_.decline(id, reason);
}

void StreamTask::checkAlignedTimeout() {
  const std::int64_t cutoff = currentProcessingTime() - checkpointing_.aligned_timeout.count();
  // Barriers stuck behind data for longer than the timeout overtake it (a channel that delivers
  // one makes this task's checkpoint unaligned).
  if (gate_) gate_->promoteBarriers(cutoff);
  if (settling_ && settleOutputs(settling_->id, cutoff, *settling_->body) == 0) {
    checkpointing_.writer->submit(std::move(settling_->async_part));
    settling_.reset();
  }
  // While barriers settle the check is frequent: the acknowledgement waits for it.
  const auto interval = settling_ ? std::chrono::milliseconds(10) : std::chrono::milliseconds(50);
  next_promotion_check_ =
      Clock::now() + std::min<Clock::duration>(checkpointing_.aligned_timeout, interval);
}

void StreamTask::forEachOutput(const std::function<void(ResultPartition&, int)>& fn) {
  int first_channel = 0;
  for (auto& o : outputs_) {
    fn(*o, first_channel);
    first_channel += o->numChannels();
  }
}

int StreamTask::settleOutputs(std::int64_t id, std::int64_t cutoff_ms, std::string& body) {
  int waiting = 0;
  forEachOutput([&](ResultPartition& o, int first_channel) {
    waiting += o.settleBarrier(id, cutoff_ms, [&](int channel, const Buffer& b) {
      appendChannelBuffer(body, first_channel + channel, b.bytes(), b.size());
    });
  });
  return waiting;
}

void StreamTask::abandonSettling(const std::string& reason) {
  const std::int64_t id = settling_->id;
  settling_->discard();
  settling_.reset();
  if (checkpointing_.decline) checkpointing_.decline(id, reason);
}

namespace {

std::int64_t filesSize(const std::vector<thrift::StateFile>& files) {
  std::int64_t n = 0;
  for (const auto& f : files)
    n += f.size;
  return n;
}

}  // namespace

Status StreamTask::performCheckpoint(const std::shared_ptr<const CheckpointBarrier>& barrier) {
  const std::int64_t id = barrier->id;
  last_checkpoint_id_ = std::max(last_checkpoint_id_, id);
  if (settling_) {
    abandonSettling("checkpoint " + std::to_string(id) + " started before the barrier of checkpoint " +
                    std::to_string(settling_->id) + " left this task");
  }
  const auto sync_start = Clock::now();
  metrics_.busy.begin(sync_start);
  CheckpointOptions options;
  options.checkpoint_id = id;
  options.timestamp_ms = barrier->timestamp_ms;
  options.savepoint = barrier->savepoint;
  options.stop = barrier->stop;
  auto snapshot = std::make_shared<ChainSnapshot>();
  Status s = chain_->snapshotState(options, *snapshot);
  if (!s.isOk()) {
    metrics_.busy.end(Clock::now());
    if (checkpointing_.decline) checkpointing_.decline(id, s.message());
    return s.withContext("checkpoint " + std::to_string(id));
  }

  // RocksDB stores: a local checkpoint each (hard links; the memtables are flushed first).
  struct LocalStore {
    int vertex_id = 0;
    std::string uid;
    std::string dir;
    std::vector<RocksDbCheckpointFile> files;
    std::vector<thrift::StateFile> previous;
    KeyGroupRange range;
  };
  auto stores = std::make_shared<std::vector<LocalStore>>();
  std::string failure;
  const ChainSpec& spec = deployment_.spec;
  for (auto& [vertex_id, store] : kv_stores_) {
    const auto at = std::find(spec.vertex_ids.begin(), spec.vertex_ids.end(), vertex_id);
    const auto index = static_cast<std::size_t>(at - spec.vertex_ids.begin());
    LocalStore local;
    local.vertex_id = vertex_id;
    local.uid = vertexUid(index);
    local.dir = store->path() + ".chk-" + std::to_string(id);
    local.range = subtaskRange(spec, index);
    if (checkpointing_.incremental && !barrier->savepoint) {
      if (auto it = previous_shared_.find(vertex_id); it != previous_shared_.end()) {
        local.previous = it->second;
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(local.dir, ec);
    auto files = store->checkpoint(local.dir);
    if (!files.isOk()) {
      failure = "RocksDB checkpoint of '" + local.uid + "': " + files.status().message();
      break;
    }
    local.files = std::move(*files);
    stores->push_back(std::move(local));
  }
  // The barrier follows everything the snapshot covers (a task whose outputs ended sends none).
  // An unaligned one overtakes the output still queued here for other TaskManagers, which is
  // persisted with this snapshot; its channels are numbered over the outputs in order.
  auto output_body = std::make_shared<std::string>();
  bool settling = false;
  if (!outputs_finished_) {
    forEachOutput([&](ResultPartition& o, int first_channel) {
      if (barrier->unaligned) {
        o.emitPriorityBarrier(barrier, [&](int channel, const Buffer& b) {
          appendChannelBuffer(*output_body, first_channel + channel, b.bytes(), b.size());
        });
      } else {
        o.emitBarrier(barrier);
      }
    });
    // Aligned, but it may switch to unaligned while its barriers wait in the send queues: the
    // in-flight output is known once they have all left.
    if (!barrier->unaligned && !barrier->savepoint && alignedTimeoutOn()) {
      settling = settleOutputs(id, std::numeric_limits<std::int64_t>::min(), *output_body) > 0;
    }
  }
  // The job's last checkpoint (every subtask ended its data) or a stop-with-savepoint: this task
  // finishes once it completed. Earlier ones it only takes part in, with its final state.
  if (data_ended_ && barrier->stop && final_checkpoint_id_ == 0) final_checkpoint_id_ = id;
  if (barrier->stop && !data_ended_) {
    stop_pending_ = id;
    stop_drain_ = barrier->drain;
  }
  const auto sync_end = Clock::now();
  metrics_.busy.end(sync_end);
  const std::int64_t sync_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(sync_end - sync_start).count();
  const std::int64_t alignment_ms = alignment_ms_;
  alignment_ms_ = 0;

  auto cleanup = [stores] {
    std::error_code ec;
    for (const auto& st : *stores)
      std::filesystem::remove_all(st.dir, ec);
  };
  if (!failure.empty()) {
    cleanup();
    if (checkpointing_.decline) checkpointing_.decline(id, failure);
    return Status::ok();
  }

  // The asynchronous part, on the writer's thread.
  std::vector<std::string> uids;
  for (std::size_t i = 0; i < spec.vertex_ids.size(); ++i)
    uids.push_back(vertexUid(i));
  const bool savepoint = barrier->savepoint;
  const std::filesystem::path target_dir = barrier->target_dir;
  const std::filesystem::path job_dir = checkpointing_.job_dir;
  const int chain_id = deployment_.chain_id;
  const int subtask = deployment_.subtask;
  const auto acknowledge = checkpointing_.acknowledge;
  const auto decline = checkpointing_.decline;
  // Unaligned: the in-flight input, complete when the asynchronous part runs.
  const bool deferred = capture_ && capture_->id == id;
  auto channel_body = std::make_shared<std::string>();
  auto async_part = [=, this] {
    const auto async_start = Clock::now();
    // Paths in the handles are relative to the job's checkpoint directory, or to the savepoint's.
    const std::filesystem::path base = savepoint ? target_dir : job_dir;
    const std::string own_dir = savepoint ? std::string() : target_dir.filename().string();
    auto relative = [&](const std::string& name) {
      return own_dir.empty() ? name : own_dir + "/" + name;
    };
    const std::string suffix = "-" + std::to_string(subtask);
    thrift::CheckpointAck ack;
    ack.checkpointId = id;
    ack.chainId = chain_id;
    ack.subtask = subtask;
    std::int64_t written = 0;
    std::int64_t state_size = 0;
    std::map<int, std::vector<thrift::StateFile>> shared;
    std::string error;
    for (std::size_t i = 0; i < snapshot->vertices.size() && error.empty(); ++i) {
      VertexSnapshot& v = snapshot->vertices[i];
      thrift::VertexSubtaskState state;
      state.uid = uids[i];
      state.operatorState = v.operator_state;
      written += static_cast<std::int64_t>(v.operator_state.size());
      state_size += static_cast<std::int64_t>(v.operator_state.size());
      if (v.key_groups_writer != nullptr) {
        // Heap key groups frozen in the synchronous part, serialised here; released at once, so
        // the task stops copying the groups it changes.
        Status s = v.key_groups_writer->write(v.key_groups);
        v.key_groups_writer.reset();
        if (!s.isOk()) {
          error = "writing the keyed state of '" + uids[i] + "': " + s.message();
          break;
        }
      }
      if (!v.key_groups.empty()) {
        auto handle = writeHeapKeyedState(base, relative(uids[i] + suffix + ".heap"),
                                          v.key_group_start, v.key_groups);
        std::vector<std::string>().swap(v.key_groups);  // written: the memory goes now
        if (!handle.isOk()) {
          error = handle.status().message();
          break;
        }
        written += stateSize(*handle);
        state_size += stateSize(*handle);
        state.keyed.push_back(std::move(*handle));
      }
      for (const auto& st : *stores) {
        if (st.vertex_id != v.vertex_id) continue;
        const std::string own = relative(uids[i] + suffix);
        auto handle =
            uploadRocksDbCheckpoint(st.dir, st.files, base, savepoint ? own : "shared", own,
                                    st.previous, st.range.start, st.range.end);
        if (!handle.isOk()) {
          error = "uploading the RocksDB checkpoint of '" + uids[i] + "': " +
                  handle.status().message();
          break;
        }
        std::set<std::string> reused;
        for (const auto& f : st.previous)
          reused.insert(f.path);
        for (const auto& f : handle->sharedFiles) {
          if (reused.count(f.path) == 0) written += f.size;
        }
        written += filesSize(handle->privateFiles);
        state_size += stateSize(*handle);
        shared[st.vertex_id] = handle->sharedFiles;
        state.keyed.push_back(std::move(*handle));
      }
      // Unaligned: the in-flight input and output, on the head vertex.
      for (const bool input : {true, false}) {
        const std::string& body = input ? *channel_body : *output_body;
        if (i != 0 || body.empty() || !error.empty()) continue;
        auto file = writeChannelStateFile(
            base, relative(uids[i] + suffix + (input ? ".channels" : ".output.channels")), body);
        if (!file.isOk()) {
          error = "writing the in-flight " + std::string(input ? "input" : "output") + " of '" +
                  uids[i] + "': " + file.status().message();
          break;
        }
        written += file->size;
        state_size += file->size;
        if (input) {
          state.__set_inputChannelState({std::move(*file)});
        } else {
          state.__set_outputChannelState({std::move(*file)});
        }
      }
      if (!error.empty()) break;
      ack.vertices.push_back(std::move(state));
    }
    cleanup();
    if (!error.empty()) {
      if (decline) decline(id, error);
      return;
    }
    if (!savepoint) {
      std::lock_guard<std::mutex> lock(uploads_mu_);
      uploaded_shared_[id] = std::move(shared);
    }
    ack.stats.alignmentDurationMs = alignment_ms;
    ack.stats.syncDurationMs = sync_ms;
    ack.stats.asyncDurationMs =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - async_start).count();
    ack.stats.checkpointedSize = written;
    ack.stats.stateSize = state_size;
    if (acknowledge) acknowledge(std::move(ack));
  };
  if (deferred) {
    capture_->body = std::move(channel_body);
    capture_->async_part = std::move(async_part);
    capture_->discard = cleanup;
  } else if (settling) {
    settling_ = SettlingOutput{id, output_body, std::move(async_part), cleanup};
    // The barriers usually leave at once: look again soon.
    next_promotion_check_ = Clock::now() + std::chrono::milliseconds(1);
  } else {
    checkpointing_.writer->submit(std::move(async_part));
  }
  return Status::ok();
}

Status StreamTask::waitForMail() {
  if (!hasMail()) {
    std::unique_lock<std::mutex> lock(mail_mu_);
    auto ready = [&] {
      return has_mail_.load(std::memory_order_acquire) ||
             cancelled_.load(std::memory_order_acquire);
    };
    if (settling_) {
      mail_cv_.wait_until(lock, next_promotion_check_, ready);  // its barriers may still move
    } else {
      mail_cv_.wait(lock, ready);
    }
  }
  if (cancelled_.load(std::memory_order_acquire)) return Status::cancelled();
  if (settling_ && Clock::now() >= next_promotion_check_) checkAlignedTimeout();
  return processMail();
}

Status StreamTask::awaitFinalCheckpoint() {
  while (!final_checkpoint_done_) {
    if (Status s = waitForMail(); !s.isOk()) return s;
  }
  return Status::ok();
}

Status StreamTask::handleMail(bool& resumed) {
  resumed = false;
  if (hasMail()) {
    if (Status s = processMail(); !s.isOk()) return s;
  }
  if (stop_pending_ == 0) return Status::ok();
  if (Status s = awaitStopOutcome(); !s.isOk()) return s;
  resumed = !stopped_;
  return Status::ok();
}

Status StreamTask::awaitStopOutcome() {
  while (stop_pending_ != 0 && !stopped_) {
    if (Status s = waitForMail(); !s.isOk()) return s;
  }
  return Status::ok();
}

}  // namespace weir::engine
