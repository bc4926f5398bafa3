// weir_heap_snapshot_bench: what a checkpoint of heap keyed state costs the task thread, with the
// synchronous serialisation of every key group (what a heap snapshot did before it was copy on
// write) as the baseline, in the same process.
//
//   weir_heap_snapshot_bench [--keys N]... [--payload-bytes B] [--runs R]
//
// For each key count N (default 1e6 and 4e6; repeat the flag for others) one heap backend over
// 128 key groups holds, per int64 key, a ValueState<int64> counter and a ValueState<string> of B
// bytes (default 64). Then, best of R runs (default 3):
//
// serialise   every key group written to bytes on the task thread: the pause a checkpoint made
//             before (the baseline).
// freeze      HeapBackendBase::freeze(): the pause a checkpoint makes now.
// pass        one update of every key's counter with no snapshot held (the steady state: a pass
//             after the previous freeze came first).
// pass+cow    the same pass right after a freeze, while another thread writes the frozen key
//             groups (as the checkpoint writer does, letting go of each once written): a group
//             is copied on its first change if it was not written yet.
// longest     the longest single update in the last run's pass and pass+cow (an update that copies
//             the state it changes first takes that copy).
// written     how long that other thread took to write every key group.
// hot         one update each of 1024 keys spread over the key groups (hot keys), with no snapshot
//             held and right after a freeze whose snapshot is still held (each first change then
//             copies what it changes), and the longest single update of the latter; run between
//             pass and pass+cow.
//
// Ratios: serialise / freeze (how much shorter the pause is), pass / pass+cow (the first pass
// after a checkpoint against the steady state; 1 = no cost) and hot / hot+cow. The frozen bytes
// are restored into a fresh backend and checked against the values at the freeze.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "weir/weir.h"

namespace {

using Clock = std::chrono::steady_clock;
using weir::VoidNamespace;
using Backend = weir::detail::HeapKeyedBackend<std::int64_t>;
constexpr int kMaxParallelism = 128;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_heap_snapshot_bench: FAILED: %s\n", msg.c_str());
  std::exit(1);
}

struct Keyed {
  explicit Keyed(int payload_bytes)
      : backend(nullptr, {0, kMaxParallelism - 1}, kMaxParallelism), payload(payload_bytes, 'x') {
    weir::ValueStateDescriptor<std::int64_t> cd("count");
    count = &weir::detail::createState<VoidNamespace>(backend, cd);
    weir::ValueStateDescriptor<std::string> pd("payload");
    text = &weir::detail::createState<VoidNamespace>(backend, pd);
  }
  void setKey(std::int64_t k) {
    key = k;
    backend.setCurrentKey(key, weir::keyGroupOf(key, kMaxParallelism));
  }
  void fill(std::int64_t keys) {
    for (std::int64_t k = 0; k < keys; ++k) {
      setKey(k);
      count->update(k);
      payload[static_cast<std::size_t>(k) % payload.size()] = static_cast<char>('a' + k % 26);
      text->update(payload);
    }
  }
  // Adds one to every counter; returns the longest single update (seconds).
  double pass(std::int64_t keys) { return add(std::views::iota(std::int64_t{0}, keys), 1); }
  // Adds `delta` to the counters of `ks`; returns the longest single update (seconds).
  template <class Keys>
  double add(const Keys& ks, std::int64_t delta) {
    Clock::duration longest{};
    Clock::time_point last = Clock::now();
    for (std::int64_t k : ks) {
      setKey(k);
      count->update(*count->get() + delta);
      const Clock::time_point now = Clock::now();
      longest = std::max(longest, now - last);
      last = now;
    }
    return std::chrono::duration<double>(longest).count();
  }
  std::int64_t countOf(std::int64_t k) {
    setKey(k);
    const std::int64_t* v = count->get();
    return v != nullptr ? *v : -1;
  }

  Backend backend;
  std::string payload;
  std::int64_t key = 0;
  weir::ValueState<std::int64_t>* count = nullptr;
  weir::ValueState<std::string>* text = nullptr;
};

// As the checkpoint writer does: each key group is let go of once written.
std::vector<std::string> writeAll(Backend::Frozen& frozen) {
  std::vector<std::string> groups;
  for (int kg = 0; kg < kMaxParallelism; ++kg) {
    groups.push_back(frozen.writeKeyGroup(kg));
    frozen.releaseKeyGroup(kg);
  }
  return groups;
}

struct Times {
  double serialise = 1e9, freeze = 1e9, pass = 1e9, cow_pass = 1e9, written = 1e9;
  double longest = 0, cow_longest = 0;  // longest single update of the last run's passes
  double hot = 1e9, hot_cow = 1e9, hot_longest = 0;
  std::size_t bytes = 0;
};

void runOnce(std::int64_t keys, int payload_bytes, Times& best) {
  Keyed s(payload_bytes);
  s.fill(keys);

  auto start = Clock::now();
  std::vector<std::string> groups = writeAll(*s.backend.freeze());
  best.serialise = std::min(best.serialise, secondsSince(start));
  best.bytes = 0;
  for (const auto& g : groups)
    best.bytes += g.size();
  groups.clear();

  s.pass(keys);  // counters: k + 1; after the freeze above, as after any checkpoint
  start = Clock::now();
  best.longest = s.pass(keys);  // k + 2
  best.pass = std::min(best.pass, secondsSince(start));

  // Hot keys: 1024 of them, spread over the key groups.
  std::vector<std::int64_t> hot;
  for (std::int64_t k = 0; k < keys; k += std::max<std::int64_t>(1, keys / 1024))
    hot.push_back(k);
  start = Clock::now();
  s.add(hot, 1);
  best.hot = std::min(best.hot, secondsSince(start));
  std::unique_ptr<Backend::Frozen> frozen = s.backend.freeze();
  start = Clock::now();
  best.hot_longest = s.add(hot, 1);
  best.hot_cow = std::min(best.hot_cow, secondsSince(start));
  frozen.reset();
  s.add(hot, -2);  // back to k + 2

  start = Clock::now();
  frozen = s.backend.freeze();
  best.freeze = std::min(best.freeze, secondsSince(start));
  double written = 0;
  std::thread writer([&] {
    const auto begin = Clock::now();
    groups = writeAll(*frozen);
    written = secondsSince(begin);
    frozen.reset();
  });
  start = Clock::now();
  best.cow_longest = s.pass(keys);  // k + 3, the frozen counters stay at k + 2
  best.cow_pass = std::min(best.cow_pass, secondsSince(start));
  writer.join();
  best.written = std::min(best.written, written);

  Keyed restored(payload_bytes);
  for (int kg = 0; kg < kMaxParallelism; ++kg) {
    const std::string& g = groups[static_cast<std::size_t>(kg)];
    restored.backend.restoreKeyGroup(
        kg, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(g.data()),
                                          g.size()));
  }
  for (std::int64_t k = 0; k < keys; k += std::max<std::int64_t>(1, keys / 10'000)) {
    if (restored.countOf(k) != k + 2) die("key " + std::to_string(k) + ": wrong frozen value");
    if (s.countOf(k) != k + 3) die("key " + std::to_string(k) + ": wrong live value");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Heap keyed state checkpoints: copy-on-write freeze against synchronous "
               "serialisation"};
  std::vector<double> key_counts;
  int payload_bytes = 64;
  int runs = 3;
  app.add_option("--keys", key_counts, "keys in the state (repeatable; default 1e6 and 4e6)")
      ->check(CLI::PositiveNumber);
  app.add_option("--payload-bytes", payload_bytes, "bytes of each key's string state")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--runs", runs, "runs per key count (best of)")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  if (key_counts.empty()) key_counts = {1e6, 4e6};

  std::printf("| keys | state bytes | serialise (before) | freeze (now) | ratio | pass | "
              "pass+cow | ratio | longest update: pass / pass+cow | written (other thread) | "
              "hot | hot+cow | ratio | longest hot+cow |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: | ---: |\n");
  for (double n : key_counts) {
    const auto keys = static_cast<std::int64_t>(n);
    Times t;
    for (int r = 0; r < runs; ++r)
      runOnce(keys, payload_bytes, t);
    std::printf("| %lld | %.1f MB | %.1f ms | %.3f ms | %.0f | %.1f ms | %.1f ms | %.2f | "
                "%.3f / %.3f ms | %.1f ms | %.3f ms | %.3f ms | %.2f | %.3f ms |\n",
                static_cast<long long>(keys), static_cast<double>(t.bytes) / 1e6,
                t.serialise * 1e3, t.freeze * 1e3, t.serialise / t.freeze, t.pass * 1e3,
                t.cow_pass * 1e3, t.pass / t.cow_pass, t.longest * 1e3, t.cow_longest * 1e3,
                t.written * 1e3, t.hot * 1e3, t.hot_cow * 1e3, t.hot / t.hot_cow,
                t.hot_longest * 1e3);
    std::fflush(stdout);
  }
  return 0;
}
