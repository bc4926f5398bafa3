// Routing of every partitioner, observed end to end: each record is tagged with the subtask of the
// operator that received it.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "engine/job_test_util.h"
#include "weir/weir.h"

using weir::JobBuilder;

namespace {

struct Routed {
  std::int64_t value = 0;
  int subtask = 0;
  int key_group = -1;
  bool operator<(const Routed& o) const {
    return std::tie(value, subtask) < std::tie(o.value, o.subtask);
  }
  WEIR_SERDE_FIELDS(value, subtask, key_group)
};

class Tag {
 public:
  void open(const weir::RuntimeContext& ctx) { subtask_ = ctx.subtaskIndex(); }
  Routed map(const std::int64_t& v) const { return Routed{v, subtask_, -1}; }
  Routed map(const Routed& r) const { return Routed{r.value, subtask_, r.key_group}; }

 private:
  int subtask_ = 0;
};

constexpr std::int64_t kRecords = 3000;

std::int64_t identity(std::uint64_t i) {
  return static_cast<std::int64_t>(i);
}

std::vector<Routed> run(
    const std::function<weir::DataStream<Routed>(weir::DataStream<std::int64_t>)>& route,
    int source_parallelism) {
  weir::CollectSink<Routed> sink;
  auto build = [sink, route, source_parallelism](JobBuilder& job) {
    auto numbers = job.fromGenerator(identity, kRecords).parallelism(source_parallelism);
    route(numbers).addSink(sink);
  };
  REQUIRE(weir::testing::runJob(build, 1).isOk());
  auto results = sink.results();
  std::sort(results.begin(), results.end());
  return results;
}

}  // namespace

TEST_CASE("partitioner: forward keeps records on the same subtask index") {
  const auto out = run([](auto s) { return s.forward().map(Tag{}).parallelism(3); }, 3);
  REQUIRE(out.size() == kRecords);
  for (std::int64_t i = 0; i < kRecords; ++i) {
    CHECK(out[i].value == i);
    CHECK(out[i].subtask == i % 3);  // the generator gives subtask s the indices = s mod 3
  }
}

TEST_CASE("partitioner: rebalance goes round robin, each producer starting at its own index") {
  const auto out = run([](auto s) { return s.rebalance().map(Tag{}).parallelism(3); }, 2);
  REQUIRE(out.size() == kRecords);
  std::vector<int> per_subtask(3, 0);
  for (std::int64_t i = 0; i < kRecords; ++i) {
    const std::int64_t producer = i % 2;  // which source subtask emitted i
    const std::int64_t k = i / 2;         // its k-th record
    CHECK(out[i].value == i);
    CHECK(out[i].subtask == (producer + k) % 3);
    ++per_subtask[out[i].subtask];
  }
  CHECK(per_subtask == std::vector<int>{1000, 1000, 1000});
}

TEST_CASE("partitioner: broadcast delivers every record to every subtask") {
  const auto out = run([](auto s) { return s.broadcast().map(Tag{}).parallelism(4); }, 2);
  REQUIRE(out.size() == 4 * kRecords);
  for (std::int64_t i = 0; i < kRecords; ++i) {
    for (int s = 0; s < 4; ++s) {
      CHECK(out[i * 4 + s].value == i);
      CHECK(out[i * 4 + s].subtask == s);
    }
  }
}

TEST_CASE("partitioner: hash sends each key to the subtask owning its key group") {
  const auto out = run(
      [](auto s) {
        return s.keyBy([](const std::int64_t& v) { return v % 97; })
            .process([](const std::int64_t& v, weir::KeyedContext<std::int64_t>& ctx,
                        weir::Collector<Routed>& out) {
              out.collect(Routed{v, -1, ctx.currentKeyGroup()});
            })
            .parallelism(3)
            .map(Tag{})  // forward-chained: tags with the keyed operator's subtask
            .parallelism(3);
      },
      2);
  REQUIRE(out.size() == kRecords);
  std::map<std::int64_t, int> subtask_of_key;
  for (std::int64_t i = 0; i < kRecords; ++i) {
    const std::int64_t key = i % 97;
    const int kg = weir::keyGroupOf(key, 128);
    CHECK(out[i].value == i);
    CHECK(out[i].subtask == weir::subtaskForKeyGroup(kg, 3, 128));
    auto [it, inserted] = subtask_of_key.emplace(key, out[i].subtask);
    CHECK(it->second == out[i].subtask);  // one key, one subtask
  }
}

TEST_CASE("partitioner: the example plugin exercising every partitioner runs") {
  auto plugin = weir::engine::LoadedPlugin::load(WEIR_TEST_PLUGIN_DIR "/partitioners.so");
  REQUIRE(plugin.isOk());
  weir::JobArgs args;
  args.set("count", "50");
  auto job =
      weir::engine::LocalJob::start(weir::engine::pluginProgramFactory(*plugin, args), 2, args);
  REQUIRE(job.isOk());
  CHECK((*job)->wait().isOk());
}
