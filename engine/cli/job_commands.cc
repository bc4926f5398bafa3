#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "cli/admin_client.h"
#include "common/sha256.h"
#include "jobmanager/job_settings.h"
#include "jobmanager/local_job.h"
#include "jobmanager/mini_cluster.h"
#include "state/state_settings.h"

namespace weir::cli {

Result<JobArgs> parseJobArgs(const std::vector<std::string>& pairs) {
  JobArgs args;
  for (const std::string& p : pairs) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::invalidArgument("--arg expects key=value, got '" + p + "'");
    }
    args.set(p.substr(0, eq), p.substr(eq + 1));
  }
  // The engine's own arguments (state backend, checkpoint and restart settings) are checked
  // before anything is loaded or sent.
  Status s = engine::validateJobStateArgs(args.all());
  if (!s.isOk()) return s;
  s = engine::validateJobSettingArgs(args.all());
  if (!s.isOk()) return s;
  return args;
}

namespace {

// Waits for SIGINT/SIGTERM on a dedicated thread (the signals are blocked in every other thread)
// and cancels the job gracefully on the first one. A second signal ends the process at once.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> cancel) : cancel_(std::move(cancel)) {
    thread_ = std::thread([this] { watch(); });
  }
  ~SignalWatcher() {
    stop_.store(true);
    pthread_kill(thread_.native_handle(), SIGUSR1);  // ends its wait at once
    thread_.join();
  }
  static void blockSignals() {
    sigset_t set = watchedSignals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
  bool interrupted() const { return interrupted_.load(); }

 private:
  static sigset_t watchedSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);  // internal: stop watching
    return set;
  }

  void watch() {
    const sigset_t set = watchedSignals();
    while (!stop_.load()) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0 || sig == SIGUSR1) continue;
      if (interrupted_.exchange(true)) {
        std::fprintf(stderr, "weir: second interrupt, exiting now\n");
        std::_Exit(130);
      }
      std::fprintf(stderr, "weir: interrupted, cancelling the job (interrupt again to force)\n");
      cancel_();
    }
  }

  std::function<void()> cancel_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> interrupted_{false};
  std::thread thread_;
};

bool jobEnded(thrift::JobState::type s) {
  return s == thrift::JobState::FINISHED || s == thrift::JobState::CANCELED ||
         s == thrift::JobState::FAILED;
}

// The first steps of every command taking a plugin: parse --arg pairs, load the plugin.
int loadPlugin(const JobOptions& options, JobArgs& args,
               std::shared_ptr<engine::LoadedPlugin>& plugin) {
  auto parsed = parseJobArgs(options.args);
  if (!parsed.isOk()) return fail(parsed.status(), kExitUsage);
  auto loaded = engine::LoadedPlugin::load(options.plugin);
  if (!loaded.isOk()) return fail(loaded.status(), kExitFailure);
  args = std::move(*parsed);
  plugin = std::move(*loaded);
  return kExitOk;
}

// The client's half of a submission: load the plugin, run its builder, derive the JobGraph.
int buildGraph(const JobOptions& options, std::shared_ptr<engine::LoadedPlugin>& plugin,
               engine::JobGraph& graph) {
  JobArgs args;
  if (int code = loadPlugin(options, args, plugin); code != kExitOk) return code;
  auto program = plugin->createProgram(args);
  if (!program.isOk()) return fail(program.status(), kExitFailure);
  auto built = engine::buildJobGraph((*program)->graph(), options.parallelism, args);
  if (!built.isOk()) return fail(built.status(), kExitFailure);
  graph = std::move(*built);
  return kExitOk;
}

}  // namespace

int runLocal(const JobOptions& options) {
  std::shared_ptr<engine::LoadedPlugin> plugin;
  engine::JobGraph graph;
  if (int code = buildGraph(options, plugin, graph); code != kExitOk) return code;
  int slots = 1;
  for (const auto& v : graph.vertices)
    slots = std::max(slots, static_cast<int>(v.parallelism));
  SignalWatcher::blockSignals();  // before any thread exists, so they all inherit the mask

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> overrides = {"execution.buffer-timeout=" +
                                        std::to_string(options.buffer_timeout_ms) + " ms"};
  if (!options.checkpoint_dir.empty()) {
    std::error_code ec;
    const auto dir = std::filesystem::absolute(options.checkpoint_dir, ec);
    if (ec) return fail(Status::invalidArgument("--checkpoint-dir: " + ec.message()), kExitUsage);
    overrides.push_back("state.checkpoints.dir=" + dir.lexically_normal().string());
  }
  auto cluster = engine::MiniCluster::start(slots, overrides);
  if (!cluster.isOk()) return fail(cluster.status(), kExitFailure);
  engine::JobManager& jm = (*cluster)->jobManager();
  auto job = (*cluster)->submit(options.plugin, graph, plugin->name(), plugin->version());
  if (!job.isOk()) return fail(job.status(), kExitFailure);
  spdlog::info("running job '{}' ({}) from plugin {} {} with parallelism {}", graph.name, *job,
               plugin->name(), plugin->version(), options.parallelism);
  Result<thrift::JobSummary> summary = Status::internal("no result");
  bool interrupted = false;
  {
    SignalWatcher watcher([&jm, id = *job] { (void)jm.cancelJob(id); });
    do {
      summary = jm.awaitJob(*job, std::chrono::seconds(1));
    } while (summary.isOk() && !jobEnded(summary->state));
    interrupted = watcher.interrupted();
  }
  (*cluster)->stop();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::fflush(stdout);
  if (!summary.isOk()) return fail(summary.status(), kExitFailure);
  if (summary->state == thrift::JobState::CANCELED) {
    std::fprintf(stderr, "weir: job '%s' cancelled after %.1f ms\n", graph.name.c_str(), ms);
    return interrupted ? 130 : kExitFailure;
  }
  if (summary->state != thrift::JobState::FINISHED) {
    std::fprintf(stderr, "weir: job '%s' failed: %s\n", graph.name.c_str(),
                 summary->failure.c_str());
    return kExitFailure;
  }
  spdlog::info("job '{}' finished in {:.1f} ms", graph.name, ms);
  return kExitOk;
}

int runInfo(const JobOptions& options) {
  std::shared_ptr<engine::LoadedPlugin> plugin;
  engine::JobGraph g;
  if (int code = buildGraph(options, plugin, g); code != kExitOk) return code;
  std::printf("plugin   %s %s (%s)\n", plugin->name().c_str(), plugin->version().c_str(),
              options.plugin.c_str());
  std::printf("job      %s, max parallelism %d\n", g.name.c_str(), g.maxParallelism);
  std::printf("vertices\n");
  for (const auto& v : g.vertices) {
    std::printf("  %d  %-24s uid=%-16s parallelism=%d max=%d%s\n", v.id, v.name.c_str(),
                v.uid.c_str(), v.parallelism, v.maxParallelism, v.keyed ? " keyed" : "");
  }
  std::printf("edges\n");
  for (const auto& e : g.edges) {
    const std::string why = engine::chainBreakReason(g, e);
    std::printf("  %d -> %d  %-9s %s\n", e.source, e.target,
                weir::thrift::to_string(e.partitioner).c_str(),
                why.empty() ? "chained" : ("not chained: " + why).c_str());
  }
  std::printf("tasks\n");
  for (const auto& c : engine::computeChains(g)) {
    std::printf("  chain %d x%d  %s\n", c.id, c.parallelism, c.name.c_str());
  }
  return kExitOk;
}

namespace {

// Streams the plugin file to the JobManager in chunks; returns its SHA-256 as stored there.
Result<std::string> uploadPlugin(AdminClient& client, const std::string& path) {
  auto hash = engine::sha256File(path);
  if (!hash.isOk()) return hash.status();
  std::error_code ec;
  const auto size = static_cast<std::int64_t>(std::filesystem::file_size(path, ec));
  if (ec) return Status::ioError("cannot read " + path + ": " + ec.message());
  std::string upload_id;
  Status s = client.call([&](thrift::AdminServiceClient& c) { c.beginUpload(upload_id, size); });
  if (!s.isOk()) return explain(client, s);
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::ioError("cannot read " + path);
  constexpr std::size_t kChunk = 1 << 20;  // small enough that no side buffers much
  std::string chunk(kChunk, '\0');
  std::int64_t offset = 0;
  while (offset < size) {
    const auto n = static_cast<std::size_t>(
        std::min<std::int64_t>(static_cast<std::int64_t>(kChunk), size - offset));
    chunk.resize(n);
    if (!in.read(chunk.data(), static_cast<std::streamsize>(n))) {
      return Status::ioError("cannot read " + path + " (did it change while uploading?)");
    }
    s = client.call(
        [&](thrift::AdminServiceClient& c) { c.uploadChunk(upload_id, offset, chunk); });
    if (!s.isOk()) return explain(client, s).withContext("uploading " + path);
    offset += static_cast<std::int64_t>(n);
  }
  std::string stored;
  s = client.call([&](thrift::AdminServiceClient& c) { c.finishUpload(stored, upload_id, *hash); });
  if (!s.isOk()) return explain(client, s).withContext("uploading " + path);
  return stored;
}

}  // namespace

int runSubmit(const JobOptions& options, const ClusterOptions& cluster,
              const SubmitOptions& submit) {
  std::shared_ptr<engine::LoadedPlugin> plugin;
  engine::JobGraph graph;
  if (int code = buildGraph(options, plugin, graph); code != kExitOk) return code;
  if (!submit.name.empty()) graph.name = submit.name;

  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(cluster, client); code != kExitOk) return code;
  AdminClient& admin = *client;
  auto hash = uploadPlugin(admin, options.plugin);
  if (!hash.isOk()) return fail(hash.status(), kExitFailure);

  thrift::JobSubmission submission;
  submission.graph = std::move(graph);
  submission.pluginHash = *hash;
  submission.pluginName = plugin->name();
  submission.pluginVersion = plugin->version();
  if (!submit.from_savepoint.empty()) {
    std::error_code ec;
    const auto path = std::filesystem::absolute(submit.from_savepoint, ec);
    submission.__set_fromSavepoint(ec ? submit.from_savepoint : path.lexically_normal().string());
    submission.__set_allowNonRestoredState(submit.allow_non_restored_state);
  } else if (submit.allow_non_restored_state) {
    return fail(Status::invalidArgument("--allow-non-restored-state needs --from-savepoint"),
                kExitUsage);
  }
  std::string job_id;
  Status s = admin.call([&](thrift::AdminServiceClient& c) { c.submitJob(job_id, submission); });
  if (!s.isOk()) return fail(explain(admin, s), kExitFailure);
  std::printf("Job has been submitted with JobID %s\n", job_id.c_str());
  std::fflush(stdout);
  if (submit.detached) return kExitOk;

  // Attached: follow the job until it ends.
  thrift::JobDetails details;
  for (;;) {
    s = admin.call([&](thrift::AdminServiceClient& c) { c.jobDetails(details, job_id); });
    if (!s.isOk()) return fail(explain(admin, s), kExitFailure);
    if (jobEnded(details.summary.state)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(submit.poll_interval_ms));
  }
  const auto& summary = details.summary;
  if (summary.state == thrift::JobState::FINISHED) {
    std::printf("Job %s ('%s') finished in %.1f s\n", job_id.c_str(), summary.name.c_str(),
                static_cast<double>(summary.durationMs) / 1000.0);
    return kExitOk;
  }
  if (summary.state == thrift::JobState::CANCELED) {
    return fail(Status::cancelled("job " + job_id + " was cancelled"), kExitFailure);
  }
  return fail(Status::failed("job " + job_id + " failed: " + summary.failure), kExitFailure);
}

}  // namespace weir::cli
