// Savepoints on a real cluster: `weir savepoint` of a running job, `weir stop --savepoint`, and
// `weir submit --from-savepoint` at another parallelism (2 -> 3 -> 1), with the exactly-once
// counting job (test/plugins/exactly_once_job.cc): the committed output over all three runs is
// exactly the expected one, so keyed state, source positions and the sink's pending transactions
// were all carried over and redistributed.
#include <doctest/doctest.h>

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
using weir::testing::CommandResult;
using weir::testing::eventually;
using weir::testing::jobIdOf;
using JobState = weir::thrift::JobState;

namespace {

// Waits until every subtask of the job runs (a savepoint needs them all).
void awaitAllRunning(Cluster& c, const std::string& job) {
  awaitState(c, job, JobState::RUNNING);
  REQUIRE(eventually(
      [&] {
        for (const auto& v : c.jobDetails(job).vertices) {
          for (const auto& s : v.subtasks) {
            if (s.state != weir::thrift::ExecutionState::RUNNING) return false;
          }
        }
        return true;
      },
      std::chrono::seconds(30)));
}

// The path `weir savepoint` or `weir stop` printed.
std::string savepointPath(const CommandResult& r) {
  const std::string marker = "Savepoint completed. Path: ";
  const auto at = r.out.find(marker);
  REQUIRE_MESSAGE(at != std::string::npos, r.out << r.err);
  std::string path = r.out.substr(at + marker.size());
  return path.substr(0, path.find('\n'));
}

}  // namespace

TEST_CASE("savepoints: stop with a savepoint and resume at parallelism 2, 3 and 1 exactly") {
  constexpr std::int64_t kCount = 48000;
  constexpr std::int64_t kKeys = 16;
  Cluster c;
  c.startJobManager();
  c.startTaskManager(3);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 1; }));
  const std::string out = c.dir.file("out");
  const std::string savepoints = c.dir.file("savepoints");
  const std::vector<std::string> common = {
      "--arg", "count=" + std::to_string(kCount), "--arg", "keys=" + std::to_string(kKeys),
      "--arg", "rate=6000", "--arg", "out=" + out, "--arg",
      "execution.checkpointing.interval=100 ms", "--arg", "execution.checkpointing.timeout=4 s",
      "--arg", "execution.checkpointing.tolerable-failed-checkpoints=100", "--arg",
      "state.checkpoints.dir=" + c.dir.file("checkpoints")};
  auto submit = [&](int parallelism, const std::string& from) {
    std::vector<std::string> args = {"submit", kExactlyOnceJob, "-p", std::to_string(parallelism), "-d"};
    args.insert(args.end(), common.begin(), common.end());
    if (!from.empty()) {
      args.push_back("--from-savepoint");
      args.push_back(from);
    }
    auto r = c.weir(args);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return jobIdOf(r);
  };
  // Stops the job with a savepoint once it committed some output, but before it is done.
  auto stop = [&](const std::string& job) {
    awaitAllRunning(c, job);
    const std::size_t before = committedLines(out).size();
    const bool progressed = eventually(
        [&] { return committedLines(out).size() > before + 2000; }, std::chrono::seconds(60));
    if (!progressed) {
      auto listed = c.weir({"checkpoints", job});
      FAIL("no progress: " << listed.out << "\n" << c.jobmanager->err().substr(
                                  c.jobmanager->err().size() > 6000 ? c.jobmanager->err().size() - 6000 : 0));
    }
    auto r = c.weir({"stop", job, "--savepoint", savepoints});
    if (r.exit_code != 0) {
      const std::string log = c.jobmanager->err();
      const std::string tm_log = c.taskmanagers[0]->err();
      FAIL("weir stop failed: " << r.out << r.err << "\nJobManager:\n"
                                << log.substr(log.size() > 8000 ? log.size() - 8000 : 0)
                                << "\nTaskManager:\n"
                                << tm_log.substr(tm_log.size() > 8000 ? tm_log.size() - 8000 : 0));
    }
    awaitState(c, job, JobState::FINISHED);
    return savepointPath(r);
  };

  const std::string first = submit(2, "");
  awaitAllRunning(c, first);
  // A savepoint of a running job, which goes on running.
  auto taken = c.weir({"savepoint", first, savepoints});
  REQUIRE_MESSAGE(taken.exit_code == 0, taken.out << taken.err);
  CHECK(std::filesystem::exists(savepointPath(taken) + "/_metadata"));
  CHECK(c.jobState(first) == JobState::RUNNING);

  const std::string at2 = stop(first);
  CHECK(std::filesystem::exists(at2 + "/_metadata"));
  const auto after_first = committedLines(out);
  CHECK(after_first.size() < static_cast<std::size_t>(kCount));

  const std::string second = submit(3, at2);
  const std::string at3 = stop(second);
  CHECK(committedLines(out).size() > after_first.size());

  const std::string third = submit(1, at3);
  awaitState(c, third, JobState::FINISHED, std::chrono::seconds(120));
  CHECK(committedLines(out) == expectedLines(kCount, kKeys));

  // The savepoints are listed with the job that took them.
  auto listed = c.weir({"checkpoints", second, "--output", "json"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  bool found = false;
  for (const auto& h : nlohmann::json::parse(listed.out)) {
    if (h.at("savepoint") == true && h.at("status") == "COMPLETED") found = true;
  }
  CHECK(found);
}

TEST_CASE("savepoints: stop with drain, then resume exactly") {
  constexpr std::int64_t kCount = 24000;
  Cluster c;
  c.startJobManager();
  c.startTaskManager(2);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 1; }));
  const std::string out = c.dir.file("out");
  const std::vector<std::string> args = {
      "--arg", "count=" + std::to_string(kCount), "--arg", "keys=8", "--arg", "rate=6000",
      "--arg", "out=" + out, "--arg", "execution.checkpointing.interval=100 ms", "--arg",
      "state.checkpoints.dir=" + c.dir.file("checkpoints")};
  std::vector<std::string> first = {"submit", kExactlyOnceJob, "-p", "2", "-d"};
  first.insert(first.end(), args.begin(), args.end());
  auto r = c.weir(first);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string job = jobIdOf(r);
  awaitAllRunning(c, job);
  REQUIRE(eventually([&] { return committedLines(out).size() > 1000; }, std::chrono::seconds(60)));
  auto stopped = c.weir({"stop", job, "--savepoint", c.dir.file("savepoints"), "--drain"});
  REQUIRE_MESSAGE(stopped.exit_code == 0, stopped.out << stopped.err);
  awaitState(c, job, JobState::FINISHED);
  CHECK(committedLines(out).size() < static_cast<std::size_t>(kCount));

  std::vector<std::string> second = {"submit", kExactlyOnceJob, "-p", "2", "-d", "--from-savepoint",
                                     savepointPath(stopped)};
  second.insert(second.end(), args.begin(), args.end());
  r = c.weir(second);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  awaitState(c, jobIdOf(r), JobState::FINISHED, std::chrono::seconds(120));
  CHECK(committedLines(out) == expectedLines(kCount, 8));
}

TEST_CASE("savepoints: another max parallelism or unknown operators are refused at submission") {
  Cluster c;
  c.startJobManager();
  c.startTaskManager(2);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 1; }));
  const std::string out = c.dir.file("out");
  auto r = c.weir({"submit", kExactlyOnceJob, "-d", "--arg", "count=100000", "--arg", "rate=5000", "--arg",
                   "out=" + out, "--arg", "max_parallelism=64"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string job = jobIdOf(r);
  awaitAllRunning(c, job);
  auto taken = c.weir({"savepoint", job, c.dir.file("savepoints")});
  REQUIRE_MESSAGE(taken.exit_code == 0, taken.out << taken.err);
  const std::string savepoint = savepointPath(taken);
  auto cancelled = c.weir({"cancel", job});
  REQUIRE_MESSAGE(cancelled.exit_code == 0, cancelled.err);

  auto other_max = c.weir({"submit", kExactlyOnceJob, "-d", "--arg", "out=" + out, "--arg",
                           "max_parallelism=128", "--from-savepoint", savepoint});
  CHECK(other_max.exit_code != 0);
  CHECK(other_max.err.find("max parallelism") != std::string::npos);

  auto renamed = c.weir({"submit", kExactlyOnceJob, "-d", "--arg", "out=" + out, "--arg",
                         "max_parallelism=64", "--arg", "counter_uid=renamed",
                         "--from-savepoint", savepoint});
  CHECK(renamed.exit_code != 0);
  CHECK(renamed.err.find("count") != std::string::npos);
  auto allowed = c.weir({"submit", kExactlyOnceJob, "-d", "--arg", "count=100", "--arg", "out=" + out,
                         "--arg", "max_parallelism=64", "--arg", "counter_uid=renamed",
                         "--from-savepoint", savepoint, "--allow-non-restored-state"});
  CHECK_MESSAGE(allowed.exit_code == 0, allowed.err);

  auto missing = c.weir({"submit", kExactlyOnceJob, "-d", "--arg", "out=" + out, "--from-savepoint",
                         c.dir.file("no-such-savepoint")});
  CHECK(missing.exit_code != 0);
  CHECK(missing.err.find("no-such-savepoint") != std::string::npos);
  auto flag_only =
      c.weir({"submit", kExactlyOnceJob, "-d", "--arg", "out=" + out, "--allow-non-restored-state"});
  CHECK(flag_only.exit_code == 2);
  CHECK(flag_only.err.find("--from-savepoint") != std::string::npos);
}
