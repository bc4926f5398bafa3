// Jobs on a real cluster: a JobManager and TaskManagers as processes on 127.0.0.1, driven through
// the weir CLI. Plugins are shipped by the JobManager; data crosses TaskManagers over TCP.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cluster_util.h"
#include "common/sha256.h"
#include "engine/job_test_util.h"
#include "test_data.h"
#include "weir/key_groups.h"

using weir::testing::awaitState;
using weir::testing::Cluster;
using weir::testing::CommandResult;
using weir::testing::eventually;
using weir::testing::jobIdOf;
using weir::testing::vertexNamed;
using JobState = weir::thrift::JobState;
using ExecutionState = weir::thrift::ExecutionState;

using weir::testing::tokenize;

namespace {

const std::string kWordCount = WEIR_TEST_PLUGIN_DIR "/wordcount.so";
const std::string kClusterJob = WEIR_TEST_BAD_PLUGIN_DIR "/cluster_job.so";
const std::string kClusterJobV2 = WEIR_TEST_BAD_PLUGIN_DIR "/cluster_job_v2.so";
const std::string kIncompatible = WEIR_TEST_BAD_PLUGIN_DIR "/weir_test_abi_mismatch.so";

bool allSubtasks(Cluster& c, const std::string& job, ExecutionState::type state) {
  for (const auto& v : c.jobDetails(job).vertices) {
    for (const auto& t : v.subtasks) {
      if (t.state != state) return false;
    }
  }
  return true;
}

void startTwoTaskManagers(Cluster& c, std::vector<std::string> extra = {}) {
  c.startTaskManager(2, extra);
  c.startTaskManager(2, extra);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 2; }));
}

}  // namespace

TEST_CASE("cluster: word count at parallelism 4 on two TaskManagers, from a shipped plugin") {
  Cluster c;
  c.startJobManager();
  startTwoTaskManagers(c);

  std::string text;
  for (int i = 0; i < 400; ++i) {
    text += "line " + std::to_string(i % 11) + " the quick brown fox jumps over the lazy dog\n";
  }
  const std::string input = c.dir.file("input.txt");
  std::ofstream(input) << text;

  // The plugin exists only on the client side, and only until the submission is done.
  const std::string plugin = c.dir.file("my-wordcount.so");
  std::filesystem::copy_file(kWordCount, plugin);
  const CommandResult submitted =
      c.weir({"submit", plugin, "--parallelism", "4", "--arg", "input=" + input, "--detached"});
  REQUIRE_MESSAGE(submitted.exit_code == 0, submitted.err);
  std::filesystem::remove(plugin);
  const std::string job = jobIdOf(submitted);

  awaitState(c, job, JobState::FINISHED);

  std::map<std::string, int> totals;
  for (const auto& w : tokenize(text))
    ++totals[w];
  std::vector<std::string> expected;
  for (const auto& [w, n] : totals) {
    const int subtask = weir::subtaskForKeyGroup(weir::keyGroupOf(w, 128), 4, 128);
    for (int k = 1; k <= n; ++k)
      expected.push_back(std::to_string(subtask + 1) + "> (" + w + "," + std::to_string(k) + ")");
  }
  std::sort(expected.begin(), expected.end());
  auto got = c.taskManagerOutput();
  std::sort(got.begin(), got.end());
  CHECK(got == expected);

  // Every vertex ran its 4 subtasks on both TaskManagers; the keyed exchange crossed them.
  const auto details = c.jobDetails(job);
  CHECK(details.summary.state == JobState::FINISHED);
  CHECK(details.summary.parallelism == 4);
  std::int64_t words = 0;
  for (const auto& w : totals)
    words += w.second;
  const auto& count = vertexNamed(details, "count");
  std::set<std::string> hosts;
  std::int64_t counted = 0;
  for (const auto& t : count.subtasks) {
    CHECK(t.state == ExecutionState::FINISHED);
    hosts.insert(t.taskManagerId);
    counted += t.recordsIn;
  }
  CHECK(hosts == std::set<std::string>{"tm-1", "tm-2"});
  CHECK(counted == words);

  // Read commands, text and JSON.
  const CommandResult status = c.weir({"status", job, "--output", "json"});
  REQUIRE_MESSAGE(status.exit_code == 0, status.err);
  const auto json = nlohmann::json::parse(status.out);
  CHECK(json.at("state") == "FINISHED");
  CHECK(json.at("vertices").size() == details.vertices.size());
  CHECK(json.at("vertices")[0].at("subtasks").size() == 4);
  const CommandResult text_status = c.weir({"status", job});
  REQUIRE_MESSAGE(text_status.exit_code == 0, text_status.err);
  CHECK(text_status.out.find("RECORDS IN") != std::string::npos);
  CHECK(text_status.out.find("tm-2") != std::string::npos);
  const CommandResult list = c.weir({"list", "--output", "json"});
  REQUIRE_MESSAGE(list.exit_code == 0, list.err);
  const auto jobs = nlohmann::json::parse(list.out);
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].at("id") == job);
  CHECK(jobs[0].at("name") == "word count");
  CHECK(jobs[0].at("state") == "FINISHED");

  // Slots are free again.
  for (const auto& tm : c.taskManagerInfos())
    CHECK(tm.freeSlots == 2);
}

TEST_CASE("cluster: two versions of one plugin run side by side, and attached submit waits") {
  Cluster c;
  c.startJobManager();
  startTwoTaskManagers(c);

  const CommandResult v1 = c.weir({"submit", kClusterJob, "-p", "2", "--arg", "count=2000", "--arg",
                                   "mode=numbers", "--detached"});
  REQUIRE_MESSAGE(v1.exit_code == 0, v1.err);
  const CommandResult v2 = c.weir({"submit", kClusterJobV2, "-p", "2", "--arg", "count=3000",
                                   "--name", "second", "--detached"});
  REQUIRE_MESSAGE(v2.exit_code == 0, v2.err);
  awaitState(c, jobIdOf(v1), JobState::FINISHED);
  awaitState(c, jobIdOf(v2), JobState::FINISHED);
  CHECK(c.jobDetails(jobIdOf(v2)).summary.name == "second");
  CHECK(c.jobDetails(jobIdOf(v2)).summary.plugin.find("cluster_job 2.0.0") == 0);

  // The final running sum of each key, per version.
  auto finals = [&](const std::string& label) {
    std::map<std::int64_t, std::int64_t> sums;
    for (const auto& l : c.taskManagerOutput()) {
      const auto at = l.find(label + " (");
      if (at == std::string::npos) continue;
      const auto comma = l.find(',', at);
      const std::int64_t key = std::stoll(l.substr(at + label.size() + 2));
      sums[key] = std::max<std::int64_t>(sums[key], std::stoll(l.substr(comma + 1)));
    }
    return sums;
  };
  auto expected = [](std::int64_t n) {
    std::map<std::int64_t, std::int64_t> sums;
    for (std::int64_t v = 0; v < n; ++v)
      sums[v % 10] += v;
    return sums;
  };
  CHECK(finals("v1") == expected(2000));
  CHECK(finals("v2") == expected(3000));

  // Attached: the CLI returns when the job has finished.
  const CommandResult attached = c.weir({"submit", kClusterJob, "-p", "4", "--arg", "count=100"});
  REQUIRE_MESSAGE(attached.exit_code == 0, attached.err);
  CHECK(attached.out.find("finished") != std::string::npos);
}

TEST_CASE("cluster: CLI errors are one line with a non-zero exit") {
  Cluster c;
  c.common.push_back("-D");
  c.common.push_back("slot.request.timeout=500 ms");
  c.startJobManager();
  c.startTaskManager(2);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 1; }));

  SUBCASE("JobManager unreachable") {
    const int port = weir::testing::freePort();
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"list"}, {"status", "0123"}, {"cancel", "0123"}, {"submit", kClusterJob}}) {
      std::vector<std::string> args = cmd;
      args.insert(args.begin(), weir::testing::kBinDir + "/weir");
      args.push_back("--jobmanager");
      args.push_back("127.0.0.1:" + std::to_string(port));
      const CommandResult r = weir::testing::run(args, c.dir.path());
      CHECK(r.exit_code == 1);
      CHECK_MESSAGE(r.err.find("cannot reach the JobManager at 127.0.0.1:" +
                               std::to_string(port)) != std::string::npos,
                    r.err);
    }
  }
  SUBCASE("unknown job") {
    for (const std::string cmd : {"status", "cancel"}) {
      const CommandResult r = c.weir({cmd, "feedfacefeedfacefeedfacefeedface"});
      CHECK(r.exit_code == 1);
      CHECK_MESSAGE(r.err == "weir: no job with id feedfacefeedfacefeedfacefeedface\n", r.err);
    }
  }
  SUBCASE("plugin refused, with the loader's reason") {
    const CommandResult r = c.weir({"submit", kIncompatible});
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(r.err.find("ABI") != std::string::npos, r.err);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  SUBCASE("bad arguments") {
    CHECK(c.weir({"submit"}).exit_code == 2);
    CHECK(c.weir({"submit", kClusterJob, "-p", "0"}).exit_code == 2);
    CHECK(c.weir({"submit", kClusterJob, "--arg", "novalue"}).exit_code == 2);
    CHECK(c.weir({"list", "--output", "yaml"}).exit_code == 2);
    const CommandResult r = weir::testing::run(
        {weir::testing::kBinDir + "/weir", "list", "--jobmanager", "nowhere"}, c.dir.path());
    CHECK(r.exit_code == 2);
  }
  SUBCASE("not enough slots: the job waits slot.request.timeout, then fails with the shortfall") {
    const CommandResult r = c.weir({"submit", kClusterJob, "-p", "3"});
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(r.err.find("not enough task slots: the job needs 3, 2 of 2 are free on 1 "
                             "TaskManager(s)") != std::string::npos,
                  r.err);
    for (const auto& tm : c.taskManagerInfos())
      CHECK(tm.freeSlots == 2);
  }
  SUBCASE("corrupt upload, and a submission naming a plugin never uploaded") {
    const std::string data(100000, 'x');
    std::string upload;
    REQUIRE(c.admin([&](weir::thrift::AdminServiceClient& a) {
               a.beginUpload(upload, static_cast<std::int64_t>(data.size()));
             }).isOk());
    std::string corrupted = data;
    corrupted[5000] = 'y';  // flipped on the way
    REQUIRE(c.admin([&](weir::thrift::AdminServiceClient& a) {
               a.uploadChunk(upload, 0, corrupted);
             }).isOk());
    std::string stored;
    const weir::Status s = c.admin([&](weir::thrift::AdminServiceClient& a) {
      a.finishUpload(stored, upload, weir::engine::sha256Hex(data));
    });
    CHECK(s.code() == weir::Status::Code::kCorruption);
    CHECK_MESSAGE(s.message().find(weir::engine::sha256Hex(data)) != std::string::npos,
                  s.message());

    weir::thrift::JobSubmission submission;
    submission.pluginHash = weir::engine::sha256Hex(data);
    submission.graph.name = "x";
    std::string job;
    const weir::Status refused =
        c.admin([&](weir::thrift::AdminServiceClient& a) { a.submitJob(job, submission); });
    CHECK_FALSE(refused.isOk());
  }
  SUBCASE("cancel: a running job, then again") {
    const CommandResult r =
        c.weir({"submit", kClusterJob, "-p", "2", "--arg", "mode=forever", "--detached"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const std::string job = jobIdOf(r);
    awaitState(c, job, JobState::RUNNING);
    REQUIRE(eventually([&] { return allSubtasks(c, job, ExecutionState::RUNNING); }));
    const CommandResult cancel = c.weir({"cancel", job});
    CHECK_MESSAGE(cancel.exit_code == 0, cancel.err);
    awaitState(c, job, JobState::CANCELED);
    CHECK(allSubtasks(c, job, ExecutionState::CANCELED));
    const CommandResult again = c.weir({"cancel", job});
    CHECK(again.exit_code == 1);
    CHECK_MESSAGE(again.err.find("already CANCELED") != std::string::npos, again.err);
    REQUIRE(eventually([&] { return c.taskManagerInfos()[0].freeSlots == 2; }));
  }
}

TEST_CASE("cluster: a failing operator fails its job, not the TaskManager") {
  Cluster c;
  c.startJobManager();
  startTwoTaskManagers(c);
  const CommandResult failing =
      c.weir({"submit", kClusterJob, "-p", "2", "--arg", "mode=fail", "--arg", "fail_at=500"});
  CHECK(failing.exit_code == 1);
  CHECK_MESSAGE(failing.err.find("record 500 is poison") != std::string::npos, failing.err);
  // The TaskManagers live on and run the next job.
  CHECK(c.aliveTaskManagers() == 2);
  const CommandResult next = c.weir({"submit", kClusterJob, "-p", "4", "--arg", "count=100"});
  CHECK_MESSAGE(next.exit_code == 0, next.err);
}

TEST_CASE("cluster: a TaskManager killed with SIGKILL fails its job with the reason") {
  Cluster c;
  c.startJobManager();
  startTwoTaskManagers(c);
  const CommandResult r =
      c.weir({"submit", kClusterJob, "-p", "4", "--arg", "mode=forever", "--detached"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string job = jobIdOf(r);
  REQUIRE(eventually([&] { return allSubtasks(c, job, ExecutionState::RUNNING); }));

  const auto killed = std::chrono::steady_clock::now();
  c.taskmanagers[1]->signal(SIGKILL);
  REQUIRE(c.taskmanagers[1]->wait(std::chrono::seconds(10)).has_value());
  REQUIRE(
      eventually([&] { return c.jobState(job) == JobState::FAILED; }, std::chrono::seconds(10)));
  // Within the heartbeat timeout (1.5 s in these tests) and a little scheduling slack.
  CHECK(std::chrono::steady_clock::now() - killed < std::chrono::milliseconds(3000));
  const auto details = c.jobDetails(job);
  CHECK_MESSAGE(details.summary.failure.find("TaskManager tm-2") == 0, details.summary.failure);
  CHECK(details.summary.failure.find("lost") != std::string::npos);
  // The subtasks on the surviving TaskManager ended (cancelled, or failed on their own when their
  // channels to the dead TaskManager broke), and its slots are free.
  REQUIRE(eventually([&] {
    for (const auto& v : c.jobDetails(job).vertices) {
      for (const auto& t : v.subtasks) {
        if (t.taskManagerId == "tm-1" && t.state != ExecutionState::CANCELED &&
            t.state != ExecutionState::FAILED) {
          return false;
        }
      }
    }
    return true;
  }));
  CHECK(c.taskManagerInfos()[0].freeSlots == 2);
}

TEST_CASE("cluster: a slow sink back-pressures its producers across TaskManagers") {
  Cluster c;
  c.startJobManager();
  startTwoTaskManagers(c, {"-D", "taskmanager.memory.segment-size=4kb"});
  const CommandResult r = c.weir({"submit", kClusterJob, "-p", "2", "--arg", "mode=slow", "--arg",
                                  "sleep_us=2000", "--detached"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string job = jobIdOf(r);

  // The source reports back-pressured time.
  REQUIRE(eventually(
      [&] {
        const auto d = c.jobDetails(job);
        for (const auto& t : vertexNamed(d, "source").subtasks) {
          if (t.backpressuredMs < 500) return false;
        }
        return true;
      },
      std::chrono::seconds(30)));

  // Records in flight stay bounded by the buffers (a few per channel) while the sink progresses.
  auto inFlight = [&](std::int64_t& sunk) {
    const auto d = c.jobDetails(job);
    std::int64_t produced = 0;
    sunk = 0;
    for (const auto& t : vertexNamed(d, "source").subtasks)
      produced += t.recordsOut;
    for (const auto& t : vertexNamed(d, "slow-sink").subtasks)
      sunk += t.recordsIn;
    return produced - sunk;
  };
  std::int64_t sunk_before = 0;
  std::int64_t sunk_after = 0;
  const std::int64_t before = inFlight(sunk_before);
  REQUIRE(eventually([&] {
    inFlight(sunk_after);
    return sunk_after > sunk_before + 500;
  }));
  const std::int64_t after = inFlight(sunk_after);
  // 4 KiB buffers hold about 37 records of 100 bytes. Each source has at most 2 x 4 + 8 = 16
  // output buffers (4 per channel, 8 floating) and each of the 4 channels 4 receive buffers:
  // (2 x 16 + 16) x 37 = 1776 records, plus the batches the tasks hold.
  CHECK(before < 2500);
  CHECK(after < 2500);
  const CommandResult cancel = c.weir({"cancel", job});
  CHECK(cancel.exit_code == 0);
  awaitState(c, job, JobState::CANCELED);
}

TEST_CASE("cluster: TaskManagers cancel their tasks when the JobManager dies, then re-register") {
  Cluster c;
  c.startJobManager();
  c.startTaskManager(2);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 1; }));
  const CommandResult r =
      c.weir({"submit", kClusterJob, "-p", "2", "--arg", "mode=forever", "--detached"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string job = jobIdOf(r);
  REQUIRE(eventually([&] { return allSubtasks(c, job, ExecutionState::RUNNING); }));
  const int rpc_port = c.rpcPort();
  const int admin_port = c.adminPort();

  c.jobmanager->signal(SIGKILL);
  REQUIRE(c.jobmanager->wait(std::chrono::seconds(10)).has_value());
  auto& tm = *c.taskmanagers[0];
  REQUIRE(eventually(
      [&] {
        return tm.err().find("job " + job + ": all subtasks here have ended") != std::string::npos;
      },
      std::chrono::seconds(10)));
  CHECK(tm.err().find("JobManager") != std::string::npos);

  // A JobManager on the same address gets the TaskManager back, with all its slots free.
  c.startJobManager(rpc_port, admin_port);
  REQUIRE(eventually([&] {
    const auto tms = c.taskManagerInfos();
    return tms.size() == 1 && tms[0].freeSlots == 2 &&
           tms[0].state == weir::thrift::TaskManagerState::ALIVE;
  }));
  const CommandResult next = c.weir({"submit", kClusterJob, "-p", "2", "--arg", "count=100"});
  CHECK_MESSAGE(next.exit_code == 0, next.err);
}

TEST_CASE("cluster: a plugin over 50 MB ships in chunks, and no process holds it whole in memory") {
  Cluster c;
  c.startJobManager();
  c.startTaskManager(2);
  REQUIRE(eventually([&] { return c.aliveTaskManagers() == 1; }));
  // A shared library still loads with bytes appended after its ELF image.
  const std::string plugin = c.dir.file("big.so");
  std::filesystem::copy_file(kClusterJob, plugin);
  {
    std::ofstream out(plugin, std::ios::binary | std::ios::app);
    std::string block(1 << 20, '\0');
    for (int i = 0; i < 60; ++i) {
      for (std::size_t k = 0; k < block.size(); k += 64)
        block[k] = static_cast<char>(i * 31 + k);
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
  const auto size = std::filesystem::file_size(plugin);
  REQUIRE(size > 60u << 20);

  // Peak resident memory of each process grows by much less than the plugin's size.
  auto peakRss = [](weir::testing::Process& p) {
    std::ifstream in("/proc/" + std::to_string(p.pid()) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0ull;
  };
  const auto jm_before = peakRss(*c.jobmanager);
  const auto tm_before = peakRss(*c.taskmanagers[0]);
  const CommandResult r = c.weir({"submit", plugin, "-p", "2", "--arg", "count=100"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto jm_growth = peakRss(*c.jobmanager) - jm_before;
  const auto tm_growth = peakRss(*c.taskmanagers[0]) - tm_before;
  CAPTURE(jm_growth);
  CAPTURE(tm_growth);
  CHECK(jm_growth < size / 5);
  CHECK(tm_growth < size / 5);
}

TEST_CASE("cluster: the buffer timeout sends partly filled buffers of a slow, busy source") {
  // Records sent and received, summed over subtasks.
  auto flow = [](Cluster& c, const std::string& job) {
    const auto d = c.jobDetails(job);
    std::pair<std::int64_t, std::int64_t> f{0, 0};
    for (const auto& t : vertexNamed(d, "source").subtasks)
      f.first += t.recordsOut;
    for (const auto& t : vertexNamed(d, "sink").subtasks)
      f.second += t.recordsIn;
    return f;
  };
  SUBCASE("default timeout (10 ms): records arrive while the buffers are far from full") {
    Cluster c;
    c.startJobManager();
    startTwoTaskManagers(c);
    const CommandResult r =
        c.weir({"submit", kClusterJob, "-p", "2", "--arg", "mode=steady", "--detached"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const std::string job = jobIdOf(r);
    REQUIRE(eventually([&] { return flow(c, job).second >= 200; }));
    CHECK(c.weir({"cancel", job}).exit_code == 0);
  }
  SUBCASE("a one-hour timeout: nothing is sent until a buffer fills") {
    Cluster c;
    c.startJobManager();
    startTwoTaskManagers(c, {"-D", "execution.buffer-timeout=1 h"});
    const CommandResult r =
        c.weir({"submit", kClusterJob, "-p", "2", "--arg", "mode=steady", "--detached"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const std::string job = jobIdOf(r);
    // 200 records of 12 bytes fill under a tenth of a 32 KiB buffer.
    REQUIRE(eventually([&] { return flow(c, job).first >= 200; }));
    CHECK(flow(c, job).second == 0);
    CHECK(c.weir({"cancel", job}).exit_code == 0);
  }
}
