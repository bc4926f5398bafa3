// Drives one SDK operator instance on the test's thread, as a task would: records with timestamps,
// watermarks, watermark statuses and a manual processing-time clock; collects what it emits on its
// main output and side outputs.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weir/weir.h"

namespace weir::test {

// What a consumer saw, in order: records (with timestamps) and watermarks.
template <class T>
class Recorder final : public BatchConsumer<T> {
 public:
  void consume(const RecordBatch<T>& batch) override {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      records.push_back(batch[i]);
      timestamps.push_back(batch.timestamp(i));
    }
  }
  void consumeWatermark(std::int64_t w) override { watermarks.push_back(w); }
  void consumeWatermarkStatus(bool idle) override { statuses.push_back(idle); }
  void clear() {
    records.clear();
    timestamps.clear();
    watermarks.clear();
    statuses.clear();
  }

  std::vector<T> records;
  std::vector<std::int64_t> timestamps;
  std::vector<std::int64_t> watermarks;
  std::vector<bool> statuses;
};

// A task environment with a manual clock and no network outputs.
class ManualEnvironment final : public TaskEnvironment {
 public:
  const JobArgs& args() const noexcept override { return args_; }
  OutputGate& outputGate(std::size_t) noexcept override { std::abort(); }
  std::int64_t currentProcessingTime() const noexcept override { return now; }
  Status openKvStore(int, KvStore*& out) noexcept override {
    out = nullptr;
    return Status::invalidArgument("no KV store in this harness");
  }
  std::int64_t now = 0;

 private:
  JobArgs args_;
};

struct HarnessOptions {
  int subtask = 0;
  int parallelism = 1;
  int max_parallelism = 128;
  StateBackendKind backend = StateBackendKind::kHeap;
  std::int64_t auto_watermark_interval_ms = 200;
  std::int64_t start_time = 1'000'000;  // processing time at open
};

template <class In, class Out>
class Harness {
 public:
  explicit Harness(std::unique_ptr<detail::OperatorInstance> op, HarnessOptions options = {})
      : op_(std::move(op)) {
    op_->name = "op under test";
    env_.now = options.start_time;
    ctx_ = RuntimeContext("test job", "op under test", options.subtask, options.parallelism,
                          options.max_parallelism, &env_.args());
    RuntimeContext::Internals internals;
    internals.env = &env_;
    internals.auto_watermark_interval_ms = options.auto_watermark_interval_ms;
    internals.state_backend = options.backend;
    ctx_.setInternals(internals);
    ctx_.setOperatorStateStore(&operator_state_);
    op_->addOutput(&main_);
  }
  ~Harness() {
    if (opened_) op_->close();
  }

  // Connects a recorder of side output `tag` (before open()).
  template <class X>
  Recorder<X>& sideOutput(const OutputTag<X>& tag) {
    auto rec = std::make_shared<Recorder<X>>();
    op_->addSideOutput(std::make_unique<detail::SideOutput<X>>(tag.id(), rec.get()));
    side_.push_back(rec);
    return *rec;
  }

  void open() {
    op_->finishWiring();
    op_->open(ctx_);
    opened_ = true;
  }

  void push(const In& value, std::int64_t ts = kNoTimestamp) {
    RecordBatch<In> batch;
    batch.nextSlot() = value;
    batch.commit(ts);
    input().consume(batch);
  }
  void pushAll(const std::vector<std::pair<In, std::int64_t>>& values) {
    RecordBatch<In> batch;
    for (const auto& [v, ts] : values) {
      if (batch.full()) {
        input().consume(batch);
        batch.clear();
      }
      batch.nextSlot() = v;
      batch.commit(ts);
    }
    input().consume(batch);
  }
  void watermark(std::int64_t w) { input().consumeWatermark(w); }
  void watermarkStatus(bool idle) { input().consumeWatermarkStatus(idle); }
  // Moves the clock to `t`, firing what is due on the way (in order, as a task would).
  void advanceProcessingTime(std::int64_t t) {
    for (;;) {
      const std::int64_t due = op_->nextProcessingTime();
      if (due > t || due == kNoDeadline) break;
      env_.now = std::max(env_.now, due);
      op_->onProcessingTime(env_.now);
    }
    env_.now = t;
  }
  void endInput() {
    watermark(kMaxWatermark);
    op_->endInput();
  }

  Recorder<Out>& output() { return main_; }
  detail::OperatorInstance& op() { return *op_; }
  ManualEnvironment& env() { return env_; }
  detail::OperatorStateStore& operatorState() { return operator_state_; }

 private:
  BatchConsumer<In>& input() { return *static_cast<BatchConsumer<In>*>(op_->inputPort()); }

  std::unique_ptr<detail::OperatorInstance> op_;
  ManualEnvironment env_;
  detail::OperatorStateStore operator_state_;
  RuntimeContext ctx_;
  Recorder<Out> main_;
  std::vector<std::shared_ptr<void>> side_;
  bool opened_ = false;
};

}  // namespace weir::test
