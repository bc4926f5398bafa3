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
