// Time a task spends in one state (busy, idle, back-pressured), readable from other threads while
// the state lasts: a reader sees the accumulated total plus the running stretch.
//
// One writer (the task thread), any number of readers. A read racing with end() may briefly miss
// the stretch that just ended; it never counts it twice.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace weir::engine {

class StateTimer {
 public:
  using Clock = std::chrono::steady_clock;

  void begin(Clock::time_point now) { since_ns_.store(toNanos(now), std::memory_order_release); }
  void end(Clock::time_point now) {
    const std::int64_t since = since_ns_.exchange(0, std::memory_order_acq_rel);
    if (since != 0) {
      total_ns_.fetch_add(static_cast<std::uint64_t>(toNanos(now) - since),
                          std::memory_order_relaxed);
    }
  }
  void add(Clock::duration d) {
    total_ns_.fetch_add(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()),
        std::memory_order_relaxed);
  }
  std::uint64_t read(Clock::time_point now = Clock::now()) const {
    const std::int64_t since = since_ns_.load(std::memory_order_acquire);
    const std::uint64_t total = total_ns_.load(std::memory_order_relaxed);
    return since == 0 ? total : total + static_cast<std::uint64_t>(toNanos(now) - since);
  }

 private:
  static std::int64_t toNanos(Clock::time_point t) {
    // +1 keeps a real time point distinct from "not in this state" (0).
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count() + 1;
  }

  std::atomic<std::uint64_t> total_ns_{0};
  std::atomic<std::int64_t> since_ns_{0};
};

}  // namespace weir::engine
