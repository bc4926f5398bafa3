// The input side of a task: one queue of buffers per input channel, and the list of channels that
// have something to read, served round robin so that no input starves another.
//
// Producers (any thread) push; the owning task thread polls. One mutex per gate, taken once per
// buffer. The consumer is only signalled when it is actually waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/network/buffer_pool.h"

namespace weir::engine {

class InputGate {
 public:
  explicit InputGate(int num_channels) : queues_(static_cast<std::size_t>(num_channels)) {}

  int numChannels() const { return static_cast<int>(queues_.size()); }

  void push(int channel, Buffer buffer);

  struct Item {
    int channel;
    Buffer buffer;
  };
  // The next buffer, waiting until `deadline` at the latest; nullopt on timeout or when `cancelled`
  // is set (see wake()).
  std::optional<Item> poll(std::chrono::steady_clock::time_point deadline,
                           const std::atomic<bool>& cancelled);
  void wake();

  // Buffers queued over all channels (for tests and metrics).
  std::size_t queued() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<Buffer>> queues_;  // guarded by mu_
  std::deque<int> available_;               // guarded by mu_: channels with a non-empty queue
  bool waiting_ = false;                    // guarded by mu_
};

}  // namespace weir::engine
