#include "runtime/execution_plan.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

#include "weir/plugin.h"

using weir::JobBuilder;
using weir::engine::ChainDef;
using weir::engine::JobGraph;

namespace {

std::int64_t identity(std::uint64_t i) {
  return static_cast<std::int64_t>(i);
}
std::int64_t same(const std::int64_t& v) {
  return v;
}

JobGraph graphOf(void (*build)(JobBuilder&), int parallelism) {
  auto program = weir::makeProgram(build);
  REQUIRE(program.isOk());
  auto g = weir::engine::buildJobGraph((*program)->graph(), parallelism, {});
  REQUIRE_MESSAGE(g.isOk(), g.status().message());
  return *g;
}

std::vector<std::vector<int>> chainVertices(const JobGraph& g) {
  std::vector<std::vector<int>> out;
  for (const ChainDef& c : weir::engine::computeChains(g))
    out.push_back(c.vertices);
  return out;
}

}  // namespace

TEST_CASE("chaining: forward edges between equal parallelisms chain") {
  const JobGraph g = graphOf(
      [](JobBuilder& job) { job.fromGenerator(identity, 1).map(same).filter(same).print(); }, 4);
  CHECK(chainVertices(g) == std::vector<std::vector<int>>{{0, 1, 2, 3}});
  const auto chains = weir::engine::computeChains(g);
  CHECK(chains[0].name == "Source: Generator -> Map -> Filter -> Print to Std. Out");
  CHECK(chains[0].input_edges.empty());
  CHECK(chains[0].output_edges.empty());
}

TEST_CASE("chaining: keyBy, rebalance, broadcast and parallelism changes break chains") {
  const JobGraph g = graphOf(
      [](JobBuilder& job) {
        auto src = job.fromGenerator(identity, 1);
        src.map(same)  // 1: chained to the source
            .keyBy([](const std::int64_t& v) { return v; })
            .reduce([](const std::int64_t& a, const std::int64_t&) { return a; })  // 2: hash
            .print();                          // 3: chained to the reduce
        src.rebalance().map(same).print();     // 4, 5
        src.broadcast().map(same).print();     // 6, 7
        src.map(same).parallelism(3).print();  // 8: parallelism differs; 9: rebalance 3 -> 2
      },
      2);
  CHECK(chainVertices(g) ==
        std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8}, {9}});
  for (const auto& e : g.edges) {
    const std::string why = weir::engine::chainBreakReason(g, e);
    if (e.target == 1 || e.target == 3 || e.target == 5 || e.target == 7) {
      CHECK(why.empty());
    } else if (e.target == 8) {
      CHECK(why == "partitioner is not forward");  // default resolved to rebalance
    } else {
      CHECK_FALSE(why.empty());
    }
  }
}

TEST_CASE("chaining: a union input and startNewChain start a new chain") {
  const JobGraph g = graphOf(
      [](JobBuilder& job) {
        auto a = job.fromGenerator(identity, 1);
        auto b = job.fromGenerator(identity, 1);
        a.unionWith(b).map(same).print();     // 2 has two inputs
        a.map(same).startNewChain().print();  // 4 asked for its own chain
      },
      1);
  CHECK(chainVertices(g) == std::vector<std::vector<int>>{{0}, {1}, {2, 3}, {4, 5}});
}

TEST_CASE("planning: one task per chain and subtask, channels laid out per input edge") {
  const JobGraph g = graphOf(
      [](JobBuilder& job) {
        auto a = job.fromGenerator(identity, 1).parallelism(2);
        auto b = job.fromGenerator(identity, 1).parallelism(3);
        a.unionWith(b).map(same).parallelism(2).print();
      },
      2);
  const auto plan = weir::engine::planExecution(g);
  // chains: a (x2), b (x3), map+print (x2)
  REQUIRE(plan.chains.size() == 3);
  CHECK(plan.tasks.size() == 7);
  const auto& consumer = plan.tasks[5];
  CHECK(consumer.chain_id == 2);
  CHECK(consumer.task_name == "Map -> Print to Std. Out (1/2)");
  // a -> map is forward (equal parallelism): one channel; b -> map is rebalance: three channels.
  CHECK(consumer.spec.num_input_channels == 4);
  REQUIRE(consumer.inputs.size() == 4);
  CHECK(consumer.inputs[0].producer_chain == 0);
  CHECK(consumer.inputs[0].producer_subtask == 0);
  for (int j = 0; j < 3; ++j) {
    CHECK(consumer.inputs[1 + j].producer_chain == 1);
    CHECK(consumer.inputs[1 + j].producer_subtask == j);
  }
  // Source a subtask 1 sends forward to consumer subtask 1, channel 0.
  const auto& a1 = plan.tasks[1];
  REQUIRE(a1.routes.size() == 1);
  REQUIRE(a1.routes[0].size() == 1);
  CHECK(a1.routes[0][0].consumer_subtask == 1);
  CHECK(a1.routes[0][0].consumer_channel == 0);
  CHECK(a1.spec.outputs[0].partitioner == weir::Partitioner::kForward);
  // Source b subtask 2 sends to both consumers, on channel 1 + 2.
  const auto& b2 = plan.tasks[4];
  REQUIRE(b2.routes[0].size() == 2);
  for (int k = 0; k < 2; ++k) {
    CHECK(b2.routes[0][k].consumer_subtask == k);
    CHECK(b2.routes[0][k].consumer_channel == 3);
  }
  CHECK(b2.spec.outputs[0].partitioner == weir::Partitioner::kRebalance);
  // Every consumer channel is fed by exactly one producer channel.
  std::set<std::pair<int, int>> fed;
  for (const auto& t : plan.tasks) {
    for (const auto& out : t.routes) {
      for (const auto& r : out) {
        CHECK(fed.insert({r.consumer_subtask, r.consumer_channel}).second);
      }
    }
  }
  CHECK(fed.size() == 8);
}
