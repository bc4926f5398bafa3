// The hand-written baseline loops. They live in their own translation unit, compiled with aligned
// loops (see CMakeLists.txt): a 7-instruction loop's speed otherwise depends by up to 1.6x on where
// it happens to land relative to 64-byte boundaries, which made the baseline (and every ratio
// against it) change whenever unrelated code in the same file changed.
#include "bench_functions.h"
#include "weir/key_groups.h"

namespace weir_bench {

[[gnu::noinline]] void chainBaselineLoop(std::uint64_t n, const std::shared_ptr<Totals>& totals) {
  auto gen = kGen;
  auto map = kMap;
  auto filter = kFilter;
  CountingSink sink(totals);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::int64_t v = gen(i);
    const std::int64_t m = map(v);
    if (filter(m)) sink.invoke(m);
  }
  sink.close();
  doNotOptimize(totals->sum);
}

[[gnu::noinline]] std::uint64_t hashBaselineLoop(std::uint64_t n,
                                                 const std::shared_ptr<Totals>& totals) {
  auto gen = kGen;
  auto key = kKey;
  weir::KeyHasher<std::int64_t> hasher;
  constexpr int kMaxParallelism = weir::kDefaultMaxParallelism;
  CountingSink sink(totals);
  // The key group is summed rather than mapped to a subtask: with one target subtask
  // subtaskForKeyGroup folds to a constant and the hash would be optimised away.
  std::uint64_t group_sum = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::int64_t v = gen(i);
    group_sum += static_cast<std::uint64_t>(weir::keyGroupForHash(hasher(key(v)), kMaxParallelism));
    sink.invoke(v);
  }
  sink.close();
  doNotOptimize(group_sum);
  return group_sum;
}

}  // namespace weir_bench
