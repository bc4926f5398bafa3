// Starting a real JobManager and TaskManagers as processes on 127.0.0.1 for integration tests.
// Every process started here is stopped when the Cluster object goes away (and dies with the test
// process if that is killed).
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "AdminService.h"
#include "common/rpc.h"
#include "engine/job_test_util.h"
#include "process_util.h"

namespace weir::testing {

inline const std::string kBinDir = WEIR_TEST_BIN_DIR;

// A port nothing listens on right now (the kernel's choice for an ephemeral bind).
inline int freePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Waits for a process's ready file and returns its JSON.
inline nlohmann::json waitReady(Process& p, const std::string& path,
                                std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(path)) return nlohmann::json::parse(readFile(path));
    if (auto code = p.wait(std::chrono::milliseconds(5))) {
      FAIL("process exited with " << *code << " before it was ready: " << p.err());
    }
  }
  FAIL("process not ready after " << timeout.count() << " ms: " << p.err());
  return {};
}

class Cluster {
 public:
  // Fast heartbeats so that loss is detected quickly in tests.
  std::vector<std::string> common = {"-D", "heartbeat.interval=100 ms",
                                     "-D", "heartbeat.timeout=1500 ms",
                                     "-D", "taskmanager.registration.retry-interval=100 ms"};

  // Starts a JobManager; ports 0 (any) unless given.
  void startJobManager(int rpc_port = 0, int admin_port = 0) {
    const std::string ready = dir.file("jm-" + std::to_string(jm_starts_++) + ".json");
    std::vector<std::string> args = {kBinDir + "/weir-jobmanager",
                                     "--ready-file",
                                     ready,
                                     "-D",
                                     "jobmanager.rpc.port=" + std::to_string(rpc_port),
                                     "-D",
                                     "jobmanager.admin.port=" + std::to_string(admin_port)};
    args.insert(args.end(), common.begin(), common.end());
    jobmanager = std::make_unique<Process>(args, dir.path());
    const auto j = waitReady(*jobmanager, ready);
    rpc_port_ = std::stoi(j.at("rpc_port").get<std::string>());
    admin_port_ = std::stoi(j.at("admin_port").get<std::string>());
    admin_ = std::make_unique<engine::RpcClient<thrift::AdminServiceClient>>(
        "127.0.0.1", admin_port_, std::chrono::seconds(5));
  }

  Process& startTaskManager(int slots, std::vector<std::string> extra = {}) {
    const std::string ready = dir.file("tm-" + std::to_string(taskmanagers.size()) + ".json");
    std::vector<std::string> args = {kBinDir + "/weir-taskmanager",
                                     "--ready-file",
                                     ready,
                                     "-D",
                                     "jobmanager.rpc.port=" + std::to_string(rpc_port_),
                                     "-D",
                                     "taskmanager.numberOfTaskSlots=" + std::to_string(slots)};
    args.insert(args.end(), common.begin(), common.end());
    args.insert(args.end(), extra.begin(), extra.end());
    taskmanagers.push_back(std::make_unique<Process>(args, dir.path()));
    waitReady(*taskmanagers.back(), ready);
    return *taskmanagers.back();
  }

  std::vector<thrift::TaskManagerInfo> taskManagerInfos() {
    std::vector<thrift::TaskManagerInfo> out;
    Status s = admin_->call([&](thrift::AdminServiceClient& c) { c.listTaskManagers(out); });
    REQUIRE_MESSAGE(s.isOk(), s.message());
    return out;
  }

  thrift::JobDetails jobDetails(const std::string& job_id) {
    thrift::JobDetails out;
    Status s = admin_->call([&](thrift::AdminServiceClient& c) { c.jobDetails(out, job_id); });
    REQUIRE_MESSAGE(s.isOk(), s.message());
    return out;
  }

  thrift::JobState::type jobState(const std::string& job_id) {
    return jobDetails(job_id).summary.state;
  }

  // Calls the admin service directly (for requests the CLI never makes, like corrupt uploads).
  Status admin(const std::function<void(thrift::AdminServiceClient&)>& fn) {
    return admin_->call(fn);
  }

  // `weir <args> --jobmanager <this cluster>`.
  CommandResult weir(std::vector<std::string> args) {
    args.insert(args.begin(), kBinDir + "/weir");
    args.push_back("--jobmanager");
    args.push_back(adminAddress());
    return run(args, dir.path());
  }

  // Everything the TaskManagers printed on stdout (the print sinks' output), line by line.
  std::vector<std::string> taskManagerOutput() const {
    std::vector<std::string> lines;
    for (const auto& tm : taskmanagers) {
      std::istringstream in(tm->out());
      for (std::string l; std::getline(in, l);)
        lines.push_back(l);
    }
    return lines;
  }

  int aliveTaskManagers() {
    int n = 0;
    for (const auto& tm : taskManagerInfos())
      n += tm.state == thrift::TaskManagerState::ALIVE;
    return n;
  }

  // Stops a process gracefully and returns its exit code.
  static int stop(Process& p) {
    p.signal(SIGTERM);
    auto code = p.wait(std::chrono::seconds(30));
    REQUIRE(code.has_value());
    return *code;
  }

  int rpcPort() const { return rpc_port_; }
  int adminPort() const { return admin_port_; }
  std::string adminAddress() const { return "127.0.0.1:" + std::to_string(admin_port_); }

  TempDir dir;
  std::unique_ptr<Process> jobmanager;
  std::vector<std::unique_ptr<Process>> taskmanagers;

 private:
  int jm_starts_ = 0;
  int rpc_port_ = 0;
  int admin_port_ = 0;
  std::unique_ptr<engine::RpcClient<thrift::AdminServiceClient>> admin_;
};

// The job id from `weir submit`'s first line.
inline std::string jobIdOf(const CommandResult& r) {
  const std::string marker = "JobID ";
  const auto at = r.out.find(marker);
  REQUIRE_MESSAGE(at != std::string::npos, r.out << r.err);
  return r.out.substr(at + marker.size(), 32);
}

// Waits until the job reaches `state`; fails at once with the job's failure if it ends otherwise.
inline void awaitState(Cluster& c, const std::string& job, thrift::JobState::type state,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  using JobState = thrift::JobState;
  thrift::JobSummary last;
  const bool reached = eventually(
      [&] {
        last = c.jobDetails(job).summary;
        if (last.state == state) return true;
        const bool ended = last.state == JobState::FINISHED || last.state == JobState::FAILED ||
                           last.state == JobState::CANCELED;
        if (ended) FAIL("job ended " << thrift::to_string(last.state) << ": " << last.failure);
        return false;
      },
      timeout);
  REQUIRE_MESSAGE(reached, "job still " << thrift::to_string(last.state));
}

// The vertex with this uid.
inline const thrift::VertexInfo& vertexNamed(const thrift::JobDetails& d, const std::string& uid) {
  for (const auto& v : d.vertices) {
    if (v.uid == uid) return v;
  }
  FAIL("no vertex " << uid);
  throw std::logic_error("unreachable");
}

}  // namespace weir::testing
