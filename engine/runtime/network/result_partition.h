// The output side of a task for one outgoing edge: one channel per consumer subtask it feeds. It
// implements the SDK's OutputGate: the chain serialises records straight into the current buffer of
// a channel through its WriteCursor; a full buffer is handed to the consumer and replaced by one
// from this partition's bounded pool. The task waits for a free buffer between records; a record
// that needs more than were free draws on the pool's overdraft, and waits (back-pressure) only when
// that is used up too.
//
// Only the producing task's thread calls into a partition. Partly filled buffers are flushed by
// that thread when its buffer timeout expires, when it has no input, and at end of input.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "runtime/network/buffer_pool.h"
#include "runtime/network/channel_sink.h"
#include "runtime/network/input_gate.h"
#include "runtime/state_timer.h"
#include "weir/task_api.h"

namespace weir::engine {

class ResultPartition final : public OutputGate {
 public:
  // `cancelled` and `backpressured` belong to the producing task and outlive the partition.
  ResultPartition(std::shared_ptr<BufferPool> pool,
                  std::vector<std::shared_ptr<ChannelSink>> targets,
                  const std::atomic<bool>* cancelled, StateTimer* backpressured);
  ~ResultPartition() override;

  int numChannels() const noexcept override { return static_cast<int>(targets_.size()); }
  WriteCursor* cursors() noexcept override { return cursors_.data(); }
  bool advance(int channel) noexcept override;
  void emitWatermark(std::int64_t watermark) noexcept override;
  void emitWatermarkStatus(bool idle) noexcept override;

  // Hands every partly filled buffer to its consumer.
  void flushAll();
  bool hasPendingData() const;
  // Flushes every channel, then sends `barrier` (the one object, shared) on each. Takes nothing
  // from the pool, so it never waits on back-pressure.
  void emitBarrier(const std::shared_ptr<const CheckpointBarrier>& barrier);
  // An unaligned checkpoint's barrier: flushes every channel, then hands `barrier` to each sink as
  // a priority event, which overtakes the buffers still queued for the consumer. The data
  // buffers it overtakes on this side (waiting for credit to another TaskManager) go to
  // `persist` with their channel, in order: they are the producer's in-flight output state.
  void emitPriorityBarrier(const std::shared_ptr<const CheckpointBarrier>& barrier,
                           const std::function<void(int channel, const Buffer&)>& persist);
  // ChannelSink::settleBarrier on every channel: how many still hold the aligned barrier of
  // checkpoint `id` (and so the producer's in-flight output for it is not known yet).
  int settleBarrier(std::int64_t id, std::int64_t cutoff_ms,
                    const std::function<void(int channel, const Buffer&)>& persist);
  // Restore from an unaligned checkpoint, before anything else is emitted: sends a copy of a
  // buffer of in-flight output persisted by emitPriorityBarrier on `channel`.
  void emitRecovered(int channel, const std::uint8_t* data, std::size_t size);
  // Flushes, then sends end-of-input on every channel.
  void finish();
  // Drops current buffers without sending them (after failure or cancellation).
  void discard();

  BufferPool& pool() { return *pool_; }

 private:
  void submit(int channel);
  // Flushes every channel, then sends `event` (a copy) on each.
  void broadcastEvent(Buffer::Kind kind, std::int64_t value);

  std::shared_ptr<BufferPool> pool_;
  std::vector<std::shared_ptr<ChannelSink>> targets_;
  std::vector<WriteCursor> cursors_;
  const std::atomic<bool>* cancelled_;
  StateTimer* backpressured_;
};

}  // namespace weir::engine
