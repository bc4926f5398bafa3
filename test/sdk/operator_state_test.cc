// Operator (non-keyed) list state: registration, snapshot and restore, redistribution on rescale,
// the store every operator of a chain hands its function, and the built-in sources' positions.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "operator_harness.h"
#include "process_util.h"
#include "weir/weir.h"

namespace {

using weir::ListState;
using weir::ListStateDescriptor;
using weir::RuntimeContext;
using weir::detail::OperatorStateMode;
using weir::detail::OperatorStateSnapshot;
using weir::detail::OperatorStateStore;
using weir::test::Recorder;

struct Split {
  std::string topic;
  int partition = 0;
  std::int64_t offset = 0;
  bool operator==(const Split&) const = default;
  WEIR_SERDE_FIELDS(topic, partition, offset)
};

// A context for subtask `subtask` of `parallelism`, with `store`.
RuntimeContext contextFor(OperatorStateStore& store, int subtask = 0, int parallelism = 1) {
  RuntimeContext ctx("job", "task", subtask, parallelism, 128, nullptr);
  ctx.setOperatorStateStore(&store);
  return ctx;
}

// Elements given as their Serde bytes, for building snapshots by hand.
template <class V>
std::vector<std::string> encoded(const std::vector<V>& values) {
  std::vector<std::string> out;
  for (const V& v : values) {
    std::string bytes(weir::Serde<V>::size(v), '\0');
    weir::Serde<V>::write(v, reinterpret_cast<std::uint8_t*>(bytes.data()));
    out.push_back(std::move(bytes));
  }
  return out;
}

// Drives a source like a task: open, then polls, collecting what it emits.
template <class T, class S>
class SourceDriver {
 public:
  SourceDriver(S source, OperatorStateStore& store, int subtask = 0, int parallelism = 1)
      : source_(std::move(source)), ctx_(contextFor(store, subtask, parallelism)) {
    out_.bind(&recorder_, &counters_);
  }
  void open() { source_.open(ctx_); }
  weir::SourceStatus poll() {
    const weir::SourceStatus s = source_.pollNext(out_);
    out_.flush();
    return s;
  }
  // Polls until the end of input (at most `limit` polls).
  void drain(int limit = 1000) {
    for (int i = 0; i < limit && poll() != weir::SourceStatus::kEndOfInput; ++i) {
    }
  }
  std::vector<T>& records() { return recorder_.records; }

 private:
  S source_;
  RuntimeContext ctx_;
  Recorder<T> recorder_;
  weir::VertexCounters counters_;
  weir::Collector<T> out_;
};

std::vector<weir::GeneratorStride> stridesOf(OperatorStateStore& store) {
  RuntimeContext ctx = contextFor(store);
  return ctx.getOperatorListState(ListStateDescriptor<weir::GeneratorStride>("strides")).get();
}

auto identity = [](std::uint64_t i) { return static_cast<std::int64_t>(i); };
using Generator = weir::GeneratorSource<std::int64_t, decltype(identity)>;
using Collection = weir::CollectionSource<std::int64_t>;

std::shared_ptr<const std::vector<std::int64_t>> numbers(std::int64_t n) {
  auto items = std::make_shared<std::vector<std::int64_t>>();
  for (std::int64_t i = 0; i < n; ++i)
    items->push_back(i);
  return items;
}

}  // namespace

TEST_CASE("operator state: one state per name, refused with another element type or mode") {
  OperatorStateStore store;
  RuntimeContext ctx = contextFor(store);
  ListState<std::int64_t>& a = ctx.getOperatorListState(ListStateDescriptor<std::int64_t>("a"));
  a.add(1);
  a.addAll({2, 3});
  CHECK(&ctx.getOperatorListState(ListStateDescriptor<std::int64_t>("a")) == &a);
  CHECK(a.get() == std::vector<std::int64_t>{1, 2, 3});
  a.update({7});
  CHECK(a.get() == std::vector<std::int64_t>{7});

  CHECK_THROWS_AS(ctx.getOperatorListState(ListStateDescriptor<std::string>("a")),
                  std::invalid_argument);
  CHECK_THROWS_WITH_AS(ctx.getUnionListState(ListStateDescriptor<std::int64_t>("a")),
                       "operator state 'a' is registered as list state; it cannot be used as "
                       "union list state",
                       std::invalid_argument);
  ListState<std::string>& u = ctx.getUnionListState(ListStateDescriptor<std::string>("u"));
  CHECK(&ctx.getUnionListState(ListStateDescriptor<std::string>("u")) == &u);
  CHECK_THROWS_AS(ctx.getOperatorListState(ListStateDescriptor<std::string>("u")),
                  std::invalid_argument);

  ListStateDescriptor<int> with_ttl("ttl");
  with_ttl.enableTimeToLive(weir::StateTtlConfig::of(std::chrono::seconds(1)));
  CHECK_THROWS_AS(ctx.getOperatorListState(with_ttl), std::invalid_argument);

  const auto states = store.states();
  REQUIRE(states.size() == 2);
  CHECK(states[0].name == "a");
  CHECK(states[0].mode == OperatorStateMode::kSplitDistribute);
  CHECK(states[0].size == 1);
  CHECK(states[1].name == "u");
  CHECK(states[1].mode == OperatorStateMode::kUnion);
  CHECK(states[1].size == 0);

  // Without a store (a context the engine did not set up), the error says so.
  RuntimeContext bare("job", "bare task", 0, 1, 128, nullptr);
  CHECK_THROWS_WITH_AS(bare.getOperatorListState(ListStateDescriptor<int>("x")),
                       "operator state is not available to task 'bare task'", std::logic_error);
}

TEST_CASE("operator state: snapshot, then restore into a new store, round trip") {
  OperatorStateStore before;
  {
    RuntimeContext ctx = contextFor(before);
    ctx.getOperatorListState(ListStateDescriptor<Split>("splits"))
        .update({{"clicks", 0, 42}, {"clicks", 3, 7}, {"views", 1, -1}});
    ctx.getUnionListState(ListStateDescriptor<std::string>("names")).update({"a", "", "ccc"});
    ctx.getOperatorListState(ListStateDescriptor<double>("empty"));
  }
  const std::vector<OperatorStateSnapshot> snap = before.snapshot();
  REQUIRE(snap.size() == 3);
  CHECK(snap[0].name == "empty");
  CHECK(snap[0].elements.empty());
  CHECK(snap[1].name == "names");
  CHECK(snap[1].mode == OperatorStateMode::kUnion);
  CHECK(snap[1].elements == encoded<std::string>({"a", "", "ccc"}));
  CHECK(snap[2].name == "splits");
  CHECK(snap[2].elements.size() == 3);

  // Through bytes, as a checkpoint file would carry it.
  const std::string bytes = weir::detail::encodeOperatorState(snap);
  const std::vector<OperatorStateSnapshot> decoded = weir::detail::decodeOperatorState(bytes);
  CHECK(decoded == snap);
  CHECK_THROWS_AS(weir::detail::decodeOperatorState(bytes.substr(0, bytes.size() - 1)),
                  std::runtime_error);
  CHECK_THROWS_AS(weir::detail::decodeOperatorState(bytes + "x"), std::runtime_error);

  OperatorStateStore after;
  CHECK_FALSE(after.isRestored());
  after.restore(decoded);
  CHECK(after.isRestored());
  // Restored but not registered yet: listed, and snapshotted as they are.
  CHECK(after.states().size() == 3);
  CHECK_FALSE(after.states()[2].registered);
  CHECK(after.snapshot() == snap);

  RuntimeContext ctx = contextFor(after);
  CHECK(ctx.getOperatorListState(ListStateDescriptor<Split>("splits")).get() ==
        std::vector<Split>{{"clicks", 0, 42}, {"clicks", 3, 7}, {"views", 1, -1}});
  CHECK(ctx.getUnionListState(ListStateDescriptor<std::string>("names")).get() ==
        std::vector<std::string>{"a", "", "ccc"});
  CHECK(after.states()[2].registered);
  // Registered in another mode than restored: refused.
  CHECK_THROWS_WITH_AS(ctx.getUnionListState(ListStateDescriptor<double>("empty")),
                       "operator state 'empty' is restored as list state; it cannot be used as "
                       "union list state",
                       std::invalid_argument);
  CHECK(after.snapshot() == snap);
}

TEST_CASE("operator state: restoring a registered state replaces its elements, or nothing") {
  OperatorStateStore store;
  RuntimeContext ctx = contextFor(store);
  ListState<std::int64_t>& s = ctx.getOperatorListState(ListStateDescriptor<std::int64_t>("s"));
  s.update({1, 2});
  ListState<std::string>& t = ctx.getOperatorListState(ListStateDescriptor<std::string>("t"));
  t.update({"x"});

  store.restore({{"s", OperatorStateMode::kSplitDistribute, encoded<std::int64_t>({9})}});
  CHECK(s.get() == std::vector<std::int64_t>{9});

  // An element that does not decode as the state's type: an error, and no state changes.
  const std::vector<OperatorStateSnapshot> bad = {
      {"s", OperatorStateMode::kSplitDistribute, encoded<std::int64_t>({5})},
      {"t", OperatorStateMode::kSplitDistribute, {std::string("\x05", 1)}}};
  CHECK_THROWS_AS(store.restore(bad), std::runtime_error);
  CHECK(s.get() == std::vector<std::int64_t>{9});
  CHECK(t.get() == std::vector<std::string>{"x"});
  // A mode that does not match, or a name given twice.
  CHECK_THROWS_AS(store.restore({{"s", OperatorStateMode::kUnion, {}}}), std::invalid_argument);
  CHECK_THROWS_AS(
      store.restore({{"x", OperatorStateMode::kUnion, {}}, {"x", OperatorStateMode::kUnion, {}}}),
      std::invalid_argument);
  CHECK(s.get() == std::vector<std::int64_t>{9});
}

TEST_CASE("operator state: redistribution splits list state and gives union state to all") {
  using weir::detail::redistributeOperatorState;
  const auto split = [](std::vector<std::int64_t> v) {
    return OperatorStateSnapshot{"offsets", OperatorStateMode::kSplitDistribute,
                                 encoded<std::int64_t>(v)};
  };
  const auto all = [](std::vector<std::string> v) {
    return OperatorStateSnapshot{"names", OperatorStateMode::kUnion, encoded<std::string>(v)};
  };
  const std::vector<std::vector<OperatorStateSnapshot>> old = {
      {all({"a"}), split({0, 1, 2})}, {all({"b", "c"}), split({3})}, {split({4, 5, 6})}};

  // Unchanged parallelism: everything stays where it was.
  CHECK(redistributeOperatorState(old, 3) == old);

  // 3 -> 2: seven offsets in runs of 4 and 3; every subtask gets all names.
  auto two = redistributeOperatorState(old, 2);
  REQUIRE(two.size() == 2);
  CHECK(two[0] == std::vector<OperatorStateSnapshot>{all({"a", "b", "c"}), split({0, 1, 2, 3})});
  CHECK(two[1] == std::vector<OperatorStateSnapshot>{all({"a", "b", "c"}), split({4, 5, 6})});

  // 3 -> 5: runs of 2, 2, 1, 1, 1; each element exactly once.
  auto five = redistributeOperatorState(old, 5);
  REQUIRE(five.size() == 5);
  CHECK(five[0][1] == split({0, 1}));
  CHECK(five[1][1] == split({2, 3}));
  CHECK(five[2][1] == split({4}));
  CHECK(five[4][1] == split({6}));
  for (const auto& subtask : five)
    CHECK(subtask[0] == all({"a", "b", "c"}));

  // 3 -> 8: more subtasks than offsets; the last ones get an empty list.
  auto eight = redistributeOperatorState(old, 8);
  CHECK(eight[6][1] == split({6}));
  CHECK(eight[7][1] == split({}));

  // The stores restored from the redistributed snapshots see the elements.
  OperatorStateStore store;
  store.restore(two[1]);
  RuntimeContext ctx = contextFor(store, 1, 2);
  CHECK(ctx.getOperatorListState(ListStateDescriptor<std::int64_t>("offsets")).get() ==
        std::vector<std::int64_t>{4, 5, 6});
  CHECK(ctx.getUnionListState(ListStateDescriptor<std::string>("names")).get() ==
        std::vector<std::string>{"a", "b", "c"});

  const std::vector<std::vector<OperatorStateSnapshot>> clash = {
      {split({1})}, {{"offsets", OperatorStateMode::kUnion, {}}}};
  CHECK_THROWS_AS(redistributeOperatorState(clash, 1), std::invalid_argument);
}

TEST_CASE("sources: the generator keeps its stride, next index and step, in the strides state") {
  using Strides = std::vector<weir::GeneratorStride>;
  SUBCASE("parallelism 1") {
    OperatorStateStore store;
    SourceDriver<std::int64_t, Generator> source(Generator(identity, 5000), store);
    source.open();
    CHECK(stridesOf(store) == Strides{{0, 1}});
    source.poll();
    const auto n = source.records().size();
    REQUIRE(n > 0);
    CHECK(stridesOf(store) == Strides{{n, 1}});
    source.poll();
    CHECK(stridesOf(store) == Strides{{source.records().size(), 1}});
    source.drain();
    CHECK(source.records().size() == 5000);
    CHECK(stridesOf(store).empty());  // finished strides are dropped
    const auto states = store.states();
    REQUIRE(states.size() == 1);
    CHECK(states[0].name == weir::kSourceStridesState);
    CHECK(states[0].mode == OperatorStateMode::kSplitDistribute);
  }
  SUBCASE("subtask 1 of 3: after N records the next index is 1 + 3N") {
    OperatorStateStore store;
    SourceDriver<std::int64_t, Generator> source(Generator(identity, 10000), store, 1, 3);
    source.open();
    source.poll();
    const auto n = source.records().size();
    REQUIRE(n > 0);
    CHECK(source.records().back() == static_cast<std::int64_t>(1 + 3 * (n - 1)));
    CHECK(stridesOf(store) == Strides{{1 + 3 * n, 3}});
  }
  SUBCASE("a subtask beyond the count has nothing to emit") {
    OperatorStateStore store;
    SourceDriver<std::int64_t, Generator> source(Generator(identity, 2), store, 3, 4);
    source.open();
    CHECK(stridesOf(store).empty());
    CHECK(source.poll() == weir::SourceStatus::kEndOfInput);
    CHECK(source.records().empty());
  }
}

TEST_CASE("sources: a generator restored from its snapshot resumes exactly where it stood") {
  for (const int subtask : {0, 1}) {
    CAPTURE(subtask);
    OperatorStateStore first_store;
    SourceDriver<std::int64_t, Generator> first(Generator(identity, 3000), first_store, subtask, 2);
    first.open();
    first.poll();
    const std::vector<std::int64_t> before = first.records();

    OperatorStateStore second_store;
    second_store.restore(weir::detail::decodeOperatorState(
        weir::detail::encodeOperatorState(first_store.snapshot())));
    SourceDriver<std::int64_t, Generator> second(Generator(identity, 3000), second_store, subtask,
                                                 2);
    second.open();
    second.drain();

    std::vector<std::int64_t> all = before;
    all.insert(all.end(), second.records().begin(), second.records().end());
    std::vector<std::int64_t> expected;
    for (std::int64_t i = subtask; i < 3000; i += 2)
      expected.push_back(i);
    CHECK(all == expected);
  }
}

TEST_CASE("sources: an 'offset' position of an earlier version is refused with a clear error") {
  OperatorStateStore store;
  store.restore({{"offset", OperatorStateMode::kSplitDistribute, encoded<std::uint64_t>({3})}});
  SourceDriver<std::int64_t, Collection> source(Collection(numbers(10)), store, 1, 2);
  CHECK_THROWS_WITH_AS(source.open(),
                       doctest::Contains("collection subtask 1 was restored with a position in "
                                         "the 'offset' state of an earlier Weir version"),
                       std::runtime_error);
}

TEST_CASE("sources: the collection and text file sources keep their strides too") {
  using Strides = std::vector<weir::GeneratorStride>;
  SUBCASE("collection") {
    auto items = std::make_shared<const std::vector<std::string>>(
        std::vector<std::string>{"a", "b", "c", "d", "e"});
    OperatorStateStore store;
    SourceDriver<std::string, weir::CollectionSource<std::string>> source(
        weir::CollectionSource<std::string>(items), store, 1, 2);
    source.open();
    CHECK(stridesOf(store) == Strides{{1, 2}});
    source.drain();
    CHECK(source.records() == std::vector<std::string>{"b", "d"});
    CHECK(stridesOf(store).empty());

    OperatorStateStore resumed_store;
    resumed_store.restore({{"strides", OperatorStateMode::kSplitDistribute,
                            encoded<weir::GeneratorStride>({{3, 2}})}});
    SourceDriver<std::string, weir::CollectionSource<std::string>> resumed(
        weir::CollectionSource<std::string>(items), resumed_store, 1, 2);
    resumed.open();
    resumed.drain();
    CHECK(resumed.records() == std::vector<std::string>{"d"});
  }
  SUBCASE("text file: the next line of each stride") {
    weir::testing::TempDir dir;
    const std::string path = dir.file("in.txt");
    {
      std::ofstream out(path);
      for (int i = 0; i < 3000; ++i)
        out << "line " << i << "\n";
    }
    OperatorStateStore store;
    SourceDriver<std::string, weir::TextFileSource> source(weir::TextFileSource(path), store, 0, 2);
    source.open();
    CHECK(stridesOf(store) == Strides{{0, 2}});
    source.poll();
    CHECK(stridesOf(store) == Strides{{weir::kSourceRecordsPerPoll, 2}});
    CHECK(source.records().size() == weir::kSourceRecordsPerPoll / 2);

    OperatorStateStore resumed_store;
    resumed_store.restore(store.snapshot());
    SourceDriver<std::string, weir::TextFileSource> resumed(weir::TextFileSource(path),
                                                            resumed_store, 0, 2);
    resumed.open();
    resumed.drain();
    CHECK(stridesOf(resumed_store).empty());
    REQUIRE(resumed.records().size() == 1500 - weir::kSourceRecordsPerPoll / 2);
    CHECK(resumed.records().front() == "line " + std::to_string(weir::kSourceRecordsPerPoll));
    CHECK(resumed.records().back() == "line 2998");
  }
  SUBCASE("text file: a position the file never reached is an error, one just past it is not") {
    weir::testing::TempDir dir;
    const std::string path = dir.file("in.txt");
    {
      std::ofstream out(path);
      out << "a\nb\nc\n";
    }
    auto resumeAt = [&](std::uint64_t next) {
      OperatorStateStore store;
      store.restore({{"strides", OperatorStateMode::kSplitDistribute,
                      encoded<weir::GeneratorStride>({{next, 2}})}});
      SourceDriver<std::string, weir::TextFileSource> source(weir::TextFileSource(path), store, 0,
                                                             2);
      source.open();
      source.drain();
      return source.records();
    };
    CHECK(resumeAt(2) == std::vector<std::string>{"c"});
    CHECK(resumeAt(4).empty());  // read to the end (3 lines) with step 2: next is 4
    CHECK_THROWS_WITH_AS(resumeAt(5), doctest::Contains("at line 5: it has only 3 lines"),
                         std::runtime_error);
  }
}

namespace {

// Records in open() which operator state store it got, and keeps a count in it.
struct CountingMap {
  void open(const RuntimeContext& ctx) {
    seen = &ctx.getOperatorListState(ListStateDescriptor<std::int64_t>("seen"));
    seen->update({0});
  }
  std::int64_t map(const std::int64_t& v) {
    seen->update({seen->get()[0] + 1});
    return v;
  }
  ListState<std::int64_t>* seen = nullptr;
};

struct RememberingSink {
  void open(const RuntimeContext& ctx) {
    last = &ctx.getUnionListState(ListStateDescriptor<std::int64_t>("last"));
  }
  void invoke(const std::int64_t& v) { last->update({v}); }
  ListState<std::int64_t>* last = nullptr;
};

}  // namespace

TEST_CASE("operator state: every operator of a chain gives its function its own store") {
  auto program = weir::makeProgram([](weir::JobBuilder& job) {
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, 2500)
        .map(CountingMap{})
        .filter([](const std::int64_t& v) { return v % 2 == 0; })
        .addSink(RememberingSink{});
  });
  REQUIRE(program.isOk());
  const weir::LogicalGraph& graph = (*program)->graph();
  REQUIRE(graph.vertices.size() == 4);
  weir::ChainSpec spec;
  spec.job_name = "chain";
  for (const auto& v : graph.vertices) {
    spec.vertex_ids.push_back(v.id);
    spec.max_parallelism.push_back(128);
    spec.vertex_uids.push_back(v.uid);
  }
  weir::test::ManualEnvironment env;
  std::unique_ptr<weir::ChainInstance> chain;
  REQUIRE((*program)->createChain(spec, env, chain).isOk());
  auto& runtime = dynamic_cast<weir::detail::ChainRuntime&>(*chain);
  REQUIRE(chain->open().isOk());
  weir::SourceStatus status = weir::SourceStatus::kMoreAvailable;
  std::size_t emitted = 0;
  while (status != weir::SourceStatus::kEndOfInput)
    REQUIRE(chain->pollSource(std::numeric_limits<std::size_t>::max(), status, emitted).isOk());
  REQUIRE(chain->endInput().isOk());

  auto elements = [&](int vertex, const std::string& name) {
    OperatorStateStore* store = runtime.operatorState(vertex);
    REQUIRE(store != nullptr);
    for (const auto& s : store->snapshot()) {
      if (s.name == name) return s.elements;
    }
    FAIL("vertex " << vertex << " has no state " << name);
    return std::vector<std::string>{};
  };
  CHECK(elements(0, "strides").empty());  // the generator's only stride finished
  CHECK(elements(1, "seen") == encoded<std::int64_t>({2500}));
  CHECK(runtime.operatorState(2)->states().empty());  // the filter keeps none
  CHECK(elements(3, "last") == encoded<std::int64_t>({2498}));
  CHECK(runtime.operatorState(4) == nullptr);
  CHECK(chain->close().isOk());
}

namespace {

struct KeyedWithOperatorState {
  void open(const RuntimeContext& ctx) {
    keys = &ctx.getUnionListState(ListStateDescriptor<std::string>("keys"));
  }
  void processElement(const std::string& v, weir::KeyedContext<std::string>&,
                      weir::Collector<std::string>&) {
    keys->add(v);
  }
  ListState<std::string>* keys = nullptr;
};

std::string selfKey(const std::string& s) {
  return s;
}

}  // namespace

TEST_CASE("operator state: keyed functions have operator state besides their keyed state") {
  using Op = weir::detail::KeyedProcessOperator<std::string, std::string, std::string,
                                                std::string (*)(const std::string&),
                                                KeyedWithOperatorState>;
  weir::test::Harness<std::string, std::string> h(
      std::make_unique<Op>(&selfKey, KeyedWithOperatorState{}));
  h.open();
  h.push("x");
  h.push("y");
  const auto snap = h.operatorState().snapshot();
  REQUIRE(snap.size() == 1);
  CHECK(snap[0].mode == OperatorStateMode::kUnion);
  CHECK(snap[0].elements == encoded<std::string>({"x", "y"}));
}
