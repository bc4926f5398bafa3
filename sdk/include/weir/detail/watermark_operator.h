// The operator behind DataStream::assignTimestampsAndWatermarks: stamps each record with the
// strategy's timestamp, feeds its generator, emits the generator's watermarks (on events and every
// auto-watermark interval of processing time) and marks the stream idle after the strategy's idle
// timeout without records.
#pragma once

#include <cstdint>
#include <utility>

#include "weir/detail/operators.h"
#include "weir/watermarks.h"

namespace weir::detail {

template <class T, class G, class A>
class TimestampsAndWatermarksOperator final
    : public OneInputOperator<T, T, ConfiguredWatermarkStrategy<T, G, A>> {
  using Base = OneInputOperator<T, T, ConfiguredWatermarkStrategy<T, G, A>>;

 public:
  explicit TimestampsAndWatermarksOperator(ConfiguredWatermarkStrategy<T, G, A> strategy)
      : Base(std::move(strategy)), generator_(this->fn_.generator()), output_(*this) {}

  void open(const RuntimeContext& ctx) override {
    Base::open(ctx);
    interval_ = ctx.internals().auto_watermark_interval_ms;
    idle_timeout_ = this->fn_.idleTimeout().count();
    const std::int64_t now = ctx.currentProcessingTime();
    last_activity_ = now;
    if (interval_ > 0) next_periodic_ = now + interval_;
  }

  void processWatermark(std::int64_t watermark) override {
    // Upstream watermarks are replaced by this strategy's, except the end of event time.
    if (watermark == kMaxWatermark) output_.emitWatermark(kMaxWatermark);
  }
  void processWatermarkStatus(bool) override {}

  void onProcessingTime(std::int64_t now) override {
    if (now < next_periodic_) return;
    next_periodic_ = now + interval_;
    if (idle_timeout_ > 0) {
      if (saw_event_) {
        saw_event_ = false;
        last_activity_ = now;
      } else if (now - last_activity_ >= idle_timeout_) {
        output_.markIdle();
        return;
      }
    }
    generator_.onPeriodicEmit(output_);
  }

  std::int64_t nextProcessingTime() override {
    return interval_ > 0 ? next_periodic_ : kNoDeadline;
  }

 protected:
  void process(const RecordBatch<T>& batch) override {
    if (output_.idle()) output_.markActive();
    saw_event_ = true;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const T& v = batch[i];
      const std::int64_t ts = this->fn_.extractTimestamp(v, batch.timestamp(i));
      this->out_.collectWithTimestamp(v, ts);
      generator_.onEvent(v, ts, output_);
    }
  }

 private:
  // The generator's view: emits through the operator's outputs, in order with the records.
  class Output final : public WatermarkOutput {
   public:
    explicit Output(TimestampsAndWatermarksOperator& op) : op_(op) {}
    void emitWatermark(std::int64_t watermark) override {
      if (watermark <= current_) return;
      current_ = watermark;
      if (idle_) markActive();
      op_.counters.watermark.store(watermark, std::memory_order_relaxed);
      op_.forwardWatermark(watermark);
    }
    void markIdle() override {
      if (idle_) return;
      idle_ = true;
      op_.forwardStatus(true);
    }
    void markActive() override {
      if (!idle_) return;
      idle_ = false;
      op_.forwardStatus(false);
    }
    bool idle() const { return idle_; }

   private:
    TimestampsAndWatermarksOperator& op_;
    std::int64_t current_ = kMinWatermark;
    bool idle_ = false;
  };

  void forwardWatermark(std::int64_t watermark) { this->emitWatermark(watermark); }
  void forwardStatus(bool idle) { this->emitWatermarkStatus(idle); }

  G generator_;
  Output output_;
  std::int64_t interval_ = 0;
  std::int64_t idle_timeout_ = 0;
  std::int64_t next_periodic_ = kNoDeadline;
  std::int64_t last_activity_ = 0;
  bool saw_event_ = false;
};

}  // namespace weir::detail
