// The RocksDB state backend on the real runtime: jobs choose it with `--arg state.backend=...`,
// tasks open one store per keyed operator from their TaskManager's RocksDB resources, a job's
// output does not depend on the backend, and stores (with their files) go when tasks end, however
// they end.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/job_test_util.h"
#include "jobmanager/mini_cluster.h"
#include "process_util.h"
#include "runtime/plugin_loader.h"
#include "weir/weir.h"

namespace fs = std::filesystem;

using weir::testing::TempDir;

namespace {

const std::string kClusterJob = WEIR_TEST_BAD_PLUGIN_DIR "/cluster_job.so";
const std::string kWeir = WEIR_TEST_BIN_DIR "/weir";

// The RocksDB working directories (weir-rocksdb-*) below `local_dir`.
std::vector<fs::path> workingDirs(const std::string& local_dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(local_dir, ec)) {
    if (e.path().filename().string().rfind("weir-rocksdb-", 0) == 0) out.push_back(e.path());
  }
  return out;
}

// Everything below `dir`, relative to it.
std::vector<std::string> contents(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sortedLines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  std::sort(out.begin(), out.end());
  return out;
}

// Runs cluster_job.so in "timers" mode at parallelism 2 on a MiniCluster (a JobManager and a
// TaskManager in this process) whose RocksDB directory is below `local_dir`; returns the sorted
// output lines. Checks, once the job finished and while the TaskManager still runs, that no
// store is left (and with `expect_rocksdb`, that stores were made at all).
std::vector<std::string> runTimersJob(const TempDir& dir, const std::string& tag,
                                      const std::vector<std::string>& extra_args,
                                      bool expect_rocksdb) {
  const std::string local_dir = dir.file("rocksdb-" + tag);
  const std::string out = dir.file(tag + ".out");
  auto cluster = weir::engine::MiniCluster::start(
      2, {"state.backend.rocksdb.localdir=" + local_dir, "pipeline.auto-watermark-interval=5 ms"});
  REQUIRE_MESSAGE(cluster.isOk(), cluster.status().message());
  auto plugin = weir::engine::LoadedPlugin::load(kClusterJob);
  REQUIRE_MESSAGE(plugin.isOk(), plugin.status().message());
  weir::JobArgs args;
  args.set("mode", "timers");
  args.set("count", "5000");
  args.set("out", out);
  for (const std::string& a : extra_args) {
    const auto eq = a.find('=');
    args.set(a.substr(0, eq), a.substr(eq + 1));
  }
  auto program = (*plugin)->createProgram(args);
  REQUIRE_MESSAGE(program.isOk(), program.status().message());
  auto graph = weir::engine::buildJobGraph((*program)->graph(), 2, args);
  REQUIRE_MESSAGE(graph.isOk(), graph.status().message());
  auto id = (*cluster)->submit(kClusterJob, *graph, (*plugin)->name(), (*plugin)->version());
  REQUIRE_MESSAGE(id.isOk(), id.status().message());
  weir::thrift::JobSummary summary;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    auto s = (*cluster)->jobManager().awaitJob(*id, std::chrono::seconds(1));
    REQUIRE_MESSAGE(s.isOk(), s.status().message());
    summary = *s;
    if (summary.state == weir::thrift::JobState::FINISHED ||
        summary.state == weir::thrift::JobState::FAILED ||
        summary.state == weir::thrift::JobState::CANCELED) {
      break;
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  }
  REQUIRE_MESSAGE(summary.state == weir::thrift::JobState::FINISHED, summary.failure);
  const auto dirs = workingDirs(local_dir);
  if (expect_rocksdb) {
    REQUIRE(dirs.size() == 1);
    CHECK(contents(dirs[0]).empty());  // every store closed and deleted with its task
  } else {
    CHECK(dirs.empty());  // heap jobs never create RocksDB resources
  }
  cluster->reset();
  CHECK(workingDirs(local_dir).empty());  // the TaskManager's working directory goes with it
  return sortedLines(out);
}

}  // namespace

TEST_CASE("RocksDB backend: a keyed job with state and timers prints what it prints on the heap") {
  TempDir dir;
  const auto heap = runTimersJob(dir, "heap", {}, false);
  // 5000 numbers, 7 residues, 50 windows: one report per (residue, window), and one late timer
  // per window (of the key holding its number = 50 mod 100).
  REQUIRE(heap.size() == 7 * 50 + 50);
  CHECK(std::count_if(heap.begin(), heap.end(), [](const std::string& l) {
          return l.find(" late ") != std::string::npos;
        }) == 50);
  CHECK(std::find(heap.begin(), heap.end(),
                  "k0-w0 at 99 count=15 sum=735 listed=735 residues=0:5,1:5,2:5,") != heap.end());

  const auto rocks = runTimersJob(dir, "rocksdb", {"state.backend=rocksdb"}, true);
  CHECK(rocks == heap);
  const auto rocks_heap_timers = runTimersJob(
      dir, "rocksdb-heap-timers",
      {"state.backend=RocksDB", "state.backend.rocksdb.timer-service.factory=heap"}, true);
  CHECK(rocks_heap_timers == heap);
}

namespace {

std::atomic<long> g_seen{0};

// Keyed state for every record of an unbounded source; fails at record `fail_at` (if >= 0).
struct Remember {
  long fail_at = -1;
  void open(const weir::RuntimeContext& ctx) {
    seen_ = &ctx.getListState(weir::ListStateDescriptor<long>("seen"));
  }
  void processElement(const long& v, weir::KeyedContext<long>&, weir::Collector<long>&) {
    if (v == fail_at) throw std::runtime_error("record " + std::to_string(v) + " is poison");
    seen_->add(v);
    g_seen.fetch_add(1);
  }
  weir::ListState<long>* seen_ = nullptr;
};

void buildRemember(weir::JobBuilder& job, long fail_at) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<long>(i); })
      .uid("numbers")
      .keyBy([](const long& v) { return v % 100; })
      .process(Remember{fail_at})
      .uid("remember")
      .addSink([](const long&) {})
      .uid("sink");
}

weir::engine::TaskExecutorOptions rocksDbOptions(const std::string& local_dir) {
  weir::engine::TaskExecutorOptions options;
  options.rocksdb.local_dir = local_dir;
  options.rocksdb.block_cache_size = 8u << 20;
  options.rocksdb.write_buffer_size = 8u << 20;
  return options;
}

weir::JobArgs rocksDbArgs() {
  weir::JobArgs args;
  args.set("state.backend", "rocksdb");
  return args;
}

}  // namespace

TEST_CASE(
    "RocksDB backend: each keyed subtask has its own store, deleted when the job is cancelled") {
  TempDir dir;
  g_seen = 0;
  auto job = weir::testing::startJob([](weir::JobBuilder& job) { buildRemember(job, -1); }, 2,
                                     rocksDbArgs(), rocksDbOptions(dir.path()));
  REQUIRE_MESSAGE(job.isOk(), job.status().message());
  REQUIRE(weir::testing::eventually([] { return g_seen.load() > 10000; }));
  const auto dirs = workingDirs(dir.path());
  REQUIRE(dirs.size() == 1);
  // <working dir>/<job>/<vertex uid>_<subtask>: one store per subtask of the keyed operator.
  std::vector<std::string> stores;
  for (const std::string& p : contents(dirs[0])) {
    const auto slash = p.find('/');
    if (slash != std::string::npos && p.find('/', slash + 1) == std::string::npos) {
      stores.push_back(p.substr(slash + 1));
    }
  }
  CHECK(stores == std::vector<std::string>{"remember_0", "remember_1"});
  (*job)->cancel();
  CHECK((*job)->wait().code() == weir::Status::Code::kCancelled);
  CHECK(contents(dirs[0]).empty());
}

TEST_CASE("RocksDB backend: a failing task's stores are deleted too") {
  TempDir dir;
  g_seen = 0;
  auto job = weir::testing::startJob([](weir::JobBuilder& job) { buildRemember(job, 5000); }, 2,
                                     rocksDbArgs(), rocksDbOptions(dir.path()));
  REQUIRE_MESSAGE(job.isOk(), job.status().message());
  const weir::Status s = (*job)->wait();
  CHECK(s.code() == weir::Status::Code::kFailed);
  CHECK(s.message().find("record 5000 is poison") != std::string::npos);
  const auto dirs = workingDirs(dir.path());
  REQUIRE(dirs.size() == 1);
  CHECK(contents(dirs[0]).empty());
}

TEST_CASE("RocksDB backend: a store that cannot be created fails the job with the reason") {
  TempDir dir;
  const std::string not_a_dir = dir.file("file");
  std::ofstream(not_a_dir) << "x";
  auto job = weir::testing::startJob([](weir::JobBuilder& job) { buildRemember(job, -1); }, 1,
                                     rocksDbArgs(), rocksDbOptions(not_a_dir + "/sub"));
  REQUIRE_MESSAGE(job.isOk(), job.status().message());
  const weir::Status s = (*job)->wait();
  CHECK(s.code() == weir::Status::Code::kFailed);
  CHECK(s.message().find("cannot open the RocksDB state store of 'Keyed Process'") !=
        std::string::npos);
  CHECK(s.message().find("RocksDB local directory '" + not_a_dir + "/sub' cannot be created") !=
        std::string::npos);
}

TEST_CASE("RocksDB backend: a job's state.backend argument is checked at submission") {
  TempDir dir;
  auto cluster = weir::engine::MiniCluster::start(1, {});
  REQUIRE_MESSAGE(cluster.isOk(), cluster.status().message());
  auto plugin = weir::engine::LoadedPlugin::load(kClusterJob);
  REQUIRE_MESSAGE(plugin.isOk(), plugin.status().message());
  weir::JobArgs args;
  auto program = (*plugin)->createProgram(args);
  REQUIRE(program.isOk());
  auto graph = weir::engine::buildJobGraph((*program)->graph(), 1, args);
  REQUIRE(graph.isOk());
  // A client that skipped the check: the JobManager refuses the job.
  graph->jobArgs["state.backend"] = "bogus";
  auto id = (*cluster)->submit(kClusterJob, *graph, (*plugin)->name(), (*plugin)->version());
  REQUIRE_FALSE(id.isOk());
  CHECK(id.status().code() == weir::Status::Code::kInvalidArgument);
  CHECK(id.status().message() ==
        "invalid job argument 'state.backend': expected one of heap, rocksdb, got 'bogus'");
  (*cluster)->stop();

  // The CLI refuses it before loading anything, as a usage error.
  const std::vector<std::vector<std::string>> commands = {
      {kWeir, "submit", kClusterJob, "--arg", "state.backend=bogus", "--jobmanager", "127.0.0.1:1"},
      {kWeir, "local", kClusterJob, "--arg", "state.backend=bogus"}};
  for (const auto& command : commands) {
    CAPTURE(command[1]);
    const auto r = weir::testing::run(command, dir.path());
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("invalid job argument 'state.backend': expected one of heap, rocksdb, got "
                     "'bogus'") != std::string::npos);
  }
  const auto timers = weir::testing::run(
      {kWeir, "local", kClusterJob, "--arg", "state.backend.rocksdb.timer-service.factory=disk"},
      dir.path());
  CHECK(timers.exit_code == 2);
  CHECK(timers.err.find("invalid job argument 'state.backend.rocksdb.timer-service.factory': "
                        "expected one of rocksdb, heap, got 'disk'") != std::string::npos);
}

TEST_CASE("Job settings: restart and checkpoint arguments are checked at submission") {
  TempDir dir;
  auto cluster = weir::engine::MiniCluster::start(1, {});
  REQUIRE_MESSAGE(cluster.isOk(), cluster.status().message());
  auto plugin = weir::engine::LoadedPlugin::load(kClusterJob);
  REQUIRE_MESSAGE(plugin.isOk(), plugin.status().message());
  weir::JobArgs args;
  auto program = (*plugin)->createProgram(args);
  REQUIRE(program.isOk());
  auto graph = weir::engine::buildJobGraph((*program)->graph(), 1, args);
  REQUIRE(graph.isOk());
  // A client that skipped the checks: the JobManager refuses each job.
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> refused = {
      {{{"restart-strategy.type", "bogus"}},
       "invalid job argument 'restart-strategy.type': expected one of none, fixed-delay, "
       "exponential-delay, failure-rate, got 'bogus'"},
      {{{"execution.checkpointing.interval", "abc"}},
       "invalid job argument 'execution.checkpointing.interval': expected a duration (e.g. "
       "500 ms, 10 s, 1 min), got 'abc'"},
      // Checked against the cluster's settings: its max-backoff is the default 1 min.
      {{{"restart-strategy.type", "exponential-delay"},
        {"restart-strategy.exponential-delay.initial-backoff", "5 min"}},
       "invalid restart settings: restart-strategy.exponential-delay.initial-backoff "
       "(300000 ms) exceeds restart-strategy.exponential-delay.max-backoff (60000 ms)"}};
  for (const auto& [job_args, message] : refused) {
    CAPTURE(message);
    auto bad = *graph;
    for (const auto& [key, value] : job_args)
      bad.jobArgs[key] = value;
    auto id = (*cluster)->submit(kClusterJob, bad, (*plugin)->name(), (*plugin)->version());
    REQUIRE_FALSE(id.isOk());
    CHECK(id.status().code() == weir::Status::Code::kInvalidArgument);
    CHECK(id.status().message() == message);
  }
  (*cluster)->stop();

  // The CLI refuses them before loading anything, as a usage error.
  const std::vector<std::vector<std::string>> commands = {
      {kWeir, "submit", kClusterJob, "--arg", "restart-strategy.type=bogus", "--jobmanager",
       "127.0.0.1:1"},
      {kWeir, "local", kClusterJob, "--arg", "restart-strategy.type=bogus"}};
  for (const auto& command : commands) {
    CAPTURE(command[1]);
    const auto r = weir::testing::run(command, dir.path());
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("invalid job argument 'restart-strategy.type': expected one of none, "
                     "fixed-delay, exponential-delay, failure-rate, got 'bogus'") !=
          std::string::npos);
  }
  const auto interval = weir::testing::run(
      {kWeir, "local", kClusterJob, "--arg", "execution.checkpointing.interval=abc"}, dir.path());
  CHECK(interval.exit_code == 2);
  CHECK(interval.err.find("invalid job argument 'execution.checkpointing.interval': expected a "
                          "duration (e.g. 500 ms, 10 s, 1 min), got 'abc'") != std::string::npos);
}
