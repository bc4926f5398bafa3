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

// The indices of `strides` below `count`, in increasing order.
std::vector<std::int64_t> indicesOf(const std::vector<GeneratorStride>& strides,
                                    std::uint64_t count) {
  std::vector<std::int64_t> out;
  for (const GeneratorStride& st : strides) {
    for (std::uint64_t i = st.next; i < count; i += st.step)
      out.push_back(static_cast<std::int64_t>(i));
  }
  return sorted(out);
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
  // The savepoint's pieces of the two strides give every new subtask a share, which it emits in
  // increasing order.
  for (std::size_t s = 0; s < 3; ++s) {
    CAPTURE(s);
    CHECK(runs[1][s].size() == (s == 2 ? 3 : 2 - s) * weir::kSourceRecordsPerPoll);
    CHECK(std::is_sorted(runs[1][s].begin(), runs[1][s].end()));
  }
  std::vector<std::int64_t> all;
  for (const auto& stage : runs) {
    const auto records = flatten(stage);
    all.insert(all.end(), records.begin(), records.end());
  }
  CHECK(sorted(all) == closedRange(0, 99999));
}

TEST_CASE("generator: scaled out to the max parallelism, every subtask has indices to emit") {
  const std::vector<int> none(128, 0);
  const auto runs = runStages(generator(100000), {{2, {3, 1}}, {128, none}, {1, {}}});
  const auto resumed = runStages(generator(100000), {{2, {3, 1}}, {128, {}}});
  for (std::size_t s = 0; s < 128; ++s) {
    CAPTURE(s);
    CHECK(!resumed[1][s].empty());
    CHECK(std::is_sorted(resumed[1][s].begin(), resumed[1][s].end()));
  }
  std::vector<std::int64_t> all = flatten(resumed[0]);
  const auto rest = flatten(resumed[1]);
  all.insert(all.end(), rest.begin(), rest.end());
  CHECK(sorted(all) == closedRange(0, 99999));
  // Through a savepoint at 128 (taken before any poll) back to 1.
  std::vector<std::int64_t> again = flatten(runs[0]);
  CHECK(flatten(runs[1]).empty());
  again.insert(again.end(), runs[2][0].begin(), runs[2][0].end());
  CHECK(sorted(again) == closedRange(0, 99999));
}

TEST_CASE("generator: a subtask with several strides emits their indices in increasing order") {
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
    Generator restored(identity, count);
    // The first poll has only subtask 1's odd indices below 4 * kPoll; the second goes on with
    // both strides, one index after the other.
    const auto first = drive(restored, store, 0, 1, 1);
    CHECK(stridesOf(store) == std::vector<GeneratorStride>{{4 * kPoll, 2}, {4 * kPoll + 1, 2}});
    std::vector<std::int64_t> odd;
    for (std::int64_t i = 2 * kPoll + 1; i < 4 * kPoll; i += 2)
      odd.push_back(i);
    CHECK(first == odd);
    all.insert(all.end(), first.begin(), first.end());
    Generator rest(identity, count);
    OperatorStateStore rest_store;
    rest_store.restore(store.snapshot());
    const auto after = drive(rest, rest_store, 0, 1);
    CHECK(after == closedRange(4 * kPoll, static_cast<std::int64_t>(count) - 1));
    all.insert(all.end(), after.begin(), after.end());
    CHECK(stridesOf(rest_store).empty());
    CHECK(sorted(all) == closedRange(0, static_cast<std::int64_t>(count) - 1));
  }
}

TEST_CASE("generator: several strides emit exactly their indices in order, whatever the budget") {
  using Strides = std::vector<GeneratorStride>;
  Strides unpaired;
  for (std::uint64_t i = 0; i < 43; ++i)
    unpaired.push_back({i, 128});
  const Strides pieces = weir::source_detail::cutStrides({{0, 1}}, weir::kUnbounded, 1, 128);
  const std::vector<std::pair<std::string, Strides>> cases = {
      // In phase from the start: emitted from their pattern.
      {"a third of the pieces of one stride", Strides(pieces.begin(), pieces.begin() + 43)},
      {"43 pieces that do not pair", unpaired},
      // Not in phase: runs of the lowest stride until it catches up, then the pattern.
      {"strides far apart", {{3, 2}, {1000, 4}, {1002, 4}}},
      // The pattern stops short of the count, the rest goes stride by stride.
      {"a period that does not divide the count", {{0, 3}, {1, 3}, {5, 6}}},
  };
  for (const auto& [name, strides] : cases) {
    for (const std::size_t budget : {std::size_t{1}, std::size_t{7}, std::size_t{1024}}) {
      CAPTURE(name);
      CAPTURE(budget);
      constexpr std::uint64_t kCount = 5003;
      const std::vector<std::int64_t> expected = indicesOf(strides, kCount);
      OperatorStateStore saved;
      RuntimeContext saved_ctx = contextFor(saved, 0, 1);
      saved_ctx
          .getOperatorListState(ListStateDescriptor<GeneratorStride>(weir::kSourceStridesState))
          .update(strides);
      OperatorStateStore store;
      store.restore(saved.snapshot());
      RuntimeContext ctx = contextFor(store, 0, 1);
      Generator source(identity, kCount);
      source.open(ctx);
      weir::test::Recorder<std::int64_t> recorder;
      weir::VertexCounters counters;
      weir::Collector<std::int64_t> out;
      out.bind(&recorder, &counters);
      bool ended = false;
      for (int poll = 0; poll < 20000 && !ended; ++poll) {
        out.setPollBudget(budget);
        ended = source.pollNext(out) == SourceStatus::kEndOfInput;
        out.flush();
        REQUIRE(recorder.records.size() <= expected.size());
        // After every poll the state holds exactly the indices not emitted yet.
        const std::vector<std::int64_t> rest(
            expected.begin() + static_cast<std::ptrdiff_t>(recorder.records.size()),
            expected.end());
        REQUIRE(indicesOf(stridesOf(store), kCount) == rest);
      }
      CHECK(ended);
      CHECK(recorder.records == expected);
    }
  }
}

TEST_CASE("strides: a checkpoint cuts them into pieces, a restore pairs the pieces up again") {
  using Strides = std::vector<GeneratorStride>;
  using weir::source_detail::cutStrides;
  using weir::source_detail::mergeStrides;
  // Subtask 0 of 2 at max parallelism 128: 64 pieces of step 128 in bit-reversed order.
  const Strides pieces = cutStrides({{1000, 2}}, weir::kUnbounded, 2, 128);
  REQUIRE(pieces.size() == 64);
  CHECK(pieces[0] == GeneratorStride{1000, 128});
  CHECK(pieces[1] == GeneratorStride{1000 + 32 * 2, 128});
  CHECK(pieces[2] == GeneratorStride{1000 + 16 * 2, 128});
  CHECK(pieces[63] == GeneratorStride{1000 + 63 * 2, 128});
  CHECK(mergeStrides(pieces, "generator", 0) == Strides{{1000, 2}});
  // A contiguous run of 43 of them (what a new subtask of 3 gets) pairs into 4 strides.
  const Strides run(pieces.begin(), pieces.begin() + 43);
  CHECK(mergeStrides(run, "generator", 0) ==
        Strides{{1000, 4}, {1002, 16}, {1010, 64}, {1042, 128}});
  // Pieces of two strides, in any order.
  Strides two = cutStrides({{7, 3}, {5, 3}}, weir::kUnbounded, 1, 8);
  REQUIRE(two.size() == 8);
  std::reverse(two.begin(), two.end());
  CHECK(mergeStrides(two, "generator", 0) == Strides{{5, 3}, {7, 3}});
  // Enough strides already, nothing left, pieces beyond the count.
  CHECK(cutStrides({{0, 4}, {1, 4}, {2, 4}}, 100, 1, 3) == Strides{{0, 4}, {1, 4}, {2, 4}});
  CHECK(cutStrides({}, 100, 2, 128).empty());
  CHECK(cutStrides({{10, 1}}, 12, 1, 4) == Strides{{10, 4}, {11, 4}});
  // Equal strides would emit their indices twice.
  CHECK_THROWS_WITH_AS(mergeStrides({{3, 2}, {5, 4}, {3, 2}}, "generator", 4),
                       "generator subtask 4 was restored with the stride {3, 2} twice",
                       std::runtime_error);
}

TEST_CASE("strides: a checkpoint and a restore at the same parallelism keep one stride") {
  OperatorStateStore store;
  Generator first(identity, 100000);
  const auto before = drive(first, store, 1, 3, 2);
  const GeneratorStride at{1 + 3 * before.size(), 3};
  CHECK(stridesOf(store) == std::vector<GeneratorStride>{at});
  first.snapshotState(CheckpointOptions{});
  CHECK(stridesOf(store).size() == 64);  // ceil(128 / 3) = 43 pieces wanted: 64
  OperatorStateStore restored_store;
  restored_store.restore(store.snapshot());
  Generator restored(identity, 100000);
  const auto after = drive(restored, restored_store, 1, 3, 1);
  CHECK(after.front() == static_cast<std::int64_t>(at.next));
  CHECK(stridesOf(restored_store) ==
        std::vector<GeneratorStride>{{at.next + 3 * after.size(), 3}});
}

TEST_CASE("collection source: stop with savepoint at parallelism 2, resume at 3, then at 1") {
  const auto runs = runStages(collection(10000), {{2, {3, 1}}, {3, {2, 1, 3}}, {1, {}}});
  for (std::size_t s = 0; s < 3; ++s) {
    CAPTURE(s);
    CHECK(!runs[1][s].empty());  // every new subtask has a share
    CHECK(std::is_sorted(runs[1][s].begin(), runs[1][s].end()));
  }
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
  for (const auto& records : runs[2])
    CHECK(!records.empty());  // every subtask of parallelism 3 has a share
  std::vector<std::int64_t> all;
  for (const auto& stage : runs) {
    const auto records = flatten(stage);
    all.insert(all.end(), records.begin(), records.end());
  }
  CHECK(sorted(all) == closedRange(0, 9999));
}
