// The user functions of the benchmark jobs, defined once and shared by the jobs (runtime_bench.cc)
// and the hand-written baseline loops (baseline.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "weir/collector.h"
#include "weir/context.h"

namespace weir_bench {

// Keeps `value` alive as far as the optimiser is concerned.
template <class T>
inline void doNotOptimize(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

inline constexpr auto kGen = [](std::uint64_t i) { return static_cast<std::int64_t>(i); };
inline constexpr auto kMap = [](const std::int64_t& v) { return v * 3 + 1; };
inline constexpr auto kFilter = [](const std::int64_t& v) { return (v & 7) != 0; };
inline constexpr std::int64_t kNumKeys = 1024;
inline constexpr auto kKey = [](const std::int64_t& v) { return v % kNumKeys; };
inline constexpr auto kForward = [](const std::int64_t& v, weir::KeyedContext<std::int64_t>&,
                                    weir::Collector<std::int64_t>& out) { out.collect(v); };

// What the sink instances saw; published by close(). Sums wrap modulo 2^64.
struct Totals {
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> sum{0};
  std::atomic<int> closed{0};
};

// Counts records and sums their values in members; close() publishes them to the shared totals.
class CountingSink {
 public:
  explicit CountingSink(std::shared_ptr<Totals> totals) : totals_(std::move(totals)) {}

  void invoke(const std::int64_t& v) {
    ++count_;
    sum_ += static_cast<std::uint64_t>(v);
  }

  void close() {
    totals_->count.fetch_add(count_, std::memory_order_relaxed);
    totals_->sum.fetch_add(sum_, std::memory_order_relaxed);
    totals_->closed.fetch_add(1, std::memory_order_release);
  }

 private:
  std::shared_ptr<Totals> totals_;
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
};

// for i in [0, n): v = gen(i); m = map(v); if (filter(m)) sink.invoke(m); then sink.close().
void chainBaselineLoop(std::uint64_t n, const std::shared_ptr<Totals>& totals);

// for i in [0, n): v = gen(i); kg = keyGroup(xxh3(key(v))); sink.invoke(v); then sink.close().
// Returns the sum of the key groups (which keeps the hash from being optimised away).
std::uint64_t hashBaselineLoop(std::uint64_t n, const std::shared_ptr<Totals>& totals);

}  // namespace weir_bench
