// weir_cluster_bench: a hash shuffle between two TaskManager processes over loopback, next to a raw
// TCP pump moving the same bytes between two processes, in the same run.
//
//   weir_cluster_bench [--records N] [--runs R] [-D key=value]...   (-D: TaskManager options)
//
// shuffle  A real JobManager and two TaskManagers (one slot each) as processes on 127.0.0.1; the
//          job (bench/shuffle_plugin.cc) runs at parallelism 2, each source subtask emitting N
//          records of 100 bytes keyed so that all of them go to the sink subtask on the other
//          TaskManager: 2N records cross the data plane, N in each direction at once. Timed from
//          the moment every subtask is RUNNING to the moment the job is FINISHED (polled every
//          millisecond through the admin API), so plugin shipping and deployment are excluded.
// pump     Two processes connected by one loopback TCP connection, each writing N * 100 bytes to
//          the other in 32 KiB writes while reading what the other writes: the same volume in the
//          same directions, with nothing but the kernel in the way.
//
// Reports records/s, payload bytes/s and the ratio shuffle/pump. Checks that the receiving
// vertex saw exactly 2N records and fails otherwise.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "AdminService.h"
#include "common/rpc.h"
#include "process_util.h"

namespace {

using Clock = std::chrono::steady_clock;
using weir::testing::Process;
using weir::testing::TempDir;

constexpr std::size_t kRecordBytes = 100;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_cluster_bench: FAILED: %s\n", msg.c_str());
  std::exit(1);
}

nlohmann::json waitReady(Process& p, const std::string& path) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    if (std::filesystem::exists(path)) return nlohmann::json::parse(weir::testing::readFile(path));
    if (p.wait(std::chrono::milliseconds(5))) die("a server exited at start-up: " + p.err());
  }
  die("a server did not start: " + p.err());
}

double shuffleSeconds(std::uint64_t records, const std::vector<std::string>& tm_options) {
  TempDir dir;
  const std::string bin = WEIR_BENCH_BIN_DIR;
  Process jm({bin + "/weir-jobmanager", "--ready-file", dir.file("jm.json"), "-D",
              "jobmanager.rpc.port=0", "-D", "jobmanager.admin.port=0", "--log-level", "warn"},
             dir.path());
  const auto ready = waitReady(jm, dir.file("jm.json"));
  const std::string rpc_port = ready.at("rpc_port").get<std::string>();
  const int admin_port = std::stoi(ready.at("admin_port").get<std::string>());
  std::vector<std::unique_ptr<Process>> tms;
  for (int i = 0; i < 2; ++i) {
    const std::string file = dir.file("tm" + std::to_string(i) + ".json");
    std::vector<std::string> args{bin + "/weir-taskmanager", "--ready-file", file, "-D",
                                  "jobmanager.rpc.port=" + rpc_port, "-D",
                                  "taskmanager.numberOfTaskSlots=1", "--log-level", "warn"};
    for (const auto& o : tm_options) {
      args.push_back("-D");
      args.push_back(o);
    }
    tms.push_back(std::make_unique<Process>(args, dir.path()));
    waitReady(*tms.back(), file);
  }
  weir::engine::RpcClient<weir::thrift::AdminServiceClient> admin("127.0.0.1", admin_port,
                                                                  std::chrono::seconds(10));
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    std::vector<weir::thrift::TaskManagerInfo> list;
    if (admin.call([&](auto& c) { c.listTaskManagers(list); }).isOk() && list.size() == 2) break;
    if (Clock::now() > deadline) die("TaskManagers did not register");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  const auto submit = weir::testing::run(
      {bin + "/weir", "submit", WEIR_BENCH_PLUGIN, "-p", "2", "--arg",
       "records=" + std::to_string(2 * records), "--detached", "--jobmanager",
       "127.0.0.1:" + std::to_string(admin_port), "--log-level", "warn"},
      dir.path());
  if (submit.exit_code != 0) die("weir submit: " + submit.err);
  const std::string job = submit.out.substr(submit.out.find("JobID ") + 6, 32);

  Clock::time_point running{};
  weir::thrift::JobDetails details;
  for (;;) {
    const weir::Status s = admin.call([&](auto& c) { c.jobDetails(details, job); });
    if (!s.isOk()) die(s.message());
    const auto now = Clock::now();
    if (details.summary.state == weir::thrift::JobState::FINISHED) {
      if (running == Clock::time_point{}) die("the job finished before it was seen running");
      const double seconds = std::chrono::duration<double>(now - running).count();
      std::int64_t received = 0;
      for (const auto& v : details.vertices) {
        if (v.uid != "receive") continue;
        for (const auto& t : v.subtasks)
          received += t.recordsIn;
      }
      if (received != static_cast<std::int64_t>(2 * records)) {
        die("the receiving vertex saw " + std::to_string(received) + " records, expected " +
            std::to_string(2 * records));
      }
      return seconds;
    }
    if (details.summary.state != weir::thrift::JobState::RUNNING &&
        details.summary.state != weir::thrift::JobState::CREATED) {
      die("job ended " + weir::thrift::to_string(details.summary.state) + ": " +
          details.summary.failure);
    }
    if (running == Clock::time_point{}) {
      bool all = true;
      for (const auto& v : details.vertices) {
        for (const auto& t : v.subtasks)
          all = all && t.state == weir::thrift::ExecutionState::RUNNING;
      }
      if (all) running = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Writes `bytes` to fd while reading `bytes` from it; returns when both are done.
void duplexPump(int fd, std::uint64_t bytes) {
  std::thread writer([fd, bytes] {
    std::vector<char> block(32 * 1024, 'x');
    std::uint64_t left = bytes;
    while (left > 0) {
      const ssize_t n = ::write(fd, block.data(), std::min<std::uint64_t>(left, block.size()));
      if (n <= 0) die("pump write failed");
      left -= static_cast<std::uint64_t>(n);
    }
  });
  std::vector<char> block(32 * 1024);
  std::uint64_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::read(fd, block.data(), block.size());
    if (n <= 0) die("pump read failed");
    got += static_cast<std::uint64_t>(n);
  }
  writer.join();
}

double pumpSeconds(std::uint64_t bytes) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 1) != 0) {
    die("pump: cannot listen");
  }
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const auto start = Clock::now();
  const pid_t child = fork();
  if (child == 0) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(2);
    duplexPump(fd, bytes);
    _exit(0);
  }
  const int fd = accept(listener, nullptr, nullptr);
  duplexPump(fd, bytes);
  int status = 0;
  waitpid(child, &status, 0);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  close(listener);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("pump: the other process failed");
  return seconds;
}

std::string human(double v) {
  char buf[32];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f G", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f M", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f ", v);
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t records = 10'000'000;
  int runs = 3;
  std::vector<std::string> tm_options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-D" && i + 1 < argc) {
      tm_options.push_back(argv[++i]);
    } else if ((a == "--records" || a == "--runs") && i + 1 < argc) {
      const auto v = static_cast<std::uint64_t>(std::stod(argv[++i]));
      if (v == 0) die(a + " must be positive");
      if (a == "--records") {
        records = v;
      } else {
        runs = static_cast<int>(v);
      }
    } else if (a == "--help") {
      std::printf(
          "usage: weir_cluster_bench [--records N per direction] [--runs R] [-D key=value "
          "(TaskManager option)]...\n");
      return 0;
    } else {
      die("unknown argument '" + a + "' (see --help)");
    }
  }
  weir::engine::routeThriftOutputToLog();
  const std::uint64_t bytes = records * kRecordBytes;  // per direction
  double shuffle = 1e300;
  double pump = 1e300;
  for (int r = 0; r < runs; ++r) {
    shuffle = std::min(shuffle, shuffleSeconds(records, tm_options));
    pump = std::min(pump, pumpSeconds(bytes));
  }
  const double total_records = 2.0 * static_cast<double>(records);
  const double total_bytes = 2.0 * static_cast<double>(bytes);
  std::printf("%-26s %12s %10s %16s %14s %7s\n", "benchmark", "volume", "best", "records/s",
              "bytes/s", "ratio");
  std::printf("%-26s %11sB %9.3fs %15s/s %13sB/s %7.2f\n", "shuffle (2 TaskManagers)",
              human(total_bytes).c_str(), shuffle, human(total_records / shuffle).c_str(),
              human(total_bytes / shuffle).c_str(), pump / shuffle);
  std::printf("%-26s %11sB %9.3fs %15s/s %13sB/s\n", "raw TCP pump (2 processes)",
              human(total_bytes).c_str(), pump, human(total_records / pump).c_str(),
              human(total_bytes / pump).c_str());
  return 0;
}
