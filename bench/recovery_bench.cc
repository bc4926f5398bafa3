// weir_recovery_bench: how long a job takes to recover from kill -9 of the TaskManager running it.
//
//   weir_recovery_bench [--runs R] [--interval DURATION] [--delay DURATION] [--attempts N]
//                       [--backend heap|rocksdb] [--show-log] [-D key=value]...
//                       (-D: options of the JobManager and TaskManagers; --show-log: print the
//                       JobManager's log, warnings and up, after each run)
//
// Each run starts a real JobManager and two TaskManagers (two slots each) as processes on
// 127.0.0.1 and submits bench/recovery_plugin.cc at parallelism 1 (its source and its keyed
// counter + print sink share one slot, so the whole job runs on one TaskManager) with checkpoints
// every `interval` (default 500 ms) and restart-strategy fixed-delay (default: delay 200 ms, 50
// attempts; an attempt made before the JobManager has marked the killed TaskManager lost is
// deployed to it again and fails, so with delay 0 the attempts run out at once, see
// bench/RESULTS.md). Once the job has completed two checkpoints, the TaskManager running its
// subtasks gets SIGKILL; the other one has two free slots and takes over. Measured from the
// moment the killed process has been reaped:
//
//   running  the job is RUNNING again (restarts higher than before the kill, every subtask
//            RUNNING), seen through the admin API's jobDetails, polled every millisecond;
//   output   the job's print sink wrote again: the surviving TaskManager's stdout, empty until
//            then because the job never ran there, grows (polled every millisecond). The sink
//            flushes after every batch, so this is the first batch emitted after the restore.
//
// Also printed: the restarts the recovery took (failed attempts included), and for the fresh job
// before the kill the time from RUNNING to its first output (the same lag without a restore). The
// restarted job restores the counters and the source position of the last completed checkpoint,
// so its first line continues from there ("key,count" with the checkpointed count + 1).
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
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
using JobState = weir::thrift::JobState;
using ExecutionState = weir::thrift::ExecutionState;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_recovery_bench: FAILED: %s\n", msg.c_str());
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

double msBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Settings {
  int runs = 3;
  std::string interval = "500 ms";
  std::string backend = "heap";
  std::string delay = "200 ms";  // restart-strategy.fixed-delay.delay
  int attempts = 50;
  bool show_log = false;             // print the JobManager's warnings of each run
  std::vector<std::string> options;  // -D key=value for every server
};

struct Measurement {
  double running_ms = 0;        // kill -> job RUNNING again
  double output_ms = 0;         // kill -> first output of the restored job
  std::int64_t checkpoint = 0;  // the checkpoint completed before the kill
  std::string first_line;       // the restored job's first output line
  double fresh_output_ms = 0;   // fresh job: RUNNING -> first output (may be negative)
  int restarts = 0;             // restarts it took (failed attempts + the one that ran)
};

using Admin = weir::engine::RpcClient<weir::thrift::AdminServiceClient>;

weir::thrift::JobDetails details(Admin& admin, const std::string& job) {
  weir::thrift::JobDetails d;
  const weir::Status s = admin.call([&](auto& c) { c.jobDetails(d, job); });
  if (!s.isOk()) die("jobDetails: " + s.message());
  return d;
}

bool allRunning(const weir::thrift::JobDetails& d) {
  if (d.summary.state != JobState::RUNNING) return false;
  for (const auto& v : d.vertices) {
    for (const auto& t : v.subtasks) {
      if (t.state != ExecutionState::RUNNING) return false;
    }
  }
  return true;
}

Measurement measureOnce(const Settings& settings) {
  TempDir dir;
  const std::string bin = WEIR_BENCH_BIN_DIR;
  auto with_options = [&](std::vector<std::string> args) {
    for (const auto& o : settings.options) {
      args.push_back("-D");
      args.push_back(o);
    }
    return args;
  };
  Process jm(with_options({bin + "/weir-jobmanager", "--ready-file", dir.file("jm.json"), "-D",
                           "jobmanager.rpc.port=0", "-D", "jobmanager.admin.port=0", "--log-level",
                           "warn"}),
             dir.path());
  const auto ready = waitReady(jm, dir.file("jm.json"));
  const std::string rpc_port = ready.at("rpc_port").get<std::string>();
  const int admin_port = std::stoi(ready.at("admin_port").get<std::string>());
  Admin admin("127.0.0.1", admin_port, std::chrono::seconds(10));

  // TaskManager n registers as "tm-n" when they start one after the other.
  std::vector<std::unique_ptr<Process>> tms;
  for (int i = 0; i < 2; ++i) {
    const std::string file = dir.file("tm" + std::to_string(i) + ".json");
    tms.push_back(std::make_unique<Process>(
        with_options({bin + "/weir-taskmanager", "--ready-file", file, "-D",
                      "jobmanager.rpc.port=" + rpc_port, "-D", "taskmanager.numberOfTaskSlots=2",
                      "--log-level", "warn"}),
        dir.path()));
    waitReady(*tms.back(), file);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      std::vector<weir::thrift::TaskManagerInfo> list;
      if (admin.call([&](auto& c) { c.listTaskManagers(list); }).isOk() &&
          static_cast<int>(list.size()) == i + 1) {
        break;
      }
      if (Clock::now() > deadline) die("TaskManagers did not register");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  const auto submit = weir::testing::run(
      {bin + "/weir",
       "submit",
       WEIR_BENCH_RECOVERY_PLUGIN,
       "-p",
       "1",
       "--detached",
       "--arg",
       "state.backend=" + settings.backend,
       "--arg",
       "state.checkpoints.dir=" + dir.file("checkpoints"),
       "--arg",
       "execution.checkpointing.interval=" + settings.interval,
       "--arg",
       "restart-strategy.type=fixed-delay",
       "--arg",
       "restart-strategy.fixed-delay.attempts=" + std::to_string(settings.attempts),
       "--arg",
       "restart-strategy.fixed-delay.delay=" + settings.delay,
       "--jobmanager",
       "127.0.0.1:" + std::to_string(admin_port),
       "--log-level",
       "warn"},
      dir.path());
  if (submit.exit_code != 0) die("weir submit: " + submit.err);
  const std::string job = submit.out.substr(submit.out.find("JobID ") + 6, 32);

  // Two completed checkpoints, so the restore has state to load. Meanwhile: how long the fresh
  // job took from RUNNING (as the admin API shows it) to its first output, for comparison.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  weir::thrift::JobDetails d;
  Clock::time_point first_running{};
  Clock::time_point first_output{};
  for (;;) {
    d = details(admin, job);
    const auto now = Clock::now();
    if (d.summary.state == JobState::FAILED || d.summary.state == JobState::FINISHED ||
        d.summary.state == JobState::CANCELED) {
      die("job ended " + weir::thrift::to_string(d.summary.state) + ": " + d.summary.failure);
    }
    if (first_running == Clock::time_point{} && allRunning(d)) first_running = now;
    if (first_output == Clock::time_point{} && tms[0]->outSize() + tms[1]->outSize() > 0) {
      first_output = now;
    }
    if (allRunning(d) && d.summary.lastCheckpointId >= 2) break;
    if (Clock::now() > deadline) die("no two completed checkpoints within 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string host;
  for (const auto& v : d.vertices) {
    for (const auto& t : v.subtasks) {
      if (host.empty()) host = t.taskManagerId;
      if (t.taskManagerId != host) die("the job's subtasks run on two TaskManagers");
    }
  }
  const int victim = std::stoi(host.substr(3)) - 1;  // "tm-1" -> 0
  if (victim < 0 || victim > 1) die("unexpected TaskManager id " + host);
  Process& survivor = *tms[1 - victim];
  const std::uintmax_t output_before = survivor.outSize();
  if (tms[victim]->outSize() == 0) die("the job printed nothing before the kill");
  const int restarts = d.summary.restarts;

  Measurement m;
  m.fresh_output_ms = msBetween(first_running, first_output);
  m.checkpoint = d.summary.lastCheckpointId;
  tms[victim]->signal(SIGKILL);
  tms[victim]->wait(std::chrono::seconds(10));
  const auto killed = Clock::now();
  Clock::time_point running{};
  Clock::time_point output{};
  while (running == Clock::time_point{} || output == Clock::time_point{}) {
    const auto now = Clock::now();
    if (msBetween(killed, now) > 60000) die("the job did not recover within 60 s");
    if (output == Clock::time_point{} && survivor.outSize() > output_before) output = now;
    if (running == Clock::time_point{}) {
      d = details(admin, job);
      if (d.summary.state == JobState::FAILED) die("job failed: " + d.summary.failure);
      if (d.summary.restarts > restarts && allRunning(d)) {
        running = Clock::now();
        m.restarts = d.summary.restarts - restarts;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  m.running_ms = msBetween(killed, running);
  m.output_ms = msBetween(killed, output);
  const std::string out = survivor.out();
  m.first_line = out.substr(output_before, out.find('\n', output_before) - output_before);
  (void)admin.call([&](auto& c) { c.cancelJob(job); });
  if (settings.show_log) std::printf("JobManager log:\n%s", jm.err().c_str());
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-D" && i + 1 < argc) {
      settings.options.push_back(argv[++i]);
    } else if (a == "--runs" && i + 1 < argc) {
      settings.runs = std::stoi(argv[++i]);
      if (settings.runs <= 0) die("--runs must be positive");
    } else if (a == "--interval" && i + 1 < argc) {
      settings.interval = argv[++i];
    } else if (a == "--delay" && i + 1 < argc) {
      settings.delay = argv[++i];
    } else if (a == "--attempts" && i + 1 < argc) {
      settings.attempts = std::stoi(argv[++i]);
    } else if (a == "--show-log") {
      settings.show_log = true;
    } else if (a == "--backend" && i + 1 < argc) {
      settings.backend = argv[++i];
    } else if (a == "--help") {
      std::printf(
          "usage: weir_recovery_bench [--runs R] [--interval DURATION (checkpoints, 500 ms)] "
          "[--delay DURATION (restart delay, 200 ms)] [--attempts N (50)] "
          "[--backend heap|rocksdb] [--show-log] [-D key=value (server option)]...\n");
      return 0;
    } else {
      die("unknown argument '" + a + "' (see --help)");
    }
  }
  weir::engine::routeThriftOutputToLog();
  std::printf(
      "recovery after kill -9 of the job's TaskManager: backend %s, checkpoints every %s, "
      "restart-strategy fixed-delay (delay %s, %d attempts)\n",
      settings.backend.c_str(), settings.interval.c_str(), settings.delay.c_str(),
      settings.attempts);
  std::printf("%4s %11s %9s %14s %16s %21s  %s\n", "run", "checkpoint", "restarts", "kill->RUNNING",
              "kill->output", "fresh RUNNING->output", "first line after restore");
  std::vector<double> running;
  std::vector<double> output;
  for (int r = 0; r < settings.runs; ++r) {
    const Measurement m = measureOnce(settings);
    running.push_back(m.running_ms);
    output.push_back(m.output_ms);
    std::printf("%4d %11lld %9d %11.0f ms %13.0f ms %18.0f ms  %s\n", r + 1,
                static_cast<long long>(m.checkpoint), m.restarts, m.running_ms, m.output_ms,
                m.fresh_output_ms, m.first_line.c_str());
    std::fflush(stdout);
  }
  std::sort(running.begin(), running.end());
  std::sort(output.begin(), output.end());
  const auto mid = running.size() / 2;
  std::printf("kill->RUNNING: min %.0f ms, median %.0f ms, max %.0f ms\n", running.front(),
              running[mid], running.back());
  std::printf("kill->output:  min %.0f ms, median %.0f ms, max %.0f ms (goal < 2000 ms)\n",
              output.front(), output[mid], output.back());
  return 0;
}
