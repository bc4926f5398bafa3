// weir_backpressure_bench: how long a checkpoint takes to pass a back-pressured pipeline, with the
// same pipeline free of back-pressure as the baseline, in the same process.
//
//   weir_backpressure_bench [--sleep-us U] [--checkpoints N]
//
// The job: a generator of 100-byte strings -> rebalance -> relay (identity map) -> rebalance ->
// sink, one subtask each, run by the embedded runtime (as `weir local` does). Back-pressured, the
// sink sleeps U microseconds per record (default 50: about 16 ms per 32 KiB buffer), so every
// buffer of the source and the relay fills up and stays queued; free, it takes each record at once.
// N checkpoints (default 20) are triggered one after the other at the source, each once the one
// before completed, and for each the time from the trigger to every subtask's acknowledgement
// is taken:
//
// relay       until the relay (the back-pressured task in the middle) acknowledged;
// all         until the sink acknowledged too: the checkpoint's duration.
//
// Three runs: free (aligned checkpoints, the baseline), back-pressured with aligned checkpoints
// (the barrier waits behind every queued buffer), and back-pressured with unaligned checkpoints
// (the barrier overtakes them; the relay takes it while it waits for an output buffer). Medians
// and maxima in milliseconds, and each median's ratio to the baseline's.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "jobmanager/local_job.h"
#include "runtime/plugin_loader.h"
#include "weir/plugin.h"
#include "weir/weir.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_backpressure_bench: FAILED: %s\n", msg.c_str());
  std::exit(1);
}

struct SleepingSink {
  std::int64_t sleep_us = 0;
  void invoke(const std::string&) {
    if (sleep_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  }
};

// When each chain acknowledged each checkpoint.
struct Acks {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::pair<std::int64_t, int>, Clock::time_point> at;  // (checkpoint, chain)
  std::vector<std::string> declines;

  void ack(std::int64_t id, int chain) {
    {
      std::lock_guard<std::mutex> lock(mu);
      at[{id, chain}] = Clock::now();
    }
    cv.notify_all();
  }
  // When `chain` acknowledged checkpoint `id`, waiting up to `timeout`.
  Clock::time_point await(std::int64_t id, int chain, std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, timeout, [&] { return at.count({id, chain}) != 0 || !declines.empty(); })) {
      die("checkpoint " + std::to_string(id) + " not acknowledged by chain " +
          std::to_string(chain) + " within " + std::to_string(timeout.count()) + " s");
    }
    if (!declines.empty()) die("a checkpoint was declined: " + declines.front());
    return at.at({id, chain});
  }
};

struct Durations {
  std::vector<double> relay_ms;
  std::vector<double> all_ms;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double maximum(const std::vector<double>& v) {
  return *std::max_element(v.begin(), v.end());
}

double msBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

Durations run(std::int64_t sleep_us, bool unaligned, int checkpoints,
              const std::filesystem::path& dir) {
  auto build = [sleep_us](weir::JobBuilder& job) {
    job.fromGenerator([](std::uint64_t i) { return std::string(100, char('a' + i % 26)); })
        .name("source")
        .rebalance()
        .map([](const std::string& s) { return s; })
        .name("relay")
        .rebalance()
        .addSink(SleepingSink{sleep_us})
        .name("sink");
  };
  auto factory = [build]() -> weir::Result<weir::engine::ProgramPtr> {
    auto program = weir::makeProgram(build, weir::JobArgs{});
    if (!program.isOk()) return program.status();
    return weir::engine::adoptProgram(std::move(*program));
  };
  auto acks = std::make_shared<Acks>();
  weir::engine::ExecutorCheckpointing checkpointing;
  checkpointing.enabled = true;
  checkpointing.job_dir = dir;
  checkpointing.unaligned = unaligned;
  checkpointing.acknowledge = [acks](weir::thrift::CheckpointAck ack) {
    acks->ack(ack.checkpointId, ack.chainId);
  };
  checkpointing.decline = [acks](std::int64_t id, int chain, int, const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(acks->mu);
      acks->declines.push_back("checkpoint " + std::to_string(id) + ", chain " +
                               std::to_string(chain) + ": " + reason);
    }
    acks->cv.notify_all();
  };
  auto job = weir::engine::LocalJob::start(factory, 1, weir::JobArgs{}, {}, checkpointing);
  if (!job.isOk()) die(job.status().message());
  if ((*job)->plan().tasks.size() != 3) die("expected 3 tasks");
  // Back-pressured: wait until the relay's output pool is used up (it stays so).
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    const auto tasks = (*job)->snapshot();
    const auto& relay = tasks.at(1);
    if (sleep_us == 0 || (relay.buffers_in_use >= relay.max_buffers && relay.backpressured_ns > 0))
      break;
    if (Clock::now() > deadline) die("the relay never became back-pressured");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Durations d;
  for (int i = 1; i <= checkpoints; ++i) {
    weir::engine::CheckpointBarrier barrier;
    barrier.id = i;
    barrier.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    barrier.target_dir = (dir / ("chk-" + std::to_string(i))).string();
    const auto start = Clock::now();
    if (weir::Status s = (*job)->triggerCheckpoint(barrier, {{0, 0}}); !s.isOk()) die(s.message());
    const auto relay = acks->await(i, 1, std::chrono::seconds(120));
    const auto sink = acks->await(i, 2, std::chrono::seconds(120));
    acks->await(i, 0, std::chrono::seconds(120));
    d.relay_ms.push_back(msBetween(start, relay));
    d.all_ms.push_back(msBetween(start, std::max(relay, sink)));
    std::filesystem::remove_all(barrier.target_dir);
  }
  (*job)->cancel();
  (void)(*job)->wait();  // cancelled
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"weir_backpressure_bench: checkpoints through a back-pressured pipeline"};
  std::int64_t sleep_us = 50;
  int checkpoints = 20;
  app.add_option("--sleep-us", sleep_us, "the back-pressured sink's pause per record")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--checkpoints", checkpoints, "checkpoints per run")->check(CLI::Range(1, 10000));
  CLI11_PARSE(app, argc, argv);

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("weir-backpressure-bench-" + std::to_string(::getpid()));
  std::printf("job: generator -> relay -> sink (100-byte records), %d checkpoints per run; "
              "back-pressured sink sleeps %lld us per record\n\n",
              checkpoints, static_cast<long long>(sleep_us));
  struct Row {
    const char* name;
    std::int64_t sleep_us;
    bool unaligned;
  };
  const Row rows[] = {{"free, aligned (baseline)", 0, false},
                      {"back-pressured, aligned", sleep_us, false},
                      {"back-pressured, unaligned", sleep_us, true}};
  double base_relay = 0;
  double base_all = 0;
  std::printf("%-28s %12s %12s %12s %12s %10s %10s\n", "run", "relay median", "relay max",
              "all median", "all max", "relay/base", "all/base");
  for (const Row& row : rows) {
    const Durations d = run(row.sleep_us, row.unaligned, checkpoints, dir / row.name);
    const double relay = median(d.relay_ms);
    const double all = median(d.all_ms);
    if (row.sleep_us == 0) {
      base_relay = relay;
      base_all = all;
    }
    std::printf("%-28s %9.2f ms %9.2f ms %9.2f ms %9.2f ms %10.1f %10.1f\n", row.name, relay,
                maximum(d.relay_ms), all, maximum(d.all_ms), relay / base_relay, all / base_all);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
