// The input side of a task: one queue of buffers per input channel, and the list of channels that
// have something to read, served round robin so that no input starves another.
//
// Producers (any thread) push; the owning task thread polls. One mutex per gate, taken once per
// buffer. The consumer is only signalled when it is actually waiting.
//
// Barrier alignment: the task holds back a channel that delivered a checkpoint barrier until the
// barrier has arrived on every channel. A held-back (blocked) channel keeps receiving into its
// queue but is not in the list of readable channels, so poll() neither returns its buffers nor
// spins over it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/network/buffer_pool.h"

namespace weir::engine {

class InputGate {
 public:
  explicit InputGate(int num_channels)
      : queues_(static_cast<std::size_t>(num_channels)),
        blocked_(static_cast<std::size_t>(num_channels), false) {}

  int numChannels() const { return static_cast<int>(queues_.size()); }

  void push(int channel, Buffer buffer);
  // A barrier of an unaligned checkpoint: queued after the last barrier in the channel's queue (at
  // its front when there is none), overtaking the data buffers behind that point; their number is
  // added to the barrier's overtaken count. A blocked channel stays blocked.
  void pushPriority(int channel, Buffer barrier);
  // The aligned-checkpoint timeout: every barrier of a checkpoint (not a savepoint) triggered at
  // or before `cutoff_ms` (ms since the epoch) that still waits behind data in the queue of a
  // channel that is not blocked becomes a barrier of an unaligned checkpoint: a copy marked
  // unaligned moves forward as if pushed with pushPriority, counting the data it overtakes.
  // Returns how many moved.
  int promoteBarriers(std::int64_t cutoff_ms);
  // Calls `copy` on the first data buffers queued on `channel`, at most `max` of them (events are
  // skipped); returns how many. The buffers stay queued. Consumer thread only (what it copies is
  // what its next polls of the channel return).
  std::int64_t copyQueued(int channel, std::int64_t max,
                          const std::function<void(const Buffer&)>& copy) const;

  struct Item {
    int channel;
    Buffer buffer;
  };
  // The next buffer of a channel that is not blocked, waiting until `deadline` at the latest;
  // nullopt on timeout, or when nothing is readable and `cancelled` or `*interrupt` (when given)
  // is set. Both flags belong to the caller, who sets one and then calls wake().
  std::optional<Item> poll(std::chrono::steady_clock::time_point deadline,
                           const std::atomic<bool>& cancelled,
                           const std::atomic<bool>* interrupt = nullptr);
  // Makes a waiting poll() re-check its flags.
  void wake();
  // The first checkpoint barrier at the head of a channel that is not blocked, without waiting;
  // nullopt when there is none. Takes nothing else: for a task waiting for an output buffer, which
  // must not take data, but can take a barrier (it needs no buffer to pass one on), and for a task
  // between two batches of records of one buffer. `reading` (unless -1) is the channel whose
  // buffer the task has read only in part: a barrier of an aligned checkpoint at its head follows
  // the rest of that buffer and is left queued; an unaligned one is taken. Consumer thread.
  std::optional<Item> pollBarrier(int reading = -1);
  // Called after a barrier was queued (push or pushPriority), on the pushing thread and outside
  // the gate's lock: how a task waiting for an output buffer learns it may have a barrier to take.
  // Set before the gate is shared.
  void setBarrierListener(std::function<void()> listener) { on_barrier_ = std::move(listener); }

  // Holds back channel `channel`: poll() skips it (its buffers stay queued) until unblockAll().
  void blockChannel(int channel);
  // Releases every held-back channel; those with queued buffers become readable again, in channel
  // order.
  void unblockAll();
  bool isBlocked(int channel) const;

  // Buffers queued over all channels, blocked ones included (for tests and metrics).
  std::size_t queued() const;
  // True while the consumer waits in poll() (for tests).
  bool waiting() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<BufferQueue> queues_;  // guarded by mu_
  // guarded by mu_: the channels with a non-empty queue that are not blocked, each once
  std::deque<int> available_;
  std::vector<bool> blocked_;  // guarded by mu_
  int num_blocked_ = 0;        // guarded by mu_
  bool waiting_ = false;       // guarded by mu_
  std::function<void()> on_barrier_;
};

}  // namespace weir::engine
