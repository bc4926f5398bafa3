#include "checkpoint/state_assignment.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "weir/detail/operator_state.h"
#include "weir/key_groups.h"

using weir::Status;
using weir::detail::decodeOperatorState;
using weir::detail::encodeOperatorState;
using weir::detail::OperatorStateMode;
using weir::detail::OperatorStateSnapshot;
using weir::engine::AssignmentVertex;
using weir::engine::assignState;
using weir::engine::StateAssignment;

namespace {

using Strings = std::vector<std::string>;

// Operator state of one subtask: split list "offsets" and union list "config".
std::string operatorBytes(const Strings& split, const Strings& uni) {
  return encodeOperatorState({{"config", OperatorStateMode::kUnion, uni},
                              {"offsets", OperatorStateMode::kSplitDistribute, split}});
}

weir::thrift::KeyedStateHandle handle(int start, int end, const std::string& path) {
  weir::thrift::KeyedStateHandle h;
  h.keyGroupStart = start;
  h.keyGroupEnd = end;
  h.kind = weir::thrift::KeyedStateKind::HEAP_FULL;
  weir::thrift::StateFile f;
  f.path = path;
  f.size = 100;
  f.sha256 = std::string(64, 'a');
  h.privateFiles.push_back(f);
  return h;
}

struct SubtaskSpec {
  std::string operator_state;
  std::vector<weir::thrift::KeyedStateHandle> keyed;
};

weir::thrift::OperatorState makeOperator(const std::string& uid, int max_parallelism,
                                         const std::vector<SubtaskSpec>& subtasks) {
  weir::thrift::OperatorState op;
  op.uid = uid;
  op.parallelism = static_cast<int>(subtasks.size());
  op.maxParallelism = max_parallelism;
  for (std::size_t i = 0; i < subtasks.size(); ++i) {
    weir::thrift::SubtaskState st;
    st.subtask = static_cast<int>(i);
    st.operatorState = subtasks[i].operator_state;
    st.keyed = subtasks[i].keyed;
    op.subtasks.push_back(std::move(st));
  }
  return op;
}

weir::thrift::CheckpointMetadata makeCheckpoint(std::vector<weir::thrift::OperatorState> ops) {
  weir::thrift::CheckpointMetadata md;
  md.formatVersion = 1;
  md.jobId = "job-a";
  md.checkpointId = 7;
  md.timestampMs = 1700000000000;
  md.operators = std::move(ops);
  return md;
}

// The elements of state `name` in the operator state bytes of one assigned subtask.
Strings elementsOf(const StateAssignment& a, const std::string& uid, int subtask,
                   const std::string& name) {
  auto it = a.find({uid, subtask});
  REQUIRE(it != a.end());
  for (const auto& s : decodeOperatorState(it->second.operatorState)) {
    if (s.name == name) return s.elements;
  }
  FAIL("state " << name << " missing in subtask " << subtask);
  return {};
}

// A checkpoint operator as the assigned subtasks would write it back (same bytes, same handles).
weir::thrift::OperatorState operatorFrom(const StateAssignment& a, const std::string& uid,
                                         int parallelism, int max_parallelism) {
  std::vector<SubtaskSpec> specs(static_cast<std::size_t>(parallelism));
  for (int i = 0; i < parallelism; ++i) {
    auto it = a.find({uid, i});
    if (it != a.end()) specs[static_cast<std::size_t>(i)].operator_state = it->second.operatorState;
  }
  return makeOperator(uid, max_parallelism, specs);
}

// Every key group of the new parallelism is covered exactly once by the handles of its owner.
void checkKeyedCoverage(const StateAssignment& a, const std::string& uid, int parallelism,
                        int max_parallelism) {
  for (int kg = 0; kg < max_parallelism; ++kg) {
    const int owner = weir::subtaskForKeyGroup(kg, parallelism, max_parallelism);
    auto it = a.find({uid, owner});
    REQUIRE(it != a.end());
    int covering = 0;
    for (const auto& h : it->second.keyed) {
      if (h.keyGroupStart <= kg && kg <= h.keyGroupEnd) ++covering;
    }
    CHECK_MESSAGE(covering == 1, "key group " << kg << " of subtask " << owner);
  }
  // No subtask gets a handle that misses its range.
  for (int i = 0; i < parallelism; ++i) {
    const auto range = weir::keyGroupRangeForSubtask(i, parallelism, max_parallelism);
    for (const auto& h : a.at({uid, i}).keyed) {
      CHECK(h.keyGroupStart <= range.end);
      CHECK(h.keyGroupEnd >= range.start);
    }
  }
}

}  // namespace

TEST_CASE("state assignment: same parallelism keeps each subtask's state") {
  const auto md = makeCheckpoint(
      {makeOperator("src", 128,
                    {{operatorBytes({"a", "b"}, {"u0"}), {handle(0, 63, "chk-7/src-0.heap")}},
                     {operatorBytes({"c"}, {"u1"}), {handle(64, 127, "chk-7/src-1.heap")}}})});
  auto a = assignState(md, {{"src", "Source", 2, 128}}, false);
  REQUIRE(a.isOk());
  REQUIRE(a->size() == 2);
  for (int i = 0; i < 2; ++i) {
    const auto& st = a->at({"src", i});
    CHECK(st.uid == "src");
    CHECK(st.operatorState == md.operators[0].subtasks[static_cast<std::size_t>(i)].operatorState);
    REQUIRE(st.keyed.size() == 1);
    CHECK(st.keyed[0] == md.operators[0].subtasks[static_cast<std::size_t>(i)].keyed[0]);
  }
}

TEST_CASE("state assignment: split and union operator state redistributed 2 to 3 to 1") {
  const auto md = makeCheckpoint({makeOperator(
      "src", 128,
      {{operatorBytes({"a", "b", "c"}, {"u0"}), {}}, {operatorBytes({"d", "e"}, {"u1"}), {}}})});
  auto three = assignState(md, {{"src", "Source", 3, 128}}, false);
  REQUIRE(three.isOk());
  REQUIRE(three->size() == 3);
  Strings split;
  for (int i = 0; i < 3; ++i) {
    const auto part = elementsOf(*three, "src", i, "offsets");
    CHECK(part.size() <= 2);
    CHECK(part.size() >= 1);
    split.insert(split.end(), part.begin(), part.end());
    CHECK(elementsOf(*three, "src", i, "config") == Strings{"u0", "u1"});
  }
  std::sort(split.begin(), split.end());
  CHECK(split == Strings{"a", "b", "c", "d", "e"});

  // 3 -> 1: the split elements are gathered again, each exactly once.
  auto one = assignState(makeCheckpoint({operatorFrom(*three, "src", 3, 128)}),
                         {{"src", "Source", 1, 128}}, false);
  REQUIRE(one.isOk());
  REQUIRE(one->size() == 1);
  auto gathered = elementsOf(*one, "src", 0, "offsets");
  std::sort(gathered.begin(), gathered.end());
  CHECK(gathered == Strings{"a", "b", "c", "d", "e"});
}

TEST_CASE("state assignment: union state of 3 subtasks goes whole to 1 and to 2") {
  const auto md = makeCheckpoint({makeOperator("src", 128,
                                               {{operatorBytes({"a"}, {"u0"}), {}},
                                                {operatorBytes({}, {"u1"}), {}},
                                                {operatorBytes({"b", "c"}, {"u2"}), {}}})});
  auto one = assignState(md, {{"src", "Source", 1, 128}}, false);
  REQUIRE(one.isOk());
  CHECK(elementsOf(*one, "src", 0, "config") == Strings{"u0", "u1", "u2"});
  CHECK(elementsOf(*one, "src", 0, "offsets") == Strings{"a", "b", "c"});

  auto two = assignState(md, {{"src", "Source", 2, 128}}, false);
  REQUIRE(two.isOk());
  CHECK(elementsOf(*two, "src", 0, "config") == Strings{"u0", "u1", "u2"});
  CHECK(elementsOf(*two, "src", 1, "config") == Strings{"u0", "u1", "u2"});
  CHECK(elementsOf(*two, "src", 0, "offsets") == Strings{"a", "b"});
  CHECK(elementsOf(*two, "src", 1, "offsets") == Strings{"c"});
}

TEST_CASE("state assignment: keyed handles by key-group overlap 2 to 3 to 1") {
  constexpr int kMaxParallelism = 128;
  const auto r0 = weir::keyGroupRangeForSubtask(0, 2, kMaxParallelism);
  const auto r1 = weir::keyGroupRangeForSubtask(1, 2, kMaxParallelism);
  const auto md =
      makeCheckpoint({makeOperator("agg", kMaxParallelism,
                                   {{"", {handle(r0.start, r0.end, "chk-7/agg-0.heap")}},
                                    {"", {handle(r1.start, r1.end, "chk-7/agg-1.heap")}}})});
  auto three = assignState(md, {{"agg", "Aggregate", 3, kMaxParallelism}}, false);
  REQUIRE(three.isOk());
  REQUIRE(three->size() == 3);
  checkKeyedCoverage(*three, "agg", 3, kMaxParallelism);
  // The middle subtask [43, 85] straddles both old ranges; the others take one each.
  CHECK(three->at({"agg", 0}).keyed.size() == 1);
  CHECK(three->at({"agg", 1}).keyed.size() == 2);
  CHECK(three->at({"agg", 2}).keyed.size() == 1);
  CHECK(three->at({"agg", 0}).operatorState.empty());

  // Each of the 3 subtasks checkpoints its own range; restoring at 1 takes all three handles.
  std::vector<SubtaskSpec> specs;
  for (int i = 0; i < 3; ++i) {
    const auto r = weir::keyGroupRangeForSubtask(i, 3, kMaxParallelism);
    specs.push_back({"", {handle(r.start, r.end, "chk-8/agg-" + std::to_string(i) + ".heap")}});
  }
  auto one = assignState(makeCheckpoint({makeOperator("agg", kMaxParallelism, specs)}),
                         {{"agg", "Aggregate", 1, kMaxParallelism}}, false);
  REQUIRE(one.isOk());
  REQUIRE(one->size() == 1);
  CHECK(one->at({"agg", 0}).keyed.size() == 3);
  checkKeyedCoverage(*one, "agg", 1, kMaxParallelism);
}

TEST_CASE("state assignment: subtasks and vertices with nothing to restore get no entry") {
  // Scaling out 1 -> 2 with keyed state only in the upper half: subtask 0 has nothing.
  const auto md =
      makeCheckpoint({makeOperator("agg", 128, {{"", {handle(64, 127, "chk-7/agg-0.heap")}}})});
  auto a = assignState(md, {{"agg", "Aggregate", 2, 128}, {"sink", "Sink", 2, 128}}, false);
  REQUIRE(a.isOk());
  CHECK(a->size() == 1);
  CHECK(a->count({"agg", 1}) == 1);
  CHECK(a->count({"agg", 0}) == 0);
  CHECK(a->count({"sink", 0}) == 0);
}

TEST_CASE("state assignment: a changed max parallelism is refused naming the operator") {
  const auto md = makeCheckpoint({makeOperator("agg", 128, {{"", {handle(0, 127, "f")}}})});
  auto a = assignState(md, {{"agg", "Aggregate", 1, 256}}, false);
  REQUIRE_FALSE(a.isOk());
  CHECK(a.status().code() == Status::Code::kInvalidArgument);
  const auto& msg = a.status().message();
  CHECK(msg.find("'agg'") != std::string::npos);
  CHECK(msg.find("'Aggregate'") != std::string::npos);
  CHECK(msg.find("max parallelism is fixed for the job's life") != std::string::npos);
}

TEST_CASE("state assignment: an operator without a vertex is refused or dropped") {
  const auto md = makeCheckpoint({makeOperator("gone", 128, {{operatorBytes({"x"}, {}), {}}}),
                                  makeOperator("src", 128, {{operatorBytes({"a"}, {}), {}}})});
  const std::vector<AssignmentVertex> vertices{{"src", "Source", 1, 128}};

  auto refused = assignState(md, vertices, false);
  REQUIRE_FALSE(refused.isOk());
  CHECK(refused.status().code() == Status::Code::kInvalidArgument);
  CHECK(refused.status().message().find("'gone'") != std::string::npos);

  auto dropped = assignState(md, vertices, true);
  REQUIRE(dropped.isOk());
  CHECK(dropped->size() == 1);
  CHECK(elementsOf(*dropped, "src", 0, "offsets") == Strings{"a"});
}

TEST_CASE("state assignment: malformed operator state is a corruption error") {
  for (const int parallelism : {1, 2}) {
    CAPTURE(parallelism);
    const auto md = makeCheckpoint({makeOperator("src", 128, {{"not operator state", {}}})});
    auto a = assignState(md, {{"src", "Source", parallelism, 128}}, false);
    REQUIRE_FALSE(a.isOk());
    CHECK(a.status().code() == Status::Code::kCorruption);
    CHECK(a.status().message().find("'src'") != std::string::npos);
    CHECK(a.status().message().find("'Source'") != std::string::npos);
    CHECK(a.status().message().find("malformed") != std::string::npos);
  }
}

TEST_CASE("state assignment: inconsistent inputs are refused") {
  const auto md = makeCheckpoint({makeOperator("src", 128, {{operatorBytes({"a"}, {}), {}}})});
  SUBCASE("two vertices with one uid") {
    auto a = assignState(md, {{"src", "A", 1, 128}, {"src", "B", 1, 128}}, false);
    REQUIRE_FALSE(a.isOk());
    CHECK(a.status().code() == Status::Code::kInvalidArgument);
  }
  SUBCASE("parallelism above max parallelism") {
    auto a = assignState(md, {{"src", "Source", 129, 128}}, false);
    REQUIRE_FALSE(a.isOk());
    CHECK(a.status().message().find("'src'") != std::string::npos);
  }
  SUBCASE("keyed handle outside the key groups") {
    auto bad = makeCheckpoint({makeOperator("agg", 128, {{"", {handle(0, 128, "f")}}})});
    auto a = assignState(bad, {{"agg", "Aggregate", 1, 128}}, false);
    REQUIRE_FALSE(a.isOk());
    CHECK(a.status().code() == Status::Code::kCorruption);
  }
  SUBCASE("subtask index beyond the recorded parallelism") {
    auto bad = md;
    bad.operators[0].subtasks[0].subtask = 3;
    auto a = assignState(bad, {{"src", "Source", 1, 128}}, false);
    REQUIRE_FALSE(a.isOk());
    CHECK(a.status().code() == Status::Code::kCorruption);
  }
}

TEST_CASE("state assignment: in-flight channel state stays with its subtask, never redistributed") {
  auto op = makeOperator("count", 128, {{"", {}}, {"", {}}});
  weir::thrift::StateFile channels;
  channels.path = "chk-7/count-1.channels";
  channels.size = 42;
  channels.sha256 = std::string(64, 'b');
  weir::thrift::StateFile output = channels;
  output.path = "chk-7/count-0.output.channels";
  op.subtasks[1].__set_inputChannelState({channels});
  op.subtasks[0].__set_outputChannelState({output});
  const auto md = makeCheckpoint({op});

  auto same = assignState(md, {{"count", "count", 2, 128}}, false);
  REQUIRE_MESSAGE(same.isOk(), same.status().message());
  REQUIRE(same->count({"count", 0}) == 1);
  CHECK(same->at({"count", 0}).inputChannelState.empty());
  CHECK(same->at({"count", 0}).outputChannelState ==
        std::vector<weir::thrift::StateFile>{output});
  REQUIRE(same->count({"count", 1}) == 1);
  CHECK(same->at({"count", 1}).inputChannelState ==
        std::vector<weir::thrift::StateFile>{channels});
  CHECK(same->at({"count", 1}).outputChannelState.empty());

  // Output state alone also pins the parallelism.
  auto output_only = op;
  output_only.subtasks[1].inputChannelState.clear();
  for (int parallelism : {1, 3}) {
    auto changed = assignState(makeCheckpoint({output_only}),
                               {{"count", "count", parallelism, 128}}, false);
    REQUIRE_FALSE(changed.isOk());
  }
  for (int parallelism : {1, 3}) {
    auto changed = assignState(md, {{"count", "count", parallelism, 128}}, false);
    REQUIRE_FALSE(changed.isOk());
    CHECK(changed.status().message() ==
          "unaligned checkpoint state of 'count' cannot be redistributed; resume from a savepoint "
          "to change the parallelism");
  }
}
