// weir_source_bench: what a rescaled generator costs per record, with the same generator at a
// fresh start (one stride) as the baseline, in the same process; and what its checkpoint hook and
// restore cost.
//
//   weir_source_bench [--records N] [--runs R]
//
// Each case polls a fromGenerator source (identity function, unbounded) directly into a consumer
// that checks the indices increase and sums them, until N records (default 3e8) were emitted; best
// of R runs (default 3):
//
// fresh       one stride {0, 1}: the generator's loop (the baseline).
// 4 strides   restored with the strides a subtask gets when a savepoint of one subtask (at max
//             parallelism 128) resumes at parallelism 3: the 43 pieces of the first third pair up
//             into {0, 2}, {1, 8}, {5, 32}, {21, 128}.
// 43 strides  restored with 43 pieces that do not pair: {i, 128} for i < 43.
//
// With several strides the source emits their indices in increasing order: both restored cases
// are in phase, so from a table of the offsets in one period (128 indices). Ratio: case rate /
// fresh rate. Then the checkpoint hook
// (cutStrides of one stride into 128 pieces) and the restore (mergeStrides of them back into
// one), best per call of 1e5 calls.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "weir/weir.h"

namespace {

using Clock = std::chrono::steady_clock;
using weir::GeneratorStride;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_source_bench: FAILED: %s\n", msg.c_str());
  std::exit(1);
}

// Sums what it gets and counts indices that did not increase.
class CheckingSink final : public weir::BatchConsumer<std::int64_t> {
 public:
  void consume(const weir::RecordBatch<std::int64_t>& batch) override {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const std::int64_t v = batch[i];
      disorder += v <= last ? 1 : 0;
      last = v;
      sum += static_cast<std::uint64_t>(v);
    }
    records += batch.size();
  }
  void consumeWatermark(std::int64_t) override {}
  void consumeWatermarkStatus(bool) override {}

  std::int64_t last = -1;
  std::uint64_t sum = 0;
  std::uint64_t records = 0;
  std::uint64_t disorder = 0;
};

auto identity = [](std::uint64_t i) { return static_cast<std::int64_t>(i); };
using Generator = weir::GeneratorSource<std::int64_t, decltype(identity)>;

// Seconds to emit `n` records from a generator restored with `strides` (fresh when empty).
double emit(const std::vector<GeneratorStride>& strides, std::uint64_t n, CheckingSink& sink) {
  weir::detail::OperatorStateStore store;
  if (!strides.empty()) {
    weir::detail::OperatorStateStore saved;
    weir::RuntimeContext saved_ctx("bench", "source", 0, 1, 128, nullptr);
    saved_ctx.setOperatorStateStore(&saved);
    saved_ctx
        .getOperatorListState(weir::ListStateDescriptor<GeneratorStride>(weir::kSourceStridesState))
        .update(strides);
    store.restore(saved.snapshot());
  }
  weir::RuntimeContext ctx("bench", "source", 0, 1, 128, nullptr);
  ctx.setOperatorStateStore(&store);
  weir::VertexCounters counters;
  weir::Collector<std::int64_t> out;
  out.bind(&sink, &counters);
  Generator source(identity, weir::kUnbounded);
  source.open(ctx);
  const auto start = Clock::now();
  while (sink.records < n) {
    source.pollNext(out);
    out.flush();
  }
  return secondsSince(start);
}

struct Case {
  const char* name;
  std::vector<GeneratorStride> strides;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"weir_source_bench: a rescaled generator against a fresh one"};
  double records = 3e8;
  int runs = 3;
  app.add_option("--records", records, "records per case and run")->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "runs per case (best is reported)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  const auto n = static_cast<std::uint64_t>(records);

  std::vector<GeneratorStride> unpaired;
  for (std::uint64_t i = 0; i < 43; ++i)
    unpaired.push_back({i, 128});
  const std::vector<GeneratorStride> pieces =
      weir::source_detail::cutStrides({{0, 1}}, weir::kUnbounded, 1, 128);
  const std::vector<GeneratorStride> third(pieces.begin(), pieces.begin() + 43);
  const std::vector<Case> cases = {{"fresh", {}},
                                   {"4 strides", weir::source_detail::mergeStrides(third, "", 0)},
                                   {"43 strides", unpaired}};
  if (cases[1].strides.size() != 4) die("the first third of the pieces did not pair into 4");

  std::printf("weir_source_bench: %llu records per case, best of %d runs\n\n",
              static_cast<unsigned long long>(n), runs);
  std::printf("%-12s %8s %10s %8s\n", "case", "best s", "rate", "ratio");
  double fresh_rate = 0;
  for (const Case& c : cases) {
    double best = 1e300;
    for (int r = 0; r < runs; ++r) {
      CheckingSink sink;
      best = std::min(best, emit(c.strides, n, sink));
      if (sink.disorder != 0) die(std::string(c.name) + ": indices out of order");
      if (c.strides.empty() && sink.sum != (sink.records - 1) * sink.records / 2) {
        die("fresh: wrong sum");
      }
    }
    const double rate = static_cast<double>(n) / best;
    if (c.strides.empty()) fresh_rate = rate;
    std::printf("%-12s %8.3f %7.1f M/s %8.3f\n", c.name, best, rate / 1e6, rate / fresh_rate);
  }

  constexpr int kCalls = 100000;
  double cut_best = 1e300;
  double merge_best = 1e300;
  std::size_t check = 0;
  for (int r = 0; r < runs; ++r) {
    auto start = Clock::now();
    for (int i = 0; i < kCalls; ++i)
      check += weir::source_detail::cutStrides({{static_cast<std::uint64_t>(i), 1}},
                                               weir::kUnbounded, 1, 128)
                   .size();
    cut_best = std::min(cut_best, secondsSince(start) / kCalls);
    start = Clock::now();
    for (int i = 0; i < kCalls; ++i)
      check += weir::source_detail::mergeStrides(pieces, "", 0).size();
    merge_best = std::min(merge_best, secondsSince(start) / kCalls);
  }
  if (check != static_cast<std::size_t>(runs) * kCalls * 129) die("cut or merge miscounted");
  std::printf(
      "\ncheckpoint hook (1 stride -> 128 pieces): %.2f us; restore (128 pieces -> 1): "
      "%.2f us\n",
      cut_best * 1e6, merge_best * 1e6);
  return 0;
}
