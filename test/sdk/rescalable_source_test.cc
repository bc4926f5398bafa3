// Sources restored at another parallelism: the number sequence source (fromSequence), the
// generator (fromGenerator), the collection source (fromCollection) and the text file source
// (readTextFile) keep their position per split or stride in split-distributed operator state, and
// chains restored from redistributed snapshots emit every number exactly once.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "operator_harness.h"
#include "process_util.h"
#include "weir/weir.h"

namespace {

using weir::ChainInstance;
using weir::ChainRestore;
using weir::ChainSnapshot;
using weir::CheckpointOptions;
using weir::GeneratorStride;
using weir::ListStateDescriptor;
using weir::RuntimeContext;
using weir::SequenceSplit;
using weir::SourceStatus;
using weir::detail::OperatorStateSnapshot;
using weir::detail::OperatorStateStore;

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// ---- Sources driven directly, with a store of their own ----

RuntimeContext contextFor(OperatorStateStore& store, int subtask, int parallelism,
                          int max_parallelism = 128) {
  RuntimeContext ctx("job", "task", subtask, parallelism, max_parallelism, nullptr);
  ctx.setOperatorStateStore(&store);
  return ctx;
}

// Opens `source` as subtask `subtask` of `parallelism`, then polls it `polls` times (or to its
// end when polls < 0), returning what it emitted.
template <class S>
std::vector<std::int64_t> drive(S& source, OperatorStateStore& store, int subtask, int parallelism,
                                int polls = -1, int max_parallelism = 128) {
  weir::test::Recorder<std::int64_t> recorder;
  weir::VertexCounters counters;
  weir::Collector<std::int64_t> out;
  out.bind(&recorder, &counters);
  RuntimeContext ctx = contextFor(store, subtask, parallelism, max_parallelism);
  source.open(ctx);
  for (int i = 0; polls < 0 || i < polls; ++i) {
    const SourceStatus status = source.pollNext(out);
    out.flush();
    if (status == SourceStatus::kEndOfInput) break;
  }
  return recorder.records;
}

std::vector<SequenceSplit> splitsOf(OperatorStateStore& store) {
  RuntimeContext ctx = contextFor(store, 0, 1);
  return ctx.getOperatorListState(ListStateDescriptor<SequenceSplit>(weir::kSourceSplitsState))
      .get();
}

std::vector<GeneratorStride> stridesOf(OperatorStateStore& store) {
  RuntimeContext ctx = contextFor(store, 0, 1);
  return ctx.getOperatorListState(ListStateDescriptor<GeneratorStride>(weir::kSourceStridesState))
      .get();
}

std::vector<std::int64_t> closedRange(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  if (from > to) return out;
  for (std::int64_t v = from;; ++v) {
    out.push_back(v);
    if (v == to) return out;
  }
}

std::vector<std::int64_t> sorted(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ---- Chains of the job source -> collecting sink ----

using SourceDef = std::function<weir::DataStream<std::int64_t>(weir::JobBuilder&)>;

struct CollectingSink {
  std::shared_ptr<std::vector<std::int64_t>> out;
  void invoke(const std::int64_t& v) { out->push_back(v); }
};

// One subtask of the job as one chain, optionally restored from the source's operator state.
class SubtaskChain {
 public:
  SubtaskChain(const SourceDef& source, int subtask, int parallelism,
               const std::string* restored_source_state = nullptr) {
    auto program = weir::makeProgram(
        [&](weir::JobBuilder& job) { source(job).addSink(CollectingSink{records_}, "collect"); });
    REQUIRE_MESSAGE(program.isOk(), program.status().message());
    program_ = std::move(*program);
    weir::ChainSpec spec;
    spec.job_name = "rescale";
    spec.subtask_index = subtask;
    spec.parallelism = parallelism;
    spec.checkpointing = true;
    for (const auto& v : program_->graph().vertices) {
      spec.vertex_ids.push_back(v.id);
      spec.max_parallelism.push_back(128);
      spec.vertex_uids.push_back(v.uid);
    }
    source_vertex_ = spec.vertex_ids.front();
    REQUIRE(program_->createChain(spec, env_, chain_).isOk());
    if (restored_source_state != nullptr) {
      ChainRestore restore;
      restore.checkpoint_id = 1;
      restore.vertices.push_back({source_vertex_, *restored_source_state, 0, {}});
      const weir::Status s = chain_->restoreState(restore);
      REQUIRE_MESSAGE(s.isOk(), s.message());
    }
    const weir::Status s = chain_->open();
    REQUIRE_MESSAGE(s.isOk(), s.message());
  }
  ~SubtaskChain() { CHECK(chain_->close().isOk()); }
  SubtaskChain(const SubtaskChain&) = delete;
  SubtaskChain& operator=(const SubtaskChain&) = delete;

  // Polls the source `n` times (or until its end; n < 0: to the end).
  void poll(int n) {
    for (int i = 0; (n < 0 || i < n) && !ended_; ++i) {
      SourceStatus status = SourceStatus::kMoreAvailable;
      std::size_t emitted = 0;
      const weir::Status s = chain_->pollSource(std::numeric_limits<std::size_t>::max(), status,
                                                emitted);
      REQUIRE_MESSAGE(s.isOk(), s.message());
      ended_ = status == SourceStatus::kEndOfInput;
    }
  }
  bool ended() const { return ended_; }
  // The source vertex's encoded operator state at a checkpoint taken now.
  std::string snapshotSource(std::int64_t checkpoint_id) {
    ChainSnapshot snap;
    CheckpointOptions options;
    options.checkpoint_id = checkpoint_id;
    options.savepoint = true;
    options.stop = true;
    const weir::Status s = chain_->snapshotState(options, snap);
    REQUIRE_MESSAGE(s.isOk(), s.message());
    for (const auto& v : snap.vertices) {
      if (v.vertex_id == source_vertex_) return v.operator_state;
    }
    FAIL("the snapshot has no entry for the source");
    return {};
  }
  const std::vector<std::int64_t>& records() const { return *records_; }

 private:
  std::shared_ptr<std::vector<std::int64_t>> records_ =
      std::make_shared<std::vector<std::int64_t>>();
  weir::test::ManualEnvironment env_;
  std::unique_ptr<weir::JobProgram> program_;
  std::unique_ptr<ChainInstance> chain_;
  int source_vertex_ = 0;
  bool ended_ = false;
};

// The operator state of `old_subtasks` (encoded, one per old subtask) for `new_parallelism`
// subtasks, as the engine assigns it on restore.
std::vector<std::string> redistribute(const std::vector<std::string>& old_subtasks,
                                      int new_parallelism) {
  std::vector<std::vector<OperatorStateSnapshot>> decoded;
  for (const std::string& bytes : old_subtasks) {
    decoded.push_back(bytes.empty() ? std::vector<OperatorStateSnapshot>{}
                                    : weir::detail::decodeOperatorState(bytes));
  }
  std::vector<std::string> out;
  for (const auto& subtask : weir::detail::redistributeOperatorState(decoded, new_parallelism)) {
    out.push_back(weir::detail::encodeOperatorState(subtask));
  }
  return out;
}

// One run of the job at one parallelism: how often each subtask polls before the stop with
// savepoint (the last stage runs to the end instead).
struct Stage {
  int parallelism = 1;
  std::vector<int> polls;
};

// What each subtask of each stage emitted (before its stage's savepoint); every stage after the
// first resumes from the previous one's savepoint, redistributed to its parallelism.
std::vector<std::vector<std::vector<std::int64_t>>> runStages(const SourceDef& source,
                                                              const std::vector<Stage>& stages) {
  std::vector<std::vector<std::vector<std::int64_t>>> out;
  std::vector<std::string> saved;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const Stage& stage = stages[i];
    const bool last = i + 1 == stages.size();
    const std::vector<std::string> restored =
        i == 0 ? std::vector<std::string>{} : redistribute(saved, stage.parallelism);
    saved.clear();
    out.emplace_back();
    for (int s = 0; s < stage.parallelism; ++s) {
      CAPTURE(i);
      CAPTURE(s);
      SubtaskChain chain(source, s, stage.parallelism,
                         i == 0 ? nullptr : &restored[static_cast<std::size_t>(s)]);
      chain.poll(last ? -1 : stage.polls[static_cast<std::size_t>(s)]);
      if (last) {
        CHECK(chain.ended());
      } else {
        saved.push_back(chain.snapshotSource(static_cast<std::int64_t>(i) + 1));
      }
      out.back().push_back(chain.records());
    }
  }
  return out;
}

std::vector<std::int64_t> flatten(const std::vector<std::vector<std::int64_t>>& subtasks) {
  std::vector<std::int64_t> out;
  for (const auto& records : subtasks)
    out.insert(out.end(), records.begin(), records.end());
  return out;
}

auto identity = [](std::uint64_t i) { return static_cast<std::int64_t>(i); };
using Generator = weir::GeneratorSource<std::int64_t, decltype(identity)>;

SourceDef sequence(std::int64_t from, std::int64_t to) {
  return [=](weir::JobBuilder& job) { return job.fromSequence(from, to); };
}

SourceDef generator(std::uint64_t count) {
  return [=](weir::JobBuilder& job) { return job.fromGenerator(identity, count); };
}

SourceDef collection(std::int64_t count) {
  return [=](weir::JobBuilder& job) { return job.fromCollection(closedRange(0, count - 1)); };
}

// The lines of `path` (the numbers 0 to count - 1, one per line) as numbers.
SourceDef textFile(const std::string& path) {
  return [=](weir::JobBuilder& job) {
    return job.readTextFile(path).map(
        [](const std::string& line) { return static_cast<std::int64_t>(std::stoll(line)); });
  };
}

}  // namespace

TEST_CASE("sequence source: a fresh start cuts the range into contiguous splits") {
  SUBCASE("1000 numbers, max parallelism 128, parallelism 2: 64 splits each") {
    OperatorStateStore zero_store;
    weir::SequenceSource zero(0, 999);
    CHECK(drive(zero, zero_store, 0, 2, 0).empty());
    const auto zero_splits = splitsOf(zero_store);
    REQUIRE(zero_splits.size() == 64);
    // 1000 = 104 splits of 8 + 24 splits of 7.
    CHECK(zero_splits.front() == SequenceSplit{0, 7});
    CHECK(zero_splits.back() == SequenceSplit{504, 511});

    OperatorStateStore one_store;
    weir::SequenceSource one(0, 999);
    CHECK(drive(one, one_store, 1, 2, 0).empty());
    const auto one_splits = splitsOf(one_store);
    REQUIRE(one_splits.size() == 64);
    CHECK(one_splits.front() == SequenceSplit{512, 519});
    CHECK(one_splits[40] == SequenceSplit{832, 838});
    CHECK(one_splits.back() == SequenceSplit{993, 999});
    for (std::size_t i = 1; i < one_splits.size(); ++i)
      CHECK(one_splits[i].next == one_splits[i - 1].end + 1);

    const auto states = one_store.states();
    REQUIRE(states.size() == 1);
    CHECK(states[0].name == weir::kSourceSplitsState);
    CHECK(states[0].mode == weir::detail::OperatorStateMode::kSplitDistribute);
  }
  SUBCASE("the number of splits follows the max parallelism") {
    OperatorStateStore store;
    weir::SequenceSource source(0, 99);
    drive(source, store, 0, 2, 0, 4);
    CHECK(splitsOf(store) == std::vector<SequenceSplit>{{0, 24}, {25, 49}});
  }
  SUBCASE("the state follows every poll and drops finished splits") {
    OperatorStateStore store;
    weir::SequenceSource source(0, 9999);
    const auto first = drive(source, store, 0, 1, 1);
    REQUIRE(first.size() == weir::kSourceRecordsPerPoll);
    CHECK(first == closedRange(0, weir::kSourceRecordsPerPoll - 1));
    // 10000 numbers in 128 splits: 16 of 79, then 78 each; 1024 = 12 * 79 + 76.
    const auto splits = splitsOf(store);
    REQUIRE(splits.size() == 128 - 12);
    CHECK(splits.front() == SequenceSplit{1024, 12 * 79 + 78});
  }
  SUBCASE("the whole int64 range") {
    OperatorStateStore store;
    weir::SequenceSource source(kMin, kMax);
    const auto first = drive(source, store, 0, 1, 1);
    REQUIRE(first.size() == weir::kSourceRecordsPerPoll);
    CHECK(first.front() == kMin);
    CHECK(first.back() == kMin + weir::kSourceRecordsPerPoll - 1);
    const auto splits = splitsOf(store);
    REQUIRE(splits.size() == 128);
    constexpr std::int64_t kSplitSize = std::int64_t{1} << 57;
    CHECK(splits[0] == SequenceSplit{kMin + weir::kSourceRecordsPerPoll, kMin + kSplitSize - 1});
    CHECK(splits[1] == SequenceSplit{kMin + kSplitSize, kMin + 2 * kSplitSize - 1});
    CHECK(splits.back() == SequenceSplit{kMax - kSplitSize + 1, kMax});
  }
  SUBCASE("at the ends of the int64 range") {
    for (const int p : {1, 2, 3}) {
      std::vector<std::int64_t> low;
      std::vector<std::int64_t> high;
      for (int s = 0; s < p; ++s) {
        OperatorStateStore low_store;
        weir::SequenceSource low_source(kMin, kMin + 10);
        const auto l = drive(low_source, low_store, s, p);
        low.insert(low.end(), l.begin(), l.end());
        OperatorStateStore high_store;
        weir::SequenceSource high_source(kMax - 10, kMax);
        const auto h = drive(high_source, high_store, s, p);
        high.insert(high.end(), h.begin(), h.end());
        CHECK(splitsOf(high_store).empty());
      }
      CHECK(sorted(low) == closedRange(kMin, kMin + 10));
      CHECK(sorted(high) == closedRange(kMax - 10, kMax));
    }
  }
}

TEST_CASE("sequence source: a fresh start emits every number once at parallelism 1 and 4") {
  const SourceDef source = sequence(-2500, 9999);
  const auto expected = closedRange(-2500, 9999);
  const auto one = runStages(source, {{1, {}}});
  REQUIRE(one[0].size() == 1);
  CHECK(one[0][0] == expected);  // in order

  const auto four = runStages(source, {{4, {}}});
  REQUIRE(four[0].size() == 4);
  for (const auto& records : four[0]) {
    REQUIRE(!records.empty());
    // Each subtask emits a contiguous run of splits, in increasing order.
    CHECK(records == closedRange(records.front(), records.back()));
  }
  CHECK(sorted(flatten(four[0])) == expected);
}

TEST_CASE("sequence source: an empty range, and a range smaller than the parallelism") {
  SUBCASE("empty") {
    for (const auto& [from, to] :
         std::vector<std::pair<std::int64_t, std::int64_t>>{{5, 4}, {kMax, kMin}}) {
      const auto runs = runStages(sequence(from, to), {{3, {}}});
      CHECK(flatten(runs[0]).empty());
    }
  }
  SUBCASE("3 numbers at parallelism 5: one each for the first three subtasks") {
    const auto runs = runStages(sequence(10, 12), {{5, {}}});
    CHECK(runs[0] == std::vector<std::vector<std::int64_t>>{{10}, {11}, {12}, {}, {}});
  }
  SUBCASE("a single number, rescaled") {
    const auto runs = runStages(sequence(7, 7), {{2, {0, 0}}, {3, {0, 0, 0}}, {1, {}}});
    CHECK(flatten(runs[0]).empty());
    CHECK(flatten(runs[1]).empty());
    CHECK(runs[2][0] == std::vector<std::int64_t>{7});
  }
}

TEST_CASE("sequence source: stop with savepoint at parallelism 2, resume at 3, then at 1") {
  const auto runs = runStages(sequence(-5000, 94999), {{2, {3, 1}}, {3, {2, 1, 3}}, {1, {}}});
  const std::vector<std::int64_t> expected = closedRange(-5000, 94999);
  // Every stage stopped mid-stream, and every subtask of the middle one had splits to emit.
  CHECK(flatten(runs[0]).size() == 4 * weir::kSourceRecordsPerPoll);
  CHECK(flatten(runs[1]).size() == 6 * weir::kSourceRecordsPerPoll);
  for (const auto& records : runs[1])
    CHECK(!records.empty());
  std::vector<std::int64_t> all;
  for (const auto& stage : runs) {
    const auto records = flatten(stage);
    all.insert(all.end(), records.begin(), records.end());
  }
  CHECK(sorted(all) == expected);  // each number exactly once
}

TEST_CASE("sequence source: a subtask restored with splits of several old subtasks emits them") {
  // Scaling in right away, and scaling out past the number of splits left.
  const auto in = runStages(sequence(0, 4999), {{4, {1, 0, 2, 1}}, {1, {}}});
  std::vector<std::int64_t> all = flatten(in[0]);
  all.insert(all.end(), in[1][0].begin(), in[1][0].end());
  CHECK(sorted(all) == closedRange(0, 4999));

  const auto out = runStages(sequence(0, 99), {{1, {0}}, {200, {}}});
  CHECK(sorted(flatten(out[1])) == closedRange(0, 99));
}

TEST_CASE("generator: fresh starts keep the modulo contract at parallelism 1 and 4") {
  const auto one = runStages(generator(10000), {{1, {}}});
  CHECK(one[0][0] == closedRange(0, 9999));
  const auto four = runStages(generator(10001), {{4, {}}});
  for (int s = 0; s < 4; ++s) {
    std::vector<std::int64_t> expected;
    for (std::int64_t i = s; i <= 10000; i += 4)
      expected.push_back(i);
    CHECK(four[0][static_cast<std::size_t>(s)] == expected);
  }
  CHECK(sorted(flatten(four[0])) == closedRange(0, 10000));
}

TEST_CASE("generator: an empty generator, and fewer indices than subtasks") {
  const auto empty = runStages(generator(0), {{2, {}}});
  CHECK(flatten(empty[0]).empty());
  const auto small = runStages(generator(2), {{4, {}}});
  CHECK(small[0] == std::vector<std::vector<std::int64_t>>{{0}, {1}, {}, {}});
}

TEST_CASE("generator: stop with savepoint at parallelism 2, resume at 3, then at 1") {
  const auto runs = runStages(generator(100000), {{2, {3, 1}}, {3, {2, 1, 3}}, {1, {}}});
  CHECK(flatten(runs[0]).size() == 4 * weir::kSourceRecordsPerPoll);
  // The two strides go to the first two new subtasks; the third has none and ends at once.
  CHECK(runs[1][0].size() == 2 * weir::kSourceRecordsPerPoll);
  CHECK(runs[1][1].size() == weir::kSourceRecordsPerPoll);
  CHECK(runs[1][2].empty());
  CHECK(runs[1][1].front() == 2 * weir::kSourceRecordsPerPoll + 1);  // subtask 1 resumes
  std::vector<std::int64_t> all;
  for (const auto& stage : runs) {
    const auto records = flatten(stage);
    all.insert(all.end(), records.begin(), records.end());
  }
  CHECK(sorted(all) == closedRange(0, 99999));
}

TEST_CASE("generator: a subtask with several strides emits from them in turn") {
  constexpr std::int64_t kPoll = weir::kSourceRecordsPerPoll;
  for (const std::uint64_t count : {std::uint64_t{100000}, std::uint64_t{5000}}) {
    CAPTURE(count);
    // Subtask 0 of 2 stops at index 4 * kPoll, subtask 1 at 2 * kPoll + 1; then both strides go
    // to the one subtask of parallelism 1.
    OperatorStateStore old_zero;
    OperatorStateStore old_one;
    Generator zero(identity, count);
    Generator one(identity, count);
    std::vector<std::int64_t> all = drive(zero, old_zero, 0, 2, 2);
    const auto before_one = drive(one, old_one, 1, 2, 1);
    all.insert(all.end(), before_one.begin(), before_one.end());
    const auto merged =
        weir::detail::redistributeOperatorState({old_zero.snapshot(), old_one.snapshot()}, 1);
    OperatorStateStore store;
    store.restore(merged[0]);
    CHECK(stridesOf(store) == std::vector<GeneratorStride>{{4 * kPoll, 2}, {2 * kPoll + 1, 2}});

    Generator restored(identity, count);
    const auto first = drive(restored, store, 0, 1, 1);
    REQUIRE(first.size() == static_cast<std::size_t>(kPoll));
    CHECK(first.front() == 4 * kPoll);
    if (count == 100000) {
      // One poll serves one stride; the next poll starts with the other.
      CHECK(first.back() == 4 * kPoll + 2 * (kPoll - 1));
      CHECK(stridesOf(store) == std::vector<GeneratorStride>{{6 * kPoll, 2}, {2 * kPoll + 1, 2}});
    } else {
      // The first stride ends within the poll, which goes on with the second.
      const std::int64_t tail = (5000 - 4 * kPoll + 1) / 2;
      CHECK(first[static_cast<std::size_t>(tail - 1)] == 4998);
      CHECK(first[static_cast<std::size_t>(tail)] == 2 * kPoll + 1);
      CHECK(stridesOf(store) ==
            std::vector<GeneratorStride>{
                {static_cast<std::uint64_t>(2 * kPoll + 1 + 2 * (kPoll - tail)), 2}});
    }
    all.insert(all.end(), first.begin(), first.end());
    Generator rest(identity, count);
    OperatorStateStore rest_store;
    rest_store.restore(store.snapshot());
    const auto after = drive(rest, rest_store, 0, 1);
    all.insert(all.end(), after.begin(), after.end());
    CHECK(stridesOf(rest_store).empty());
    CHECK(sorted(all) == closedRange(0, static_cast<std::int64_t>(count) - 1));
  }
}

TEST_CASE("collection source: stop with savepoint at parallelism 2, resume at 3, then at 1") {
  const auto runs = runStages(collection(10000), {{2, {3, 1}}, {3, {2, 1, 3}}, {1, {}}});
  // The two strides go to the first two new subtasks; the third has none and ends at once.
  CHECK(runs[1][2].empty());
  CHECK(runs[1][1].front() == weir::kSourceRecordsPerPoll * 2 + 1);  // subtask 1 resumes
  std::vector<std::int64_t> all;
  for (const auto& stage : runs) {
    const auto records = flatten(stage);
    all.insert(all.end(), records.begin(), records.end());
  }
  CHECK(sorted(all) == closedRange(0, 9999));
}

TEST_CASE("text file source: stop with savepoint at parallelism 2, resume at 3, then at 1") {
  weir::testing::TempDir dir;
  const std::string path = dir.file("numbers.txt");
  {
    std::ofstream out(path);
    for (int i = 0; i < 10000; ++i)
      out << i << "\n";
  }
  // Scaled in first, so that one subtask emits two strides, in line order.
  const auto runs = runStages(textFile(path), {{2, {3, 1}}, {1, {3}}, {3, {}}});
  // The subtask of parallelism 1 emits lines of both old subtasks' strides, in order: odd ones
  // from where subtask 1 stood, even ones from where subtask 0 stood.
  const auto& merged = runs[1][0];
  CHECK(std::is_sorted(merged.begin(), merged.end()));
  CHECK(merged.front() == weir::kSourceRecordsPerPoll + 1);
  CHECK(std::count_if(merged.begin(), merged.end(), [](std::int64_t v) { return v % 2 == 0; }) >
        0);
  std::vector<std::int64_t> all;
  for (const auto& stage : runs) {
    const auto records = flatten(stage);
    all.insert(all.end(), records.begin(), records.end());
  }
  CHECK(sorted(all) == closedRange(0, 9999));
}
