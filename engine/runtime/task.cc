#include "runtime/task.h"

#include <spdlog/spdlog.h>

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
}

StreamTask::~StreamTask() {
  // The chain references the partitions: destroy it first.
  chain_.reset();
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
  for (;;) {
    if (cancelled_.load(std::memory_order_acquire)) return Status::cancelled();
    metrics_.busy.begin(Clock::now());
    SourceStatus status = SourceStatus::kMoreAvailable;
    Status s = chain_->pollSource(status);
    const auto now = Clock::now();
    metrics_.busy.end(now);
    if (!s.isOk()) return s;
    if (status == SourceStatus::kEndOfInput) return Status::ok();
    if (status == SourceStatus::kNothingAvailable) {
      flushOutputs();
      flush_deadline = Clock::time_point::max();
      metrics_.idle.begin(now);
      std::unique_lock<std::mutex> lock(mu_);
      idle_cv_.wait_for(lock, kIdleSourceBackoff,
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
  int open_channels = channels;
  auto flush_deadline = Clock::time_point::max();
  while (open_channels > 0) {
    if (cancelled_.load(std::memory_order_acquire)) return Status::cancelled();
    const auto wait_start = Clock::now();
    if (wait_start >= flush_deadline) {
      flushOutputs();
      flush_deadline = Clock::time_point::max();
    }
    metrics_.idle.begin(wait_start);
    auto item = gate_->poll(flush_deadline, cancelled_);
    const auto got = Clock::now();
    metrics_.idle.end(got);
    if (!item) continue;
    const int ch = item->channel;
    if (item->buffer.kind() == Buffer::Kind::kEndOfInput) {
      if (ended[static_cast<std::size_t>(ch)]) {
        return Status::internal("end of input received twice on channel " + std::to_string(ch));
      }
      ended[static_cast<std::size_t>(ch)] = true;
      --open_channels;
      continue;
    }
    if (ended[static_cast<std::size_t>(ch)]) {
      return Status::internal("data after end of input on channel " + std::to_string(ch));
    }
    metrics_.busy.begin(got);
    Status s = chain_->processInput(ch, item->buffer.bytes(), item->buffer.size());
    item.reset();  // recycle the buffer at once
    metrics_.busy.end(Clock::now());
    if (!s.isOk()) return s;
    if (flush_deadline == Clock::time_point::max() && anyPendingOutput()) {
      flush_deadline = Clock::now() + options_.buffer_timeout;
    }
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
