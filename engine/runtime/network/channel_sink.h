// Where a result partition's channel hands its buffers: straight into a consumer's input gate on
// this TaskManager, or into a remote output channel that sends them over TCP.
#pragma once

#include <functional>

#include "runtime/network/buffer_pool.h"
#include "runtime/network/input_gate.h"

namespace weir::engine {

class ChannelSink {
 public:
  virtual ~ChannelSink() = default;
  // Takes the buffer (data or event). Called only by the producing task's thread.
  virtual void push(Buffer buffer) = 0;
  // Takes a barrier of an unaligned checkpoint as a priority event that overtakes the data
  // buffers queued on the way. Those already in the consumer's gate are counted in the barrier
  // there, for the consumer to persist (InputGate::pushPriority); those still waiting on this
  // side (for credit) are handed to `persist`, in order, for the producer's own in-flight state.
  // Producing thread only.
  virtual void pushPriority(Buffer barrier, const std::function<void(const Buffer&)>& persist) = 0;
  // The aligned-checkpoint timeout on this side. True while the aligned barrier of checkpoint `id`
  // still waits here behind data. When that checkpoint was triggered at or before `cutoff_ms` (ms
  // since the epoch) the barrier overtakes the data instead, as a barrier of an unaligned
  // checkpoint, and the data goes to `persist`, in order (the producer's in-flight output), and
  // false is returned. False too when the barrier is not, or no longer, waiting here (the default:
  // a local sink hands everything to the consumer's gate, which has its own timeout).
  // Producing thread only.
  virtual bool settleBarrier(std::int64_t /*id*/, std::int64_t /*cutoff_ms*/,
                             const std::function<void(const Buffer&)>& /*persist*/) {
    return false;
  }
};

class LocalChannelSink final : public ChannelSink {
 public:
  LocalChannelSink(InputGate* gate, int channel) : gate_(gate), channel_(channel) {}
  void push(Buffer buffer) override { gate_->push(channel_, std::move(buffer)); }
  void pushPriority(Buffer barrier, const std::function<void(const Buffer&)>&) override {
    gate_->pushPriority(channel_, std::move(barrier));
  }

 private:
  InputGate* gate_;
  int channel_;
};

}  // namespace weir::engine
