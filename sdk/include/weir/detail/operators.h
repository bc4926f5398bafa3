// Typed operator instances: one per vertex and subtask, instantiated inside the plugin.
//
// Every operator processes a whole batch per call and flushes its output before returning. User
// exceptions are caught at the operator that raised them and rethrown once as OperatorFailure
// naming it; the chain turns that into a failed Status at the plugin boundary.
#pragma once

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weir/collector.h"
#include "weir/context.h"
#include "weir/functions.h"
#include "weir/key_groups.h"

namespace weir::detail {

class OperatorFailure : public std::runtime_error {
 public:
  OperatorFailure(const std::string& op, const std::string& what)
      : std::runtime_error("operator '" + op + "' failed: " + what) {}
};

// Thrown (inside the plugin only) when the engine cancels the task while a writer waits for a
// buffer; it unwinds through the operators untouched and the chain reports a cancelled status.
struct WriterCancelled {};

// Runs `body`, turning any user exception into an OperatorFailure that names `op` (once).
template <class Body>
void guarded(const std::string& op, Body&& body) {
  try {
    body();
  } catch (const OperatorFailure&) {
    throw;
  } catch (const WriterCancelled&) {
    throw;
  } catch (const std::exception& e) {
    throw OperatorFailure(op, e.what());
  } catch (...) {
    throw OperatorFailure(op, "unknown exception");
  }
}

class OperatorInstance {
 public:
  virtual ~OperatorInstance() = default;
  virtual void open(const RuntimeContext& ctx) = 0;
  // All input has been seen: emit anything still held.
  virtual void endInput() {}
  virtual void close() = 0;
  // This operator's typed input, or null for a source.
  virtual BatchConsumerBase* inputPort() { return nullptr; }
  // Connects one more downstream consumer; the consumer's record type is this operator's output
  // type (guaranteed by the builder, which only connects matching types).
  virtual void addOutput(BatchConsumerBase* consumer) = 0;
  // Called once after the last addOutput.
  virtual void finishWiring() = 0;

  // Event time advanced to `watermark` at this operator's input: fire event-time timers, then pass
  // the watermark on.
  virtual void processWatermark(std::int64_t watermark) {
    counters.watermark.store(watermark, std::memory_order_relaxed);
    emitWatermark(watermark);
  }
  virtual void processWatermarkStatus(bool idle) { emitWatermarkStatus(idle); }
  // Processing time reached `now`: fire what is due.
  virtual void onProcessingTime(std::int64_t /*now*/) {}
  // When onProcessingTime next has work, or kNoDeadline.
  virtual std::int64_t nextProcessingTime() { return kNoDeadline; }
  // Connects a consumer of side output `tag` (wrapped by the edge, which knows its type).
  virtual void addSideOutput(std::unique_ptr<class SideOutputBase> output);

  // Checkpoint hooks, all on the task thread between records. snapshotState runs in the
  // synchronous part of checkpoint `options.checkpoint_id`, before the chain serialises this
  // operator's operator state and keyed state: an operator brings them up to date (a
  // two-phase-commit sink pre-commits its transaction and records it in its operator state).
  // Output emitted here is flushed before the barrier goes on.
  virtual void snapshotState(const CheckpointOptions& /*options*/) {}
  // Checkpoint `checkpoint_id` completed for the whole job (also covers earlier ones whose
  // notification was lost).
  virtual void notifyCheckpointComplete(std::int64_t /*checkpoint_id*/) {}
  virtual void notifyCheckpointAborted(std::int64_t /*checkpoint_id*/) {}

  VertexCounters counters;
  std::string name;

 protected:
  // Flushes pending output, then sends the element to every downstream consumer.
  virtual void emitWatermark(std::int64_t watermark) = 0;
  virtual void emitWatermarkStatus(bool idle) = 0;
};

// Delivers one batch to several consumers in order.
template <class T>
class FanOut final : public BatchConsumer<T> {
 public:
  explicit FanOut(std::vector<BatchConsumer<T>*> targets) : targets_(std::move(targets)) {}
  void consume(const RecordBatch<T>& batch) override {
    for (auto* t : targets_)
      t->consume(batch);
  }
  void consumeWatermark(std::int64_t watermark) override {
    for (auto* t : targets_)
      t->consumeWatermark(watermark);
  }
  void consumeWatermarkStatus(bool idle) override {
    for (auto* t : targets_)
      t->consumeWatermarkStatus(idle);
  }

 private:
  std::vector<BatchConsumer<T>*> targets_;
};

template <class T>
class Discard final : public BatchConsumer<T> {
 public:
  void consume(const RecordBatch<T>&) override {}
  void consumeWatermark(std::int64_t) override {}
  void consumeWatermarkStatus(bool) override {}
};

// The output side of an operator producing T.
template <class T>
class Outputs {
 public:
  void add(BatchConsumerBase* c) { targets_.push_back(static_cast<BatchConsumer<T>*>(c)); }
  void finish(Collector<T>& out, VertexCounters* counters) {
    if (targets_.empty()) {
      discard_ = std::make_unique<Discard<T>>();
      target_ = discard_.get();
    } else if (targets_.size() == 1) {
      target_ = targets_.front();
    } else {
      fan_out_ = std::make_unique<FanOut<T>>(targets_);
      target_ = fan_out_.get();
    }
    out.bind(target_, counters);
  }
  void watermark(Collector<T>& out, std::int64_t watermark) {
    out.flush();
    target_->consumeWatermark(watermark);
  }
  void watermarkStatus(Collector<T>& out, bool idle) {
    out.flush();
    target_->consumeWatermarkStatus(idle);
  }

 private:
  std::vector<BatchConsumer<T>*> targets_;
  BatchConsumer<T>* target_ = nullptr;
  std::unique_ptr<FanOut<T>> fan_out_;
  std::unique_ptr<Discard<T>> discard_;
};

// One consumer of one side output of an operator, typed by the edge that created it.
class SideOutputBase {
 public:
  explicit SideOutputBase(std::string tag) : tag_(std::move(tag)) {}
  virtual ~SideOutputBase() = default;
  const std::string& tag() const { return tag_; }
  virtual void bind(VertexCounters* counters) = 0;
  virtual void flush() = 0;
  virtual void watermark(std::int64_t watermark) = 0;
  virtual void watermarkStatus(bool idle) = 0;

 private:
  std::string tag_;
};

template <class X>
class SideOutput final : public SideOutputBase {
 public:
  SideOutput(std::string tag, BatchConsumer<X>* target)
      : SideOutputBase(std::move(tag)), target_(target) {}
  void bind(VertexCounters* counters) override { out_.bind(target_, counters); }
  void emit(const X& value, std::int64_t timestamp) { out_.collectWithTimestamp(value, timestamp); }
  void flush() override { out_.flush(); }
  void watermark(std::int64_t watermark) override {
    out_.flush();
    target_->consumeWatermark(watermark);
  }
  void watermarkStatus(bool idle) override {
    out_.flush();
    target_->consumeWatermarkStatus(idle);
  }

 private:
  BatchConsumer<X>* target_;
  Collector<X> out_;
};

// The side outputs of one operator.
class SideOutputs {
 public:
  void add(std::unique_ptr<SideOutputBase> o) { outputs_.push_back(std::move(o)); }
  void bind(VertexCounters* counters) {
    for (auto& o : outputs_)
      o->bind(counters);
  }
  template <class X>
  void emit(const std::string& tag, const X& value, std::int64_t timestamp) {
    for (auto& o : outputs_) {
      if (o->tag() != tag) continue;
      auto* typed = dynamic_cast<SideOutput<X>*>(o.get());
      if (typed == nullptr) {
        throw std::logic_error("side output '" + tag +
                               "' is consumed as another type than the one emitted");
      }
      typed->emit(value, timestamp);
    }
  }
  bool empty() const { return outputs_.empty(); }
  void flush() {
    for (auto& o : outputs_)
      o->flush();
  }
  void watermark(std::int64_t w) {
    for (auto& o : outputs_)
      o->watermark(w);
  }
  void watermarkStatus(bool idle) {
    for (auto& o : outputs_)
      o->watermarkStatus(idle);
  }

 private:
  std::vector<std::unique_ptr<SideOutputBase>> outputs_;
};

template <class X>
void emitSideOutput(SideOutputs* outputs, const std::string& id, const X& value,
                    std::int64_t timestamp) {
  if (outputs != nullptr) outputs->emit(id, value, timestamp);
}

inline void OperatorInstance::addSideOutput(std::unique_ptr<SideOutputBase> output) {
  throw std::logic_error("operator '" + name + "' has no side output '" + output->tag() + "'");
}

// Base of single-input operators with output type Out. Subclasses implement process().
template <class In, class Out, class F>
class OneInputOperator : public OperatorInstance, public BatchConsumer<In> {
 public:
  explicit OneInputOperator(F fn) : fn_(std::move(fn)) {}

  void open(const RuntimeContext& ctx) override {
    guarded(name, [&] { openFunction(fn_, ctx); });
  }
  void close() override {
    guarded(name, [&] { closeFunction(fn_); });
  }
  BatchConsumerBase* inputPort() override { return static_cast<BatchConsumer<In>*>(this); }
  void addOutput(BatchConsumerBase* c) override { outputs_.add(c); }
  void addSideOutput(std::unique_ptr<SideOutputBase> output) override {
    side_outputs_.add(std::move(output));
  }
  void finishWiring() override {
    outputs_.finish(out_, &counters);
    side_outputs_.bind(&counters);
  }
  // The user function's checkpoint hooks; an operator overriding these calls them too.
  void snapshotState(const CheckpointOptions& options) override {
    snapshotFunctionState(fn_, options);
  }
  void notifyCheckpointComplete(std::int64_t checkpoint_id) override {
    notifyFunctionCheckpointComplete(fn_, checkpoint_id);
  }
  void notifyCheckpointAborted(std::int64_t checkpoint_id) override {
    notifyFunctionCheckpointAborted(fn_, checkpoint_id);
  }

  void consume(const RecordBatch<In>& batch) final {
    counters.addIn(batch.size());
    guarded(name, [&] { process(batch); });
    flushOutputs();
  }
  void consumeWatermark(std::int64_t watermark) final {
    guarded(name, [&] { processWatermark(watermark); });
  }
  void consumeWatermarkStatus(bool idle) final { processWatermarkStatus(idle); }

 protected:
  virtual void process(const RecordBatch<In>& batch) = 0;
  void emitWatermark(std::int64_t watermark) override {
    side_outputs_.watermark(watermark);
    outputs_.watermark(out_, watermark);
  }
  void emitWatermarkStatus(bool idle) override {
    side_outputs_.watermarkStatus(idle);
    outputs_.watermarkStatus(out_, idle);
  }
  void flushOutputs() {
    out_.flush();
    side_outputs_.flush();
  }

  F fn_;
  Collector<Out> out_;
  SideOutputs side_outputs_;

 private:
  Outputs<Out> outputs_;
};

template <class In, class Out, class F>
class MapOperator final : public OneInputOperator<In, Out, F> {
 public:
  using OneInputOperator<In, Out, F>::OneInputOperator;

 protected:
  void process(const RecordBatch<In>& batch) override {
    const In* p = batch.begin();
    const In* const e = batch.end();
    const std::int64_t* ts = batch.timestamps();
    while (p != e) {
      std::size_t room = 0;
      std::int64_t* dst_ts = nullptr;
      Out* dst = this->out_.reserve(room, dst_ts);
      const std::size_t k = std::min(room, static_cast<std::size_t>(e - p));
      for (std::size_t i = 0; i < k; ++i) {
        dst[i] = callMap(this->fn_, p[i]);
        dst_ts[i] = ts[i];
      }
      this->out_.commitReserved(k);
      p += k;
      ts += k;
    }
  }
};

template <class T, class F>
class FilterOperator final : public OneInputOperator<T, T, F> {
 public:
  using OneInputOperator<T, T, F>::OneInputOperator;

 protected:
  void process(const RecordBatch<T>& batch) override {
    const T* p = batch.begin();
    const T* const e = batch.end();
    const std::int64_t* ts = batch.timestamps();
    while (p != e) {
      std::size_t room = 0;
      std::int64_t* dst_ts = nullptr;
      T* dst = this->out_.reserve(room, dst_ts);
      const std::size_t k = std::min(room, static_cast<std::size_t>(e - p));
      std::size_t n = 0;
      for (std::size_t i = 0; i < k; ++i) {
        if constexpr (std::is_trivially_copyable_v<T> && sizeof(T) <= 32) {
          dst[n] = p[i];  // branch-free: always copy, keep it only when the filter passes
          dst_ts[n] = ts[i];
          n += callFilter(this->fn_, p[i]) ? 1 : 0;
        } else {
          if (callFilter(this->fn_, p[i])) {
            dst[n] = p[i];
            dst_ts[n++] = ts[i];
          }
        }
      }
      this->out_.commitReserved(n);
      p += k;
      ts += k;
    }
  }
};

template <class In, class Out, class F>
class FlatMapOperator final : public OneInputOperator<In, Out, F> {
 public:
  using OneInputOperator<In, Out, F>::OneInputOperator;

 protected:
  void process(const RecordBatch<In>& batch) override {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      this->out_.setTimestamp(batch.timestamp(i));
      callFlatMap(this->fn_, batch[i], this->out_);
    }
  }
};

// Checks that a record's key belongs to this subtask: a key selector that is not deterministic
// would otherwise silently split one key's state across subtasks.
class KeyGroupGuard {
 public:
  void init(const RuntimeContext& ctx) {
    max_parallelism_ = ctx.maxParallelism();
    range_ = keyGroupRangeForSubtask(ctx.subtaskIndex(), ctx.parallelism(), max_parallelism_);
  }
  int check(std::uint64_t hash) const {
    const int kg = keyGroupForHash(hash, max_parallelism_);
    if (!range_.contains(kg)) [[unlikely]]
      fail(kg);
    return kg;
  }

 private:
  // Out of line, so that check() stays small enough to inline.
  [[noreturn, gnu::noinline, gnu::cold]] void fail(int kg) const {
    {
      throw std::logic_error("record's key is in key group " + std::to_string(kg) +
                             ", outside this subtask's range [" + std::to_string(range_.start) +
                             ", " + std::to_string(range_.end) +
                             "]: the key selector must be deterministic");
    }
  }

  int max_parallelism_ = 1;
  KeyGroupRange range_;
};

template <class T, class F>
class SinkOperator final : public OperatorInstance, public BatchConsumer<T> {
 protected:
  void emitWatermark(std::int64_t) override {}
  void emitWatermarkStatus(bool) override {}

 public:
  explicit SinkOperator(F fn) : fn_(std::move(fn)) {}
  void open(const RuntimeContext& ctx) override {
    guarded(name, [&] { openFunction(fn_, ctx); });
  }
  void close() override {
    guarded(name, [&] { closeFunction(fn_); });
  }
  BatchConsumerBase* inputPort() override { return static_cast<BatchConsumer<T>*>(this); }
  void addOutput(BatchConsumerBase*) override {}
  void finishWiring() override {}
  void endInput() override {
    guarded(name, [&] { endInputFunction(fn_); });
  }
  void snapshotState(const CheckpointOptions& options) override {
    snapshotFunctionState(fn_, options);
  }
  void notifyCheckpointComplete(std::int64_t checkpoint_id) override {
    notifyFunctionCheckpointComplete(fn_, checkpoint_id);
  }
  void notifyCheckpointAborted(std::int64_t checkpoint_id) override {
    notifyFunctionCheckpointAborted(fn_, checkpoint_id);
  }
  void consumeWatermark(std::int64_t watermark) override { processWatermark(watermark); }
  void consumeWatermarkStatus(bool idle) override { processWatermarkStatus(idle); }

  void consume(const RecordBatch<T>& batch) override {
    counters.addIn(batch.size());
    guarded(name, [&] {
      for (const T& v : batch)
        callSink(fn_, v);
      if constexpr (requires { fn_.flushBatch(); }) fn_.flushBatch();
    });
  }

 private:
  F fn_;
};

class SourceOperatorBase : public OperatorInstance {
 public:
  // Polls the source once, asking for at most `max_records` records (Collector::pollBudget).
  virtual SourceStatus poll(std::size_t max_records) = 0;
};

template <class T, class F>
class SourceOperator final : public SourceOperatorBase {
 public:
  explicit SourceOperator(F fn) : fn_(std::move(fn)) {}
  void open(const RuntimeContext& ctx) override {
    guarded(name, [&] { openFunction(fn_, ctx); });
  }
  void close() override {
    guarded(name, [&] { closeFunction(fn_); });
  }
  void addOutput(BatchConsumerBase* c) override { outputs_.add(c); }
  void finishWiring() override { outputs_.finish(out_, &counters); }
  void snapshotState(const CheckpointOptions& options) override {
    snapshotFunctionState(fn_, options);
  }
  void notifyCheckpointComplete(std::int64_t checkpoint_id) override {
    notifyFunctionCheckpointComplete(fn_, checkpoint_id);
  }
  void notifyCheckpointAborted(std::int64_t checkpoint_id) override {
    notifyFunctionCheckpointAborted(fn_, checkpoint_id);
  }

  SourceStatus poll(std::size_t max_records) override {
    SourceStatus status = SourceStatus::kEndOfInput;
    out_.setPollBudget(max_records);
    guarded(name, [&] { status = fn_.pollNext(out_); });
    out_.flush();
    return status;
  }

 protected:
  void emitWatermark(std::int64_t watermark) override { outputs_.watermark(out_, watermark); }
  void emitWatermarkStatus(bool idle) override { outputs_.watermarkStatus(out_, idle); }

 private:
  F fn_;
  Collector<T> out_;
  Outputs<T> outputs_;
};

}  // namespace weir::detail
