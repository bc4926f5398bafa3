// Event time on a real cluster: watermarks of source subtasks on two TaskManagers meet, across the
// network, at keyed subtasks whose timers fire at the minimum of them; an idle source subtask does
// not hold the other TaskManager back; `weir status` shows per-subtask late records and
// watermarks. The jobs are test/plugins/event_time_job.cc.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cluster_util.h"
#include "weir/key_groups.h"

using weir::testing::awaitState;
using weir::testing::Cluster;
using weir::testing::CommandResult;
using weir::testing::eventually;
using weir::testing::jobIdOf;
using weir::testing::vertexNamed;
using JobState = weir::thrift::JobState;

namespace {

const std::string kEventTimeJob = WEIR_TEST_BAD_PLUGIN_DIR "/event_time_job.so";

// Two TaskManagers of one slot each: a parallelism-2 job runs subtask 0 of every vertex on one of
// them and subtask 1 on the other.
void startTwoSingleSlotTaskManagers(Cluster& c, std::vector<std::string> extra = {}) {
  c.startTaskManager(1, extra);
  c.startTaskManager(1, extra);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 2; }));
}

struct Firing {
  std::int64_t from0 = 0;
  std::int64_t from1 = 0;
  std::int64_t watermark = 0;
};

// The timer firings printed so far by every TaskManager, by window; only whole lines count.
std::map<std::int64_t, Firing> firings(Cluster& c) {
  std::map<std::int64_t, Firing> out;
  for (const auto& tm : c.taskmanagers) {
    const std::string text = tm->out();
    std::istringstream in(text.substr(0, text.rfind('\n') + 1));
    for (std::string line; std::getline(in, line);) {
      const auto at = line.find("fired ");
      if (at == std::string::npos) continue;
      long long window = 0;
      Firing f;
      long long from0 = 0;
      long long from1 = 0;
      long long watermark = 0;
      REQUIRE_MESSAGE(std::sscanf(line.c_str() + at,
                                  "fired window=%lld from0=%lld from1=%lld "
                                  "watermark=%lld",
                                  &window, &from0, &from1, &watermark) == 4,
                      line);
      f.from0 = from0;
      f.from1 = from1;
      f.watermark = watermark;
      REQUIRE_MESSAGE(out.emplace(window, f).second, "window " << window << " fired twice");
    }
  }
  return out;
}

// The job's details; fails at once when the job has ended (these jobs run until cancelled).
weir::thrift::JobDetails running(Cluster& c, const std::string& job) {
  auto d = c.jobDetails(job);
  const auto state = d.summary.state;
  if (state == JobState::FINISHED || state == JobState::FAILED || state == JobState::CANCELED) {
    FAIL("job ended " << weir::thrift::to_string(state) << ": " << d.summary.failure);
  }
  return d;
}

const weir::thrift::SubtaskInfo& subtask(const weir::thrift::JobDetails& d, const std::string& uid,
                                         int index) {
  const auto& v = vertexNamed(d, uid);
  REQUIRE(v.subtasks.size() > static_cast<std::size_t>(index));
  return v.subtasks[static_cast<std::size_t>(index)];
}

// Submits the skewed-ticks job (see event_time_job.cc) and checks where its subtasks run: the two
// source subtasks on different TaskManagers, and so the keyed exchange crossing them.
std::string submitSkewed(Cluster& c, std::int64_t idleness_ms) {
  const CommandResult r = c.weir({"submit", kEventTimeJob, "-p", "2", "--arg", "mode=skew", "--arg",
                                  "idleness_ms=" + std::to_string(idleness_ms), "--detached"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string job = jobIdOf(r);
  awaitState(c, job, JobState::RUNNING);
  const auto d = c.jobDetails(job);
  CHECK(subtask(d, "ticks", 0).taskManagerId != subtask(d, "ticks", 1).taskManagerId);
  CHECK(subtask(d, "windows", 0).taskManagerId != subtask(d, "windows", 1).taskManagerId);
  return job;
}

void cancel(Cluster& c, const std::string& job) {
  const CommandResult r = c.weir({"cancel", job});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  awaitState(c, job, JobState::CANCELED);
}

}  // namespace

TEST_CASE(
    "cluster: keyed timers fire only once the watermarks of sources on both TaskManagers "
    "passed them") {
  Cluster c;
  c.startJobManager();
  startTwoSingleSlotTaskManagers(c);
  const std::string job = submitSkewed(c, 0);

  // Source subtask 0 runs far ahead (its own watermark passes 5000); subtask 1 stops at 549, and
  // the keyed subtasks on both TaskManagers stay there: windows 0 to 4 fire, no later one.
  REQUIRE(eventually(
      [&] {
        const auto d = running(c, job);
        return subtask(d, "timestamps", 0).watermark >= 5000 &&
               subtask(d, "timestamps", 1).watermark == 549 &&
               subtask(d, "windows", 0).watermark == 549 &&
               subtask(d, "windows", 1).watermark == 549 && firings(c).size() == 5;
      },
      std::chrono::seconds(20)));
  cancel(c, job);

  const auto fired = firings(c);
  REQUIRE(fired.size() == 5);
  for (const auto& entry : fired) {
    const std::int64_t window = entry.first;
    const Firing& f = entry.second;
    CAPTURE(window);
    CHECK(window <= 4);
    // Both sources' records of the window were in: its timer waited for the slower source.
    CHECK(f.from0 == 100);
    CHECK(f.from1 == 100);
    // It fired at a watermark past the window's end, and never beyond the slower source.
    CHECK(f.watermark >= window * 100 + 99);
    CHECK(f.watermark <= 549);
  }
  const auto d = c.jobDetails(job);
  CHECK(subtask(d, "windows", 0).lateRecords == 0);
  CHECK(subtask(d, "windows", 1).lateRecords == 0);
}

TEST_CASE("cluster: an idle source subtask on one TaskManager does not hold back the other") {
  Cluster c;
  c.startJobManager();
  startTwoSingleSlotTaskManagers(c, {"-D", "pipeline.auto-watermark-interval=20 ms"});
  const std::string job = submitSkewed(c, 300);

  // Source subtask 1 is silent after 549 and goes idle: the watermark follows subtask 0 alone.
  REQUIRE(eventually(
      [&] {
        running(c, job);
        return firings(c).count(9) == 1;
      },
      std::chrono::seconds(20)));
  REQUIRE(eventually([&] {
    const auto d = running(c, job);
    return subtask(d, "timestamps", 1).watermark == 549 &&
           subtask(d, "windows", 0).watermark > 999 && subtask(d, "windows", 1).watermark > 999;
  }));
  cancel(c, job);

  const auto fired = firings(c);
  REQUIRE(fired.size() >= 10);
  std::int64_t expected_window = 0;
  for (const auto& entry : fired) {
    const std::int64_t window = entry.first;
    const Firing& f = entry.second;
    CAPTURE(window);
    CHECK(window == expected_window++);  // every window, in order
    CHECK(f.from0 == 100);
    CHECK(f.from1 == (window < 5 ? 100 : window == 5 ? 50 : 0));
    CHECK(f.watermark >= window * 100 + 99);
    if (window < 5) CHECK(f.watermark <= 549);
  }
  const auto d = c.jobDetails(job);
  CHECK(subtask(d, "windows", 0).lateRecords == 0);
  CHECK(subtask(d, "windows", 1).lateRecords == 0);
}

TEST_CASE("cluster: weir status shows each subtask's late records and watermark") {
  Cluster c;
  c.startJobManager();
  startTwoSingleSlotTaskManagers(c);
  const CommandResult r =
      c.weir({"submit", kEventTimeJob, "-p", "2", "--arg", "mode=late", "--detached"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string job = jobIdOf(r);

  // Records i = 9, 19, ..., 199 are late; record i has key (i / 10) % 10. The last watermark is
  // the last on-time record's timestamp, 1000 + 10 * 198.
  std::int64_t late[2] = {0, 0};
  std::int64_t in[2] = {0, 0};
  for (std::int64_t i = 0; i < 200; ++i) {
    const std::int64_t key = (i / 10) % 10;
    const int s = weir::subtaskForKeyGroup(weir::keyGroupOf(key, 128), 2, 128);
    ++in[s];
    if (i % 10 == 9) ++late[s];
  }
  REQUIRE(late[0] > 0);
  REQUIRE(late[1] > 0);
  const std::int64_t watermark = 2980;

  std::string seen;
  const bool settled = eventually(
      [&] {
        const auto d = running(c, job);
        seen.clear();
        bool all = true;
        for (int s = 0; s < 2; ++s) {
          const auto& t = subtask(d, "late-windows", s);
          seen += " subtask " + std::to_string(s) + ": in " + std::to_string(t.recordsIn) +
                  " late " + std::to_string(t.lateRecords) + " watermark " +
                  std::to_string(t.watermark) + ";";
          all = all && t.recordsIn == in[s] && t.lateRecords == late[s] && t.watermark == watermark;
        }
        return all;
      },
      std::chrono::seconds(20));
  if (!settled) {
    for (auto& tm : c.taskmanagers)
      MESSAGE("TM: " << tm->err());
    MESSAGE("JM: " << c.jobmanager->err());
  }
  REQUIRE_MESSAGE(settled, "expected in " << in[0] << "/" << in[1] << ", late " << late[0] << "/"
                                          << late[1] << "; seen" << seen);

  const CommandResult json_status = c.weir({"status", job, "--output", "json"});
  REQUIRE_MESSAGE(json_status.exit_code == 0, json_status.err);
  const auto json = nlohmann::json::parse(json_status.out);
  bool seen_keyed = false;
  for (const auto& v : json.at("vertices")) {
    if (v.at("uid") == "late-windows") {
      seen_keyed = true;
      REQUIRE(v.at("subtasks").size() == 2);
      for (int s = 0; s < 2; ++s) {
        const auto& t = v.at("subtasks")[s];
        CHECK(t.at("subtask") == s);
        CHECK(t.at("recordsIn") == in[s]);
        CHECK(t.at("lateRecords") == late[s]);
        CHECK(t.at("watermark") == watermark);
      }
    } else if (v.at("uid") == "late-timestamps") {
      REQUIRE(v.at("subtasks").size() == 1);
      CHECK(v.at("subtasks")[0].at("lateRecords") == 0);
      CHECK(v.at("subtasks")[0].at("watermark") == watermark);
    } else if (v.at("uid") == "late-source") {
      CHECK_FALSE(v.at("subtasks")[0].contains("watermark"));  // a source has no input watermark
    }
  }
  CHECK(seen_keyed);

  // The table: the LATE and WATERMARK columns, last on each subtask's line.
  const CommandResult table = c.weir({"status", job});
  REQUIRE_MESSAGE(table.exit_code == 0, table.err);
  std::istringstream lines(table.out);
  std::string line;
  bool found = false;
  while (std::getline(lines, line)) {
    if (line.find("(uid late-windows)") == std::string::npos) continue;
    found = true;
    REQUIRE(std::getline(lines, line));
    CHECK(line.find("LATE") != std::string::npos);
    CHECK(line.find("WATERMARK") != std::string::npos);
    for (int s = 0; s < 2; ++s) {
      REQUIRE(std::getline(lines, line));
      CAPTURE(line);
      std::istringstream cells(line);
      std::vector<std::string> cell;
      for (std::string x; cells >> x;)
        cell.push_back(x);
      REQUIRE(cell.size() == 11);
      CHECK(cell[0] == std::to_string(s + 1));
      CHECK(cell[4] == std::to_string(in[s]));
      CHECK(cell[9] == std::to_string(late[s]));
      CHECK(cell[10] == std::to_string(watermark));
    }
  }
  CHECK_MESSAGE(found, table.out);
  cancel(c, job);
}
