// A real JobManager and TaskManagers as processes: registration, heartbeats both ways, loss
// detection, re-registration, start-up configuration errors, and `weir taskmanagers`.
#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>
#include <sstream>

#include "cluster_util.h"
#include "engine/job_test_util.h"

using weir::testing::Cluster;
using weir::testing::Process;
using Clock = std::chrono::steady_clock;

TEST_CASE("cluster: TaskManagers register and `weir taskmanagers` lists them") {
  Cluster c;
  c.startJobManager();
  c.startTaskManager(2);
  c.startTaskManager(2);
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 2; }));

  auto json = weir::testing::run(
      {weir::testing::kBinDir + "/weir", "taskmanagers", "--jobmanager", c.adminAddress(),
       "--output", "json"},
      c.dir.path());
  REQUIRE_MESSAGE(json.exit_code == 0, json.err);
  const auto list = nlohmann::json::parse(json.out);
  REQUIRE(list.size() == 2);
  for (const auto& tm : list) {
    CHECK(tm.at("slots") == 2);
    CHECK(tm.at("freeSlots") == 2);
    CHECK(tm.at("state") == "ALIVE");
    CHECK(tm.at("host") == "127.0.0.1");
  }
  CHECK(list[0].at("id") == "tm-1");
  CHECK(list[1].at("id") == "tm-2");

  // The configuration file names the JobManager as well as --jobmanager does.
  const std::string config = c.dir.file("client.yaml");
  std::ofstream(config) << "jobmanager:\n  rpc:\n    address: 127.0.0.1\n  admin:\n    port: "
                        << c.adminPort() << "\n";
  auto text = weir::testing::run(
      {weir::testing::kBinDir + "/weir", "taskmanagers", "--config", config}, c.dir.path());
  REQUIRE_MESSAGE(text.exit_code == 0, text.err);
  std::istringstream lines(text.out);
  std::string header, first, second;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  CHECK(header.find("SLOTS") != std::string::npos);
  CHECK(first.find("tm-1") == 0);
  CHECK(first.find("ALIVE") != std::string::npos);
  CHECK(second.find("tm-2") == 0);

  CHECK(Cluster::stop(*c.taskmanagers[0]) == 0);
  CHECK(Cluster::stop(*c.jobmanager) == 0);
}

TEST_CASE("cluster: a TaskManager killed with SIGKILL is marked lost at once") {
  Cluster c;
  c.startJobManager();
  Process& victim = c.startTaskManager(2);
  c.startTaskManager(2);
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 2; }));
  const auto killed_at = Clock::now();
  victim.signal(SIGKILL);
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 1; }));
  // The broken connection is noticed at the next heartbeat, well before the timeout.
  CHECK(Clock::now() - killed_at < std::chrono::milliseconds(1500));
  bool found = false;
  for (const auto& tm : c.taskManagerInfos()) {
    if (tm.state != weir::thrift::TaskManagerState::LOST) continue;
    found = true;
    CHECK(tm.lostReason.find("connection") != std::string::npos);
  }
  CHECK(found);
}

TEST_CASE("cluster: a silent TaskManager is marked lost after the heartbeat timeout") {
  Cluster c;
  c.startJobManager();
  Process& frozen = c.startTaskManager(1);
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 1; }));
  const auto stopped_at = Clock::now();
  frozen.signal(SIGSTOP);  // alive but silent: connections stay open, nothing answers
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 0; }));
  const auto took = Clock::now() - stopped_at;
  CHECK(took >= std::chrono::milliseconds(1400));  // the timeout (1500 ms) decided, not a refusal
  CHECK(took < std::chrono::seconds(10));
  const auto infos = c.taskManagerInfos();
  REQUIRE(infos.size() == 1);
  const std::string& reason = infos[0].lostReason;
  CHECK((reason.find("no heartbeat for") != std::string::npos ||
         reason.find("timed out") != std::string::npos));

  // Woken up, it learns that the JobManager forgot it and registers again under a new id.
  frozen.signal(SIGCONT);
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 1; }));
  bool new_id = false;
  for (const auto& tm : c.taskManagerInfos()) {
    if (tm.state == weir::thrift::TaskManagerState::ALIVE) new_id = tm.id == "tm-2";
  }
  CHECK(new_id);
}

TEST_CASE("cluster: TaskManagers keep retrying and register with a restarted JobManager") {
  Cluster c;
  const int rpc_port = weir::testing::freePort();
  c.startJobManager(rpc_port, 0);
  Process& tm = c.startTaskManager(2);
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 1; }));

  c.jobmanager->signal(SIGKILL);
  REQUIRE(c.jobmanager->wait(std::chrono::seconds(10)).has_value());
  REQUIRE(weir::testing::eventually(
      [&] { return tm.err().find("JobManager") != std::string::npos &&
                   tm.err().find("lost") != std::string::npos; }));
  REQUIRE(weir::testing::eventually(
      [&] { return tm.err().find("cannot register with the JobManager") != std::string::npos; }));

  c.startJobManager(rpc_port, 0);  // a new JobManager (new id) at the same address
  REQUIRE(weir::testing::eventually([&] { return c.aliveTaskManagers() == 1; }));
  CHECK_FALSE(tm.wait(std::chrono::milliseconds(1)).has_value());  // it never exited
}

TEST_CASE("cluster: configuration errors stop a process at start-up with a clear message") {
  weir::testing::TempDir dir;
  struct Case {
    std::string binary;
    std::vector<std::string> args;
    std::string message;
  };
  const std::string bad_yaml = dir.file("bad.yaml");
  std::ofstream(bad_yaml) << "taskmanager:\n  numberOfTaskSlots: many\n";
  const std::vector<Case> cases = {
      {"weir-jobmanager", {"-D", "jobmanager.rpc.prot=1"},
       "weir-jobmanager: unknown configuration key 'jobmanager.rpc.prot' on the command line"},
      {"weir-taskmanager", {"-D", "heartbeat.timeout=soon"},
       "weir-taskmanager: configuration key 'heartbeat.timeout' on the command line: expected a "
       "duration"},
      {"weir-taskmanager", {"--config", bad_yaml},
       "configuration key 'taskmanager.numberOfTaskSlots' in '" + bad_yaml +
           "': expected an integer"},
      {"weir-jobmanager", {"--config", dir.file("nope.yaml")}, "does not exist"},
      {"weir-jobmanager", {"--bogus"}, "--bogus"},
  };
  for (const Case& k : cases) {
    std::vector<std::string> argv = {weir::testing::kBinDir + "/" + k.binary};
    argv.insert(argv.end(), k.args.begin(), k.args.end());
    const auto r = weir::testing::run(argv, dir.path(), std::chrono::seconds(30));
    CAPTURE(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(k.message) != std::string::npos);
  }
  // A port that is taken is a start-up failure too.
  Cluster c;
  c.startJobManager();
  const auto r = weir::testing::run(
      {weir::testing::kBinDir + "/weir-jobmanager", "-D",
       "jobmanager.rpc.port=" + std::to_string(c.rpcPort())},
      dir.path(), std::chrono::seconds(30));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("cannot listen on 127.0.0.1:" + std::to_string(c.rpcPort())) !=
        std::string::npos);
}

TEST_CASE("weir taskmanagers: unreachable JobManager and bad arguments") {
  weir::testing::TempDir dir;
  const int port = weir::testing::freePort();
  const std::string weir = weir::testing::kBinDir + "/weir";
  auto r = weir::testing::run({weir, "taskmanagers", "-m", "127.0.0.1:" + std::to_string(port)},
                              dir.path());
  CHECK(r.exit_code == 1);
  CHECK(r.err == "weir: cannot reach the JobManager at 127.0.0.1:" + std::to_string(port) +
                     ": Connection refused\n");
  r = weir::testing::run({weir, "taskmanagers", "-m", "localhost"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--jobmanager: expected host:port") != std::string::npos);
  r = weir::testing::run({weir, "taskmanagers", "-o", "yaml"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--output") != std::string::npos);
}
