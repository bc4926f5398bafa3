// Unaligned checkpoints on a real cluster: under heavy back-pressure (a sink that takes seconds to
// drain the buffers queued before it) aligned checkpoints expire, while unaligned ones, and
// aligned ones that switch to unaligned after aligned-checkpoint-timeout, complete; and a keyed
// exactly-once job restarted from unaligned checkpoints after kill -9 commits exactly its output,
// also when its records are larger than a network buffer and barriers overtake at the producer.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
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

const std::string kClusterJob = WEIR_TEST_BAD_PLUGIN_DIR "/cluster_job.so";

struct History {
  int completed = 0;
  int failed = 0;
  std::int64_t completed_state_size = 0;  // of the newest completed checkpoint
  std::string completed_path;             // of the newest completed checkpoint
};

History history(Cluster& c, const std::string& job) {
  History h;
  auto listed = c.weir({"checkpoints", job, "--output", "json"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  for (const auto& entry : nlohmann::json::parse(listed.out)) {
    if (entry.at("status") == "COMPLETED") {
      if (++h.completed == 1) {  // newest first
        h.completed_state_size = entry.at("stateSize").get<std::int64_t>();
        h.completed_path = entry.at("path").get<std::string>();
      }
    } else if (entry.at("status") == "FAILED") {
      ++h.failed;
    }
  }
  return h;
}

// Submits the back-pressured job (a source rebalanced into a sink that needs about 0.6 s per
// network buffer, about 7 s for the buffers queued before it) with a checkpoint timeout of 2 s.
std::string submitBackpressured(Cluster& c, const std::string& name,
                                const std::vector<std::string>& extra, int parallelism = 1) {
  std::vector<std::string> args = {"submit",
                                   kClusterJob,
                                   "-p",
                                   std::to_string(parallelism),
                                   "-d",
                                   "--arg",
                                   "mode=backpressured",
                                   "--arg",
                                   "sleep_us=20000",
                                   "--arg",
                                   "record_bytes=1000",
                                   "--arg",
                                   "execution.checkpointing.interval=500 ms",
                                   "--arg",
                                   "execution.checkpointing.timeout=2 s",
                                   "--arg",
                                   "execution.checkpointing.tolerable-failed-checkpoints=1000",
                                   "--arg",
                                   "state.checkpoints.dir=" + c.dir.file("checkpoints-" + name)};
  for (const auto& e : extra) {
    args.push_back("--arg");
    args.push_back(e);
  }
  auto submitted = c.weir(args);
  REQUIRE_MESSAGE(submitted.exit_code == 0, submitted.err);
  const std::string job = jobIdOf(submitted);
  awaitState(c, job, JobState::RUNNING);
  return job;
}

// True once a file of in-flight state whose name ends in `suffix` exists under `dir`: `.channels`
// for any, `.output.channels` for the output a producer persisted.
bool hasChannelStateFile(const std::filesystem::path& dir,
                         const std::string& suffix = ".channels") {
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() >= suffix.size() && name.ends_with(suffix)) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("unaligned checkpoints complete under back-pressure where aligned ones expire") {
  Cluster c;
  c.startJobManager();
  c.startTaskManager(6);
  const std::string aligned = submitBackpressured(c, "aligned", {});
  const std::string unaligned =
      submitBackpressured(c, "unaligned", {"execution.checkpointing.unaligned=true"});
  const std::string switching =
      submitBackpressured(c, "switching",
                          {"execution.checkpointing.unaligned=true",
                           "execution.checkpointing.aligned-checkpoint-timeout=300 ms"});

  // Unaligned: the barriers overtake the queued buffers, which the sink persists.
  REQUIRE(
      eventually([&] { return history(c, unaligned).completed >= 2; }, std::chrono::seconds(30)));
  CHECK(history(c, unaligned).completed_state_size > 0);
  CHECK(c.jobDetails(unaligned).summary.lastCheckpointId > 0);
  CHECK(hasChannelStateFile(c.dir.file("checkpoints-unaligned")));
  // Aligned first, unaligned once the sink's alignment lasts 300 ms.
  REQUIRE(
      eventually([&] { return history(c, switching).completed >= 2; }, std::chrono::seconds(30)));
  // Aligned: every checkpoint waits for the queues to drain and expires.
  REQUIRE(eventually([&] { return history(c, aligned).failed >= 2; }, std::chrono::seconds(30)));
  CHECK(history(c, aligned).completed == 0);
  CHECK(c.jobDetails(aligned).summary.lastCheckpointId == 0);
  for (const auto& job : {aligned, unaligned, switching}) {
    CHECK(c.jobDetails(job).summary.state == JobState::RUNNING);
    auto cancelled = c.weir({"cancel", job});
    CHECK_MESSAGE(cancelled.exit_code == 0, cancelled.err);
  }
}

// Runs the exactly-once job (parallelism 2, its counting function back-pressured) with unaligned
// checkpoints on `task_managers` TaskManagers of `slots` slots each, kills the first one with
// SIGKILL once checkpoints with in-flight data completed (a replacement starts first), and checks
// that the restored job replayed in-flight data and committed exactly the expected output.
// Over the network most overtaken buffers wait at the producer for credit: the producer persists
// them itself (its in-flight output), so the checkpoint does not wait for that credit.
TEST_CASE("unaligned checkpoints complete under back-pressure across TaskManagers") {
  Cluster c;
  c.startJobManager();
  // One slot each: each source subtask feeds one sink subtask here and one over the network,
  // whose buffers mostly wait at the producer for credit.
  c.startTaskManager(1);
  c.startTaskManager(1);
  const std::string job =
      submitBackpressured(c, "remote", {"execution.checkpointing.unaligned=true"}, 2);
  REQUIRE(eventually([&] { return history(c, job).completed >= 2; }, std::chrono::seconds(30)));
  CHECK(history(c, job).completed_state_size > 0);
  CHECK(hasChannelStateFile(c.dir.file("checkpoints-remote"), ".output.channels"));
  auto cancelled = c.weir({"cancel", job});
  CHECK_MESSAGE(cancelled.exit_code == 0, cancelled.err);
}

TEST_CASE("aligned checkpoints switch to unaligned at the producer too, across TaskManagers") {
  // Over the network an aligned barrier first waits at the producer, behind the buffers queued
  // there for credit; after aligned-checkpoint-timeout it overtakes them there.
  Cluster c;
  c.startJobManager();
  c.startTaskManager(1);
  c.startTaskManager(1);
  const std::string job = submitBackpressured(
      c, "switching-remote",
      {"execution.checkpointing.unaligned=true",
       "execution.checkpointing.aligned-checkpoint-timeout=300 ms"},
      2);
  REQUIRE(eventually([&] { return history(c, job).completed >= 2; }, std::chrono::seconds(30)));
  // Waiting at the producer until the queue drained, the first checkpoints would expire.
  CHECK_MESSAGE(history(c, job).failed <= 1, c.weir({"checkpoints", job}).out);
  CHECK(hasChannelStateFile(c.dir.file("checkpoints-switching-remote"), ".output.channels"));
  auto cancelled = c.weir({"cancel", job});
  CHECK_MESSAGE(cancelled.exit_code == 0, cancelled.err);
}

namespace {

// `extra` job arguments; the kill waits for a checkpoint with a file of in-flight state whose name
// ends in `state_suffix` (see hasChannelStateFile).
void runKilled(int task_managers, int slots, std::int64_t count, int slow_us,
               const std::vector<std::string>& extra = {},
               const std::string& state_suffix = ".channels") {
  constexpr std::int64_t kKeys = 16;
  const std::int64_t kCount = count;
  Cluster c;
  c.startJobManager();
  std::vector<weir::testing::Process*> tms;
  for (int i = 0; i < task_managers; ++i)
    tms.push_back(&c.startTaskManager(slots));
  auto* first = tms.front();
  const std::string out = c.dir.file("out");
  const std::string checkpoints = c.dir.file("checkpoints");
  std::vector<std::string> args = {"submit",
                                   kExactlyOnceJob,
                                   "-p",
                                   "2",
                                   "-d",
                                   "--arg",
                                   "count=" + std::to_string(kCount),
                                   "--arg",
                                   "keys=" + std::to_string(kKeys),
                                   "--arg",
                                   "rate=20000",
                                   "--arg",
                                   "slow_us=" + std::to_string(slow_us),
                                   "--arg",
                                   "out=" + out,
                                   "--arg",
                                   "execution.checkpointing.interval=200 ms",
                                   "--arg",
                                   "execution.checkpointing.unaligned=true",
                                   "--arg",
                                   "state.checkpoints.dir=" + checkpoints,
                                   "--arg",
                                   "restart-strategy.type=fixed-delay",
                                   "--arg",
                                   "restart-strategy.fixed-delay.attempts=20",
                                   "--arg",
                                   "restart-strategy.fixed-delay.delay=50 ms"};
  for (const auto& e : extra) {
    args.push_back("--arg");
    args.push_back(e);
  }
  auto submitted = c.weir(args);
  REQUIRE_MESSAGE(submitted.exit_code == 0, submitted.err);
  const std::string job = jobIdOf(submitted);
  awaitState(c, job, JobState::RUNNING);
  // Killed once the newest completed checkpoint holds in-flight data (early: the job must still
  // be running however slow its checkpoints are on a busy machine).
  weir::thrift::JobSummary last;
  const bool ready = eventually(
      [&] {
        last = c.jobDetails(job).summary;
        if (last.state != JobState::RUNNING) return false;
        const std::string newest = history(c, job).completed_path;
        return !newest.empty() && hasChannelStateFile(newest, state_suffix);
      },
      std::chrono::seconds(60));
  REQUIRE_MESSAGE(ready, "job " << last.state << ", last checkpoint " << last.lastCheckpointId
                                << "\n"
                                << c.weir({"checkpoints", job}).out);
  const auto before = c.jobDetails(job).summary;
  MESSAGE("killing the TaskManager after checkpoint " << before.lastCheckpointId);
  tms.push_back(&c.startTaskManager(slots));
  first->signal(SIGKILL);
  REQUIRE(eventually(
      [&] {
        const auto s = c.jobDetails(job).summary;
        return s.restarts > before.restarts || s.state == JobState::FAILED;
      },
      std::chrono::seconds(30)));
  const bool finished = eventually(
      [&] {
        const auto state = c.jobDetails(job).summary.state;
        return state == JobState::FINISHED || state == JobState::FAILED;
      },
      std::chrono::seconds(120));
  REQUIRE_MESSAGE(finished, c.weir({"checkpoints", job, "--output", "json"}).out);
  REQUIRE(c.jobDetails(job).summary.state == JobState::FINISHED);
  CHECK(c.jobDetails(job).summary.restarts >= 1);
  // The restored count subtasks replayed the buffers their checkpoint had overtaken.
  std::string log;
  for (std::size_t i = 1; i < tms.size(); ++i)
    log += tms[i]->out() + tms[i]->err();
  CHECK_MESSAGE(log.find("bytes of in-flight input from checkpoint") != std::string::npos, log);
  const auto lines = committedLines(out);
  const auto expected = expectedLines(kCount, kKeys);
  CHECK(lines.size() == expected.size());
  CHECK(lines == expected);
}

}  // namespace

TEST_CASE("unaligned checkpoints: a back-pressured exactly-once job survives kill -9 exactly") {
  // All subtasks on one TaskManager: local channels.
  runKilled(1, 4, 60000, 150);
}

TEST_CASE("unaligned checkpoints: kill -9 with channels between TaskManagers") {
  // One slot each: the job spans two TaskManagers, half its keyed channels cross the network.
  runKilled(2, 1, 80000, 100);
}

TEST_CASE("unaligned checkpoints: kill -9 with records cut where a producer's barrier overtook") {
  // Records of 40 KB span two 32 KiB buffers, and aligned barriers that wait 300 ms in a send
  // queue to the other TaskManager overtake the data there: the consumer keeps the part of a
  // record it read before the barrier in its in-flight input, and the producer persists the rest.
  runKilled(2, 1, 300, 40000,
            {"padding=40000", "execution.checkpointing.aligned-checkpoint-timeout=300 ms"},
            ".output.channels");
}
