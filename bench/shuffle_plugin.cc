// The job of the cluster shuffle benchmark (bench/cluster_bench.cc): records of 100 bytes on the
// wire (96 bytes of record, 4 of frame header) hashed by key
// from every source subtask to the sink subtask on the *other* TaskManager, so that every record
// crosses the loopback data plane once.
//
//   --arg records=N   records in all, split between the source subtasks (default 10,000,000)
//
// With parallelism 2 and two TaskManagers of one slot each, slot i (subtask i of every vertex)
// runs on TaskManager i. Source subtask s only emits keys that the hash partitioner sends to
// subtask 1 - s.
#include <weir/weir.h>

#include <array>
#include <cstdint>
#include <vector>

namespace {

struct Record {
  std::int64_t key = 0;
  std::array<char, 88> payload{};  // 96 bytes in all; Serde adds nothing for trivially copyable types
};
static_assert(sizeof(Record) == 96);

constexpr int kParallelism = 2;
constexpr int kMaxParallelism = 128;
constexpr int kKeysPerTarget = 64;

// Keys whose key group belongs to `target` at parallelism 2.
std::vector<std::int64_t> keysFor(int target) {
  std::vector<std::int64_t> keys;
  for (std::int64_t k = 0; static_cast<int>(keys.size()) < kKeysPerTarget; ++k) {
    if (weir::subtaskForKeyGroup(weir::keyGroupOf(k, kMaxParallelism), kParallelism,
                                 kMaxParallelism) == target) {
      keys.push_back(k);
    }
  }
  return keys;
}

// Sets each record's key so that it leaves for the other subtask.
class AimAtOtherSubtask {
 public:
  void open(const weir::RuntimeContext& ctx) { keys_ = keysFor(1 - ctx.subtaskIndex()); }
  Record map(const std::uint64_t& i) const {
    Record r;
    r.key = keys_[i % kKeysPerTarget];
    r.payload[0] = static_cast<char>(i);
    return r;
  }

 private:
  std::vector<std::int64_t> keys_;
};

struct Discard {
  void invoke(const std::int64_t&) {}
};

void build(weir::JobBuilder& job) {
  job.name("shuffle benchmark");
  const auto n = static_cast<std::uint64_t>(job.args().getInt("records", 10'000'000));
  job.fromGenerator([](std::uint64_t i) { return i; }, n)
      .uid("source")
      .name("source")
      .map(AimAtOtherSubtask{})
      .uid("aim")
      .keyBy([](const Record& r) { return r.key; })
      .process([](const Record&, weir::KeyedContext<std::int64_t>&,
                  weir::Collector<std::int64_t>&) {})
      .uid("receive")
      .name("receive")
      .addSink(Discard{})
      .uid("discard");
}

}  // namespace

WEIR_PLUGIN("shuffle_bench", "1.0.0", build)
