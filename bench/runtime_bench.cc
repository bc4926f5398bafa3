// weir_bench: throughput of the real task runtime against a hand-written loop.
//
//   weir_bench [--records N] [--chain-records N] [--hash-records N] [--runs R] [--startup-records
//   N]
//
// Benchmarks (all in this process, best of R runs, std::chrono wall time):
//   chain          generator -> map -> filter -> counting sink, parallelism 1: one task, one
//   thread,
//                  every operator chained. Built with weir::makeProgram, run with LocalJob.
//   chain baseline the same user function objects applied in a plain loop (no runtime).
//   hash exchange  generator (task 1) -> keyBy -> keyed process -> counting sink (task 2): two
//   tasks on
//                  two threads joined by one in-memory, hash-partitioned channel.
//   hash baseline  the same user functions plus the key-group hash, in a plain loop.
//   startup        a whole job of a few records: the fixed cost of start + run + wait.
//
// Throughput counts generator records (N / seconds). The runtime's wall time runs from the call of
// LocalJob::start to the return of wait(): it includes building the program twice, planning,
// deploying and joining the task threads. Every run checks the sink's count and sum exactly and
// exits non-zero on any mismatch.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_functions.h"
#include "jobmanager/local_job.h"
#include "runtime/plugin_loader.h"
#include "taskmanager/task_executor.h"
#include "weir/weir.h"

namespace {

using namespace weir_bench;
using Clock = std::chrono::steady_clock;

double secondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU time of the whole process (every thread), in seconds.
double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_bench: FAILED: %s\n", msg.c_str());
  std::fflush(stdout);
  std::exit(1);
}

// ---- Expected results, in closed form (independent of both the runtime and the baseline). ----

struct Expected {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;  // modulo 2^64
};

// Sum of i over i in [0, n), modulo 2^64.
unsigned __int128 triangle(std::uint64_t n) {
  const unsigned __int128 m = n;
  return m == 0 ? 0 : m * (m - 1) / 2;
}

// gen -> map (3i + 1) -> filter ((3i + 1) & 7 != 0). 3i + 1 = 0 (mod 8) exactly when i = 5 (mod 8).
Expected expectedChain(std::uint64_t n) {
  const std::uint64_t dropped = n > 5 ? (n - 5 + 7) / 8 : 0;  // i = 5 + 8k < n
  const unsigned __int128 all = 3 * triangle(n) + n;
  // sum over dropped i = 5 + 8k, k in [0, dropped): 3 * (5 * dropped + 8 * T(dropped)) + dropped
  const unsigned __int128 gone =
      3 * (5 * static_cast<unsigned __int128>(dropped) + 8 * triangle(dropped)) + dropped;
  return {n - dropped, static_cast<std::uint64_t>(all - gone)};
}

Expected expectedIdentity(std::uint64_t n) {
  return {n, static_cast<std::uint64_t>(triangle(n))};
}

void check(const char* what, const Totals& t, const Expected& e, int expected_closes) {
  const std::uint64_t count = t.count.load();
  const std::uint64_t sum = t.sum.load();
  const int closed = t.closed.load(std::memory_order_acquire);
  if (closed != expected_closes || count != e.count || sum != e.sum) {
    die(std::string(what) + ": sink saw count=" + std::to_string(count) +
        " sum=" + std::to_string(sum) + " (closed " + std::to_string(closed) +
        "x), expected count=" + std::to_string(e.count) + " sum=" + std::to_string(e.sum) +
        " (closed " + std::to_string(expected_closes) + "x)");
  }
}

// ---- Running a job on the real runtime. ----

struct RunResult {
  double wall_s = 0;   // LocalJob::start called -> wait() returned
  double cpu_s = 0;    // process CPU time over the same interval (all threads)
  double start_s = 0;  // LocalJob::start called -> returned (tasks are already running by then)
  std::vector<weir::engine::TaskSnapshot> tasks;
  weir::engine::ExecutionPlan plan;
};

using BuildFn = std::function<void(weir::JobBuilder&)>;

RunResult runJob(const char* what, const BuildFn& build, std::size_t expected_tasks) {
  const weir::JobArgs args;
  weir::engine::ProgramFactory factory = [&]() -> weir::Result<weir::engine::ProgramPtr> {
    auto program = weir::makeProgram(build, args);
    if (!program.isOk()) return program.status();
    return weir::engine::adoptProgram(std::move(*program));
  };
  RunResult r;
  const double c0 = processCpuSeconds();
  const auto t0 = Clock::now();
  auto job = weir::engine::LocalJob::start(factory, 1, args);
  const auto t1 = Clock::now();
  if (!job.isOk()) die(std::string(what) + ": start failed: " + job.status().message());
  const weir::Status s = (*job)->wait();
  const auto t2 = Clock::now();
  r.cpu_s = processCpuSeconds() - c0;
  if (!s.isOk()) die(std::string(what) + ": job failed: " + s.message());
  r.wall_s = secondsBetween(t0, t2);
  r.start_s = secondsBetween(t0, t1);
  r.plan = (*job)->plan();
  r.tasks = (*job)->snapshot();
  if (r.plan.tasks.size() != expected_tasks) {
    die(std::string(what) + ": expected " + std::to_string(expected_tasks) +
        " tasks, the plan has " + std::to_string(r.plan.tasks.size()));
  }
  return r;
}

void buildChain(weir::JobBuilder& job, std::uint64_t n, const std::shared_ptr<Totals>& totals) {
  job.name("bench-chain");
  job.fromGenerator(kGen, n).map(kMap).filter(kFilter).addSink(CountingSink(totals),
                                                               "Counting Sink");
}

void buildHash(weir::JobBuilder& job, std::uint64_t n, const std::shared_ptr<Totals>& totals) {
  job.name("bench-hash");
  job.fromGenerator(kGen, n).keyBy(kKey).process(kForward).addSink(CountingSink(totals),
                                                                   "Counting Sink");
}

RunResult runChainJob(std::uint64_t n) {
  auto totals = std::make_shared<Totals>();
  RunResult r = runJob(
      "chain", [&](weir::JobBuilder& job) { buildChain(job, n, totals); }, 1);
  if (r.plan.chains.size() != 1 || r.plan.chains[0].vertices.size() != 4) {
    die("chain: expected one chain of 4 operators, got " + std::to_string(r.plan.chains.size()) +
        " chains");
  }
  check("chain", *totals, expectedChain(n), 1);
  return r;
}

RunResult runHashJob(std::uint64_t n) {
  auto totals = std::make_shared<Totals>();
  RunResult r = runJob(
      "hash exchange", [&](weir::JobBuilder& job) { buildHash(job, n, totals); }, 2);
  const auto& chains = r.plan.chains;
  if (chains.size() != 2 || chains[0].vertices.size() != 1 || chains[1].vertices.size() != 2) {
    die("hash exchange: expected chains [source] and [keyed process -> sink]");
  }
  check("hash exchange", *totals, expectedIdentity(n), 1);
  return r;
}

// ---- Baselines: the same function objects in one loop (the loops live in baseline.cc). ----

RunResult runChainBaseline(std::uint64_t n) {
  auto totals = std::make_shared<Totals>();
  const double c0 = processCpuSeconds();
  const auto t0 = Clock::now();
  chainBaselineLoop(n, totals);
  const auto t1 = Clock::now();
  RunResult r;
  r.cpu_s = processCpuSeconds() - c0;
  r.wall_s = secondsBetween(t0, t1);
  check("chain baseline", *totals, expectedChain(n), 1);
  return r;
}

RunResult runHashBaseline(std::uint64_t n) {
  auto totals = std::make_shared<Totals>();
  const double c0 = processCpuSeconds();
  const auto t0 = Clock::now();
  const std::uint64_t group_sum = hashBaselineLoop(n, totals);
  const auto t1 = Clock::now();
  RunResult r;
  r.cpu_s = processCpuSeconds() - c0;
  r.wall_s = secondsBetween(t0, t1);
  // Key groups are in [0, 128); their sum is only checked for plausibility (it is what keeps the
  // hash in the loop).
  if (n > 10000 && (group_sum == 0 || group_sum >= 128 * n)) {
    die("hash baseline: implausible key-group sum " + std::to_string(group_sum));
  }
  check("hash baseline", *totals, expectedIdentity(n), 1);
  return r;
}

// ---- Reporting. ----

struct Measured {
  std::vector<double> wall;   // per run
  std::vector<double> start;  // per run (runtime only)
  RunResult best_run;         // the fastest run
  double best() const { return *std::min_element(wall.begin(), wall.end()); }
  double median() const {
    std::vector<double> w = wall;
    std::sort(w.begin(), w.end());
    return w[w.size() / 2];
  }
};

template <class Fn>
Measured repeat(int runs, Fn fn) {
  Measured m;
  double best = 1e300;
  for (int i = 0; i < runs; ++i) {
    RunResult r = fn();
    m.wall.push_back(r.wall_s);
    m.start.push_back(r.start_s);
    if (r.wall_s < best) {
      best = r.wall_s;
      m.best_run = std::move(r);
    }
  }
  return m;
}

std::string rate(double records_per_s) {
  char buf[64];
  if (records_per_s >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f G/s", records_per_s / 1e9);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f M/s", records_per_s / 1e6);
  }
  return buf;
}

void printRow(const char* name, std::uint64_t n, const Measured& m, const char* ratio,
              const char* goal) {
  std::printf("%-24s %11llu %8.3f %8.3f %8.3f %11s %11s %12s  %s\n", name,
              static_cast<unsigned long long>(n), m.best(), m.best_run.cpu_s, m.median(),
              rate(static_cast<double>(n) / m.best()).c_str(),
              rate(static_cast<double>(n) / m.median()).c_str(), ratio, goal);
}

void printTasks(const char* name, const RunResult& r) {
  std::printf("  %s, fastest run: LocalJob::start returned after %.2f ms\n", name, r.start_s * 1e3);
  for (const auto& t : r.tasks) {
    std::printf(
        "    task %-58s busy %8.1f ms  idle %8.1f ms  back-pressured %8.1f ms  buffers peak "
        "%zu/%zu\n",
        t.name.c_str(), t.busy_ns / 1e6, t.idle_ns / 1e6, t.backpressured_ns / 1e6,
        t.peak_buffers_in_use, t.max_buffers);
    for (const auto& v : t.vertices) {
      std::printf("      vertex %d: in %llu, out %llu\n", v.id,
                  static_cast<unsigned long long>(v.records_in),
                  static_cast<unsigned long long>(v.records_out));
    }
  }
}

std::uint64_t parseCount(const char* flag, const char* value) {
  if (value == nullptr) die(std::string(flag) + " needs a value");
  char* end = nullptr;
  const double d = std::strtod(value, &end);  // accepts 2e8
  if (end == value || *end != '\0' || d < 1 || d > 1e13) {
    die(std::string(flag) + ": not a positive record count: '" + value + "'");
  }
  return static_cast<std::uint64_t>(d);
}

std::string loadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "unknown";
  return a + " " + b + " " + c;
}

std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t chain_n = 300'000'000;
  std::uint64_t hash_n = 60'000'000;
  std::uint64_t startup_n = 1000;
  int runs = 3;
  std::string only;  // empty: every benchmark
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--records") {
      chain_n = hash_n = parseCount("--records", next);
      ++i;
    } else if (a == "--chain-records") {
      chain_n = parseCount("--chain-records", next);
      ++i;
    } else if (a == "--hash-records") {
      hash_n = parseCount("--hash-records", next);
      ++i;
    } else if (a == "--startup-records") {
      startup_n = parseCount("--startup-records", next);
      ++i;
    } else if (a == "--runs") {
      runs = static_cast<int>(parseCount("--runs", next));
      ++i;
    } else if (a == "--only") {
      if (next == nullptr) die("--only needs chain, hash or startup");
      only = next;
      if (only != "chain" && only != "hash" && only != "startup") {
        die("--only: expected chain, hash or startup, got '" + only + "'");
      }
      ++i;
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: weir_bench [--records N] [--chain-records N] [--hash-records N]\n"
          "                  [--startup-records N] [--runs R] [--only chain|hash|startup]\n"
          "defaults: chain %llu, hash %llu, startup %llu records, best of %d runs\n",
          static_cast<unsigned long long>(chain_n), static_cast<unsigned long long>(hash_n),
          static_cast<unsigned long long>(startup_n), runs);
      return 0;
    } else {
      die("unknown argument '" + a + "' (see --help)");
    }
  }
  const bool do_chain = only.empty() || only == "chain";
  const bool do_hash = only.empty() || only == "hash";
  const bool do_startup = only.empty() || only == "startup";
  spdlog::set_level(spdlog::level::warn);

  const std::string load_before = loadAverage();

  // Warm-up: page in code, the allocator and thread creation once, outside any measurement.
  (void)runChainJob(100'000);
  (void)runHashJob(100'000);

  Measured chain, chain_base, hash, hash_base, chain_start, hash_start;
  if (do_chain) {
    chain = repeat(runs, [&] { return runChainJob(chain_n); });
    chain_base = repeat(runs, [&] { return runChainBaseline(chain_n); });
  }
  if (do_hash) {
    hash = repeat(runs, [&] { return runHashJob(hash_n); });
    hash_base = repeat(runs, [&] { return runHashBaseline(hash_n); });
  }
  if (do_startup) {
    chain_start = repeat(runs, [&] { return runChainJob(startup_n); });
    hash_start = repeat(runs, [&] { return runHashJob(startup_n); });
  }

  std::printf("\nWeir runtime benchmark (best of %d runs)\n", runs);
  std::printf("machine: %u CPUs, %s; load average before: %s, after: %s\n",
              std::thread::hardware_concurrency(), cpuModel().c_str(), load_before.c_str(),
              loadAverage().c_str());
  std::printf(
      "wall: LocalJob::start called -> wait() returned (includes start-up); cpu: process CPU time\n"
      "of the best run, all threads; rates count generator records; every run's sink count and\n"
      "sum were verified exactly.\n\n");
  const std::string rule(118, '-');
  std::printf("%-24s %11s %8s %8s %8s %11s %11s %12s  %s\n", "benchmark", "records", "best s",
              "cpu s", "median s", "best rate", "median", "runtime/base", "goal");
  std::printf("%s\n", rule.c_str());
  double chain_rate = 0;
  if (do_chain) {
    chain_rate = static_cast<double>(chain_n) / chain.best();
    const double base_rate = static_cast<double>(chain_n) / chain_base.best();
    char ratio[32], goal[64];
    std::snprintf(ratio, sizeof ratio, "%.3f", chain_rate / base_rate);
    std::snprintf(goal, sizeof goal, ">= 100 M/s: %s", chain_rate >= 100e6 ? "met" : "NOT met");
    printRow("chain (runtime, 1 task)", chain_n, chain, ratio, goal);
    printRow("chain baseline (loop)", chain_n, chain_base, "", "");
  }
  if (do_hash) {
    const double hash_rate = static_cast<double>(hash_n) / hash.best();
    const double base_rate = static_cast<double>(hash_n) / hash_base.best();
    char ratio[32], goal[64];
    std::snprintf(ratio, sizeof ratio, "%.3f", hash_rate / base_rate);
    std::snprintf(goal, sizeof goal, ">= 20 M/s: %s", hash_rate >= 20e6 ? "met" : "NOT met");
    printRow("hash exchange (2 tasks)", hash_n, hash, ratio, goal);
    printRow("hash baseline (loop)", hash_n, hash_base, "", "");
    if (do_chain) {
      std::printf("%s\nhash exchange / chain (runtime rates): %.3f\n", rule.c_str(),
                  hash_rate / chain_rate);
    }
  }
  std::printf("%s\n", rule.c_str());

  if (do_startup) {
    std::printf(
        "\nstart-up: a whole job of %llu records (start + run + wait); best / median of %d\n",
        static_cast<unsigned long long>(startup_n), runs);
    auto startupLine = [&](const char* name, const Measured& m) {
      const double best_start = *std::min_element(m.start.begin(), m.start.end());
      std::printf("  %-16s total %7.3f ms / %7.3f ms   of which LocalJob::start %7.3f ms (best)\n",
                  name, m.best() * 1e3, m.median() * 1e3, best_start * 1e3);
    };
    startupLine("chain (1 task)", chain_start);
    startupLine("hash (2 tasks)", hash_start);
  }
  if (do_chain || do_hash) std::printf("\nper-task metrics of the fastest runs:\n");
  if (do_chain) printTasks("chain", chain.best_run);
  if (do_hash) printTasks("hash exchange", hash.best_run);
  return 0;
}
