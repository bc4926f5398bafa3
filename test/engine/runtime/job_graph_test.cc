#include "runtime/job_graph.h"

#include <doctest/doctest.h>

#include <string>

#include "weir/plugin.h"

using weir::JobBuilder;
using weir::engine::JobGraph;

namespace {

std::int64_t identity(std::uint64_t i) {
  return static_cast<std::int64_t>(i);
}

JobGraph graphOf(void (*build)(JobBuilder&), int parallelism = 2) {
  auto program = weir::makeProgram(build);
  REQUIRE(program.isOk());
  return weir::engine::toJobGraph((*program)->graph(), parallelism, {});
}

std::string validationError(void (*build)(JobBuilder&), int parallelism = 2) {
  auto program = weir::makeProgram(build);
  if (!program.isOk()) return "builder: " + program.status().message();
  auto g = weir::engine::buildJobGraph((*program)->graph(), parallelism, {});
  return g.isOk() ? std::string() : g.status().message();
}

void pipeline(JobBuilder& job) {
  job.name("pipeline");
  job.fromGenerator(identity, 100)
      .uid("gen")
      .map([](const std::int64_t& v) { return v * 2; })
      .uid("double")
      .filter([](const std::int64_t& v) { return v % 3 != 0; })
      .keyBy([](const std::int64_t& v) { return v % 10; })
      .reduce([](const std::int64_t& a, const std::int64_t& b) { return a + b; })
      .uid("sum")
      .parallelism(3)
      .print();
}

}  // namespace

TEST_CASE("job graph: the builder's graph is resolved with defaults") {
  const JobGraph g = graphOf(pipeline, 2);
  CHECK(g.name == "pipeline");
  CHECK(g.maxParallelism == 128);
  REQUIRE(g.vertices.size() == 5);
  CHECK(g.vertices[0].uid == "gen");
  CHECK(g.vertices[0].kind == weir::thrift::VertexKind::SOURCE);
  CHECK(g.vertices[0].bounded);
  CHECK(g.vertices[1].uid == "double");
  CHECK(g.vertices[2].uid == "filter-2");  // derived deterministically when not set
  CHECK_FALSE(g.vertices[2].uidSetByUser);
  CHECK(g.vertices[3].keyed);
  CHECK(g.vertices[3].parallelism == 3);
  CHECK(g.vertices[4].kind == weir::thrift::VertexKind::SINK);
  CHECK(g.vertices[4].parallelism == 2);
  for (const auto& v : g.vertices)
    CHECK(v.maxParallelism == 128);
  REQUIRE(g.edges.size() == 4);
  CHECK(g.edges[0].partitioner == weir::thrift::Partitioner::FORWARD);
  CHECK(g.edges[1].partitioner == weir::thrift::Partitioner::FORWARD);
  CHECK(g.edges[2].partitioner == weir::thrift::Partitioner::HASH);
  CHECK(g.edges[3].partitioner == weir::thrift::Partitioner::REBALANCE);  // 3 -> 2
  CHECK(weir::engine::validateJobGraph(g).isOk());
}

TEST_CASE("job graph: building twice with the same arguments gives the same graph") {
  const JobGraph a = graphOf(pipeline);
  const JobGraph b = graphOf(pipeline);
  CHECK(weir::engine::serializeJobGraph(a) == weir::engine::serializeJobGraph(b));
  auto program = weir::makeProgram(pipeline);
  REQUIRE(program.isOk());
  CHECK(weir::engine::checkSameGraph(a, (*program)->graph()).isOk());
}

TEST_CASE("job graph: a non-deterministic builder is detected") {
  static int calls = 0;
  auto flaky = [](JobBuilder& job) {
    auto s = job.fromGenerator(identity, 10);
    if (++calls % 2 == 0) s = s.map([](const std::int64_t& v) { return v; });
    s.print();
  };
  calls = 0;
  auto first = weir::makeProgram(flaky);
  auto second = weir::makeProgram(flaky);
  REQUIRE(first.isOk());
  REQUIRE(second.isOk());
  auto g = weir::engine::buildJobGraph((*first)->graph(), 1, {});
  REQUIRE(g.isOk());
  const weir::Status s = weir::engine::checkSameGraph(*g, (*second)->graph());
  CHECK_FALSE(s.isOk());
  CHECK(s.message().find("not deterministic") != std::string::npos);
}

TEST_CASE("job graph: Thrift encoding round trips") {
  JobGraph g = graphOf(pipeline);
  g.jobArgs["input"] = "/tmp/x";
  const std::string bytes = weir::engine::serializeJobGraph(g);
  auto back = weir::engine::deserializeJobGraph(bytes);
  REQUIRE(back.isOk());
  CHECK(*back == g);
  auto bad = weir::engine::deserializeJobGraph(bytes.substr(0, bytes.size() / 2));
  CHECK_FALSE(bad.isOk());
  CHECK(bad.status().code() == weir::Status::Code::kCorruption);
}

TEST_CASE("job graph: invalid graphs are refused with a clear error") {
  SUBCASE("duplicate uid") {
    const std::string e = validationError([](JobBuilder& job) {
      job.fromGenerator(identity, 1)
          .uid("same")
          .map([](const std::int64_t& v) { return v; })
          .uid("same")
          .print();
    });
    CHECK(e.find("duplicate uid 'same'") != std::string::npos);
  }
  SUBCASE("parallelism above max parallelism") {
    const std::string e = validationError([](JobBuilder& job) {
      job.fromGenerator(identity, 1).maxParallelism(4).parallelism(8).print();
    });
    CHECK(e.find("parallelism 8 exceeds max parallelism 4") != std::string::npos);
  }
  SUBCASE("default parallelism above the job's max parallelism") {
    const std::string e = validationError(
        [](JobBuilder& job) { job.maxParallelism(16).fromGenerator(identity, 1).print(); }, 32);
    CHECK(e.find("exceeds max parallelism 16") != std::string::npos);
  }
  SUBCASE("forward between different parallelisms") {
    const std::string e = validationError([](JobBuilder& job) {
      job.fromGenerator(identity, 1).parallelism(2).forward().print().parallelism(3);
    });
    CHECK(e.find("forward partitioning") != std::string::npos);
    CHECK(e.find("use rebalance()") != std::string::npos);
  }
  SUBCASE("builder misuse is reported by the builder") {
    CHECK(validationError([](JobBuilder& job) {
            job.fromGenerator(identity, 1).parallelism(0);
          }).find("parallelism must be at least 1") != std::string::npos);
    CHECK(validationError([](JobBuilder& job) {
            job.fromGenerator(identity, 1).uid("");
          }).find("uid must not be empty") != std::string::npos);
    CHECK(validationError([](JobBuilder& job) {
            auto a = job.fromGenerator(identity, 1);
            auto b = job.fromGenerator(identity, 1);
            a.unionWith(b).name("x");
          }).find("union of 2 streams") != std::string::npos);
    CHECK(validationError([](JobBuilder&) {}).find("no operators") != std::string::npos);
    CHECK(validationError([](JobBuilder& job) {
            job.maxParallelism(0);
          }).find("max parallelism must be in") != std::string::npos);
  }
}

TEST_CASE("job graph: structural errors in graphs from elsewhere are refused") {
  const JobGraph good = graphOf(pipeline);
  auto refused = [](const JobGraph& g) { return weir::engine::validateJobGraph(g).message(); };

  JobGraph g = good;
  g.vertices[3].keyed = true;
  g.edges[2].partitioner = weir::thrift::Partitioner::REBALANCE;
  CHECK(refused(g).find("keyed operator") != std::string::npos);
  CHECK(refused(g).find("keyBy") != std::string::npos);

  g = good;
  g.vertices[3].keyed = false;
  CHECK(refused(g).find("not keyed") != std::string::npos);

  g = good;
  g.edges.push_back(g.edges[0]);
  g.edges.back().id = 99;
  g.edges.back().source = 4;
  g.edges.back().target = 1;
  CHECK(refused(g).find("sink") != std::string::npos);

  g = good;
  weir::thrift::JobEdge back_edge = g.edges[1];
  back_edge.id = 98;
  back_edge.source = 2;
  back_edge.target = 1;
  g.edges.push_back(back_edge);
  CHECK(refused(g).find("cycle") != std::string::npos);

  g = good;
  g.edges[0].target = 42;
  CHECK(refused(g).find("does not exist") != std::string::npos);

  g = good;
  g.edges[0].target = 0;
  CHECK(refused(g).find("itself") != std::string::npos);

  g = good;
  g.edges.erase(g.edges.begin());
  CHECK(refused(g).find("has no input") != std::string::npos);

  g = good;
  g.vertices[0].kind = weir::thrift::VertexKind::OPERATOR;
  g.edges.erase(g.edges.begin());
  CHECK_FALSE(weir::engine::validateJobGraph(g).isOk());

  g = good;
  g.vertices[1].uid = "";
  CHECK(refused(g).find("empty uid") != std::string::npos);

  g = good;
  g.vertices[1].parallelism = 0;
  CHECK(refused(g).find("below 1") != std::string::npos);

  g = good;
  g.vertices.clear();
  g.edges.clear();
  CHECK(refused(g).find("no operators") != std::string::npos);

  g = good;
  g.maxParallelism = 40000;
  CHECK(refused(g).find("outside [1, 32768]") != std::string::npos);

  CHECK(weir::engine::buildJobGraph({}, 0, {}).status().message().find("at least 1") !=
        std::string::npos);
}
