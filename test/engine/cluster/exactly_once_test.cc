// Exactly-once end to end on a real cluster: a keyed counting job (test/plugins/exactly_once_job.cc)
// writes through the exactly-once file sink while TaskManagers are killed with SIGKILL at random
// checkpoints and a task fails by an injected exception; it restarts from its latest checkpoint
// each time, and the committed output is exactly the expected one, on both state backends.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cluster_util.h"
#include "exactly_once_output.h"

using weir::testing::awaitState;
using weir::testing::Cluster;
using weir::testing::committedLines;
using weir::testing::expectedLines;
using weir::testing::kExactlyOnceJob;
using weir::testing::eventually;
using weir::testing::jobIdOf;
using JobState = weir::thrift::JobState;

namespace {

// Ids of the TaskManagers running a subtask of the job right now.
std::vector<std::string> hosts(Cluster& c, const std::string& job) {
  std::vector<std::string> out;
  for (const auto& v : c.jobDetails(job).vertices) {
    for (const auto& s : v.subtasks) {
      if (s.state == weir::thrift::ExecutionState::RUNNING &&
          std::find(out.begin(), out.end(), s.taskManagerId) == out.end()) {
        out.push_back(s.taskManagerId);
      }
    }
  }
  return out;
}

void runExactlyOnce(const std::string& backend, unsigned seed) {
  constexpr std::int64_t kCount = 60000;
  constexpr std::int64_t kKeys = 16;
  Cluster c;
  c.startJobManager();
  // One slot each: the job (parallelism 2) fits on any two of them. TaskManager n registers as
  // "tm-n" as long as they start one after the other.
  std::vector<weir::testing::Process*> by_number = {nullptr};
  auto start_tm = [&] {
    const int before = static_cast<int>(by_number.size()) - 1;
    by_number.push_back(&c.startTaskManager(1));
    REQUIRE(eventually([&] {
      int registered = 0;
      for (const auto& tm : c.taskManagerInfos())
        registered = std::max(registered, std::stoi(tm.id.substr(3)));
      return registered == before + 1;
    }));
  };
  for (int i = 0; i < 3; ++i)
    start_tm();

  const std::string out = c.dir.file("out");
  const std::string checkpoints = c.dir.file("checkpoints");
  const std::string marker = c.dir.file("failed-once");
  auto submitted = c.weir({"submit", kExactlyOnceJob, "-p", "2", "-d", "--arg",
                           "count=" + std::to_string(kCount), "--arg",
                           "keys=" + std::to_string(kKeys), "--arg", "rate=8000", "--arg",
                           "out=" + out, "--arg", "state.backend=" + backend, "--arg",
                           "execution.checkpointing.interval=150 ms", "--arg",
                           "state.checkpoints.dir=" + checkpoints, "--arg",
                           "restart-strategy.type=fixed-delay", "--arg",
                           "restart-strategy.fixed-delay.attempts=20", "--arg",
                           "restart-strategy.fixed-delay.delay=50 ms", "--arg",
                           "fail_at=" + std::to_string(kCount / 3), "--arg",
                           "fail_marker=" + marker});
  REQUIRE_MESSAGE(submitted.exit_code == 0, submitted.err);
  const std::string job = jobIdOf(submitted);
  awaitState(c, job, JobState::RUNNING);

  std::mt19937 random(seed);
  for (int kill = 0; kill < 2; ++kill) {
    // A random point: one to three checkpoints after the last restart's first one.
    const auto summary = c.jobDetails(job).summary;
    const std::int64_t wait_for = summary.lastCheckpointId + 1 + random() % 3;
    const bool reached = eventually(
        [&] {
          const auto s = c.jobDetails(job).summary;
          if (s.state == JobState::FINISHED || s.state == JobState::FAILED) return true;
          return s.state == JobState::RUNNING && s.lastCheckpointId >= wait_for;
        },
        std::chrono::seconds(60));
    REQUIRE(reached);
    if (c.jobDetails(job).summary.state != JobState::RUNNING) break;
    const auto running_on = hosts(c, job);
    REQUIRE_FALSE(running_on.empty());
    const std::string victim = running_on[random() % running_on.size()];
    const int restarts = c.jobDetails(job).summary.restarts;
    MESSAGE("killing " << victim << " after checkpoint " << wait_for);
    by_number.at(static_cast<std::size_t>(std::stoi(victim.substr(3))))->signal(SIGKILL);
    start_tm();  // the replacement keeps two free slots for the restart
    REQUIRE(eventually(
        [&] {
          const auto s = c.jobDetails(job).summary;
          return s.restarts > restarts || s.state == JobState::FAILED;
        },
        std::chrono::seconds(30)));
  }
  awaitState(c, job, JobState::FINISHED, std::chrono::seconds(120));
  const auto summary = c.jobDetails(job).summary;
  CHECK(summary.restarts >= 2);  // the injected failure and at least one kill
  CHECK(std::filesystem::exists(marker));

  const auto lines = committedLines(out);
  const auto expected = expectedLines(kCount, kKeys);
  CHECK(lines.size() == expected.size());
  CHECK(lines == expected);

  // `weir checkpoints` lists the completed checkpoints with their sizes.
  auto listed = c.weir({"checkpoints", job, "--output", "json"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  const auto history = nlohmann::json::parse(listed.out);
  int completed = 0;
  bool incremental = false;
  for (const auto& h : history) {
    if (h.at("status") != "COMPLETED") continue;
    ++completed;
    CHECK(h.at("stateSize").get<std::int64_t>() > 0);
    // RocksDB: a checkpoint that reuses table files uploaded before writes less than it holds.
    incremental |= h.at("checkpointedSize").get<std::int64_t>() < h.at("stateSize").get<std::int64_t>();
  }
  CHECK(completed >= 1);
  if (backend == "rocksdb") CHECK(incremental);
}

}  // namespace

TEST_CASE("exactly-once: committed file output survives kill -9 and an injected failure, heap") {
  runExactlyOnce("heap", 7);
}

TEST_CASE("exactly-once: committed file output survives kill -9 and an injected failure, rocksdb") {
  runExactlyOnce("rocksdb", 11);
}
