#include "runtime/task.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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

Status StreamTask::init(const ProgramPtr& program) {
  if (outputs_.size() != deployment_.spec.outputs.size()) {
    return Status::internal("task " + deployment_.task_name + ": outputs not wired");
  }
  Status s = createChain(program, deployment_.spec, *this, chain_);
  return s.withContext("task " + deployment_.task_name);
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
    auto store = options_.rocksdb->openStore(rocksDbStoreName(job, uid, deployment_.subtask));
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
  if (s.isOk()) s = is_source_ ? runSource() : runInputs();
  if (s.isOk()) s = chain_->endInput();
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
  if (s.isOk()) {
    finishOutputs();
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
    if (Clock::now() >= timer_deadline) {
      if (Status s = firePendingTimers(timer_deadline); !s.isOk()) return s;
    }
    metrics_.busy.begin(Clock::now());
    SourceStatus status = SourceStatus::kMoreAvailable;
    Status s = chain_->pollSource(status);
    const auto now = Clock::now();
    metrics_.busy.end(now);
    if (!s.isOk()) return s;
    if (status == SourceStatus::kEndOfInput) {
      // Event time ends with the input: every event-time timer fires.
      return chain_->processWatermark(kMaxWatermark);
    }
    if (status == SourceStatus::kNothingAvailable) {
      flushOutputs();
      flush_deadline = Clock::time_point::max();
      metrics_.idle.begin(now);
      std::unique_lock<std::mutex> lock(mu_);
      idle_cv_.wait_until(lock, std::min(now + kIdleSourceBackoff, timer_deadline),
                          [&] { return cancelled_.load(std::memory_order_acquire); });
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

Status StreamTask::runInputs() {
  const int channels = gate_->numChannels();
  std::vector<bool> ended(static_cast<std::size_t>(channels), false);
  WatermarkValve valve(channels);
  int open_channels = channels;
  auto flush_deadline = Clock::time_point::max();
  auto timer_deadline = Clock::time_point::min();  // check at once
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
    metrics_.idle.begin(wait_start);
    auto item = gate_->poll(std::min(flush_deadline, timer_deadline), cancelled_);
    const auto got = Clock::now();
    metrics_.idle.end(got);
    if (!item) continue;
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
        break;
      case Buffer::Kind::kWatermark:
        s = forward(valve.onWatermark(ch, item->buffer.value()));
        break;
      case Buffer::Kind::kWatermarkStatus:
        s = forward(valve.onStatus(ch, item->buffer.value() != 0));
        break;
      case Buffer::Kind::kData:
        s = chain_->processInput(ch, item->buffer.bytes(), item->buffer.size());
        break;
    }
    item.reset();  // recycle the buffer at once
    const auto done = Clock::now();
    metrics_.busy.end(done);
    if (!s.isOk()) return s;
    if (flush_deadline == Clock::time_point::max() && anyPendingOutput()) {
      flush_deadline = done + options_.buffer_timeout;
    }
    // The chain may have registered an earlier processing-time timer.
    timer_deadline = std::min(timer_deadline, steadyDeadline(chain_->nextProcessingTime()));
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

}  // namespace weir::engine
