// CLI commands for savepoints and checkpoints of a running job.
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/admin_client.h"

namespace weir::cli {

namespace {

// A savepoint takes as long as writing the job's state: the call waits up to the checkpoint
// timeout on the JobManager, so the client's own timeout must not cut it short.
ClusterOptions forSavepoint(ClusterOptions options) {
  constexpr int kSavepointCallTimeoutMs = 15 * 60 * 1000;
  if (options.timeout_ms < kSavepointCallTimeoutMs) options.timeout_ms = kSavepointCallTimeoutMs;
  return options;
}

std::string bytes(std::int64_t n) {
  char buf[32];
  const double v = static_cast<double>(n);
  if (n < 1024) {
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
  } else if (n < 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", v / 1024.0);
  } else if (n < 1024LL * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", v / (1024.0 * 1024.0));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", v / (1024.0 * 1024.0 * 1024.0));
  }
  return buf;
}

std::string clockTime(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

}  // namespace

int runSavepoint(const ClusterOptions& options, const std::string& job_id,
                 const std::string& target_dir) {
  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(forSavepoint(options), client); code != kExitOk) return code;
  std::printf("Triggering savepoint for job %s.\n", job_id.c_str());
  std::fflush(stdout);
  std::string path;
  Status s = client->call(
      [&](thrift::AdminServiceClient& c) { c.triggerSavepoint(path, job_id, target_dir); });
  if (!s.isOk()) return fail(explain(*client, s), kExitFailure);
  std::printf("Savepoint completed. Path: %s\n", path.c_str());
  return kExitOk;
}

int runStop(const ClusterOptions& options, const std::string& job_id,
            const std::string& target_dir, bool drain) {
  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(forSavepoint(options), client); code != kExitOk) return code;
  std::printf("Suspending job %s%s.\n", job_id.c_str(), drain ? " (draining)" : "");
  std::fflush(stdout);
  std::string path;
  Status s = client->call([&](thrift::AdminServiceClient& c) {
    c.stopWithSavepoint(path, job_id, target_dir, drain);
  });
  if (!s.isOk()) return fail(explain(*client, s), kExitFailure);
  std::printf("Savepoint completed. Path: %s\n", path.c_str());
  return kExitOk;
}

int runCheckpoints(const ClusterOptions& options, const std::string& job_id) {
  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(options, client); code != kExitOk) return code;
  std::vector<thrift::CheckpointInfo> list;
  Status s = client->call([&](thrift::AdminServiceClient& c) { c.listCheckpoints(list, job_id); });
  if (!s.isOk()) return fail(explain(*client, s), kExitFailure);
  if (options.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : list) {
      nlohmann::json j = {{"id", c.id},
                          {"status", thrift::to_string(c.status)},
                          {"savepoint", c.savepoint},
                          {"triggeredAtMs", c.triggeredAtMs},
                          {"durationMs", c.durationMs},
                          {"acknowledged", c.acknowledged},
                          {"total", c.total},
                          {"checkpointedSize", c.checkpointedSize},
                          {"stateSize", c.stateSize},
                          {"restoredFrom", c.restoredFrom}};
      if (c.__isset.path) j["path"] = c.path;
      if (c.__isset.failure) j["failure"] = c.failure;
      out.push_back(std::move(j));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%6s  %-11s  %-9s  %-8s  %9s  %7s  %11s  %11s  %s\n", "ID", "STATUS", "TYPE",
              "TRIGGERED", "DURATION", "ACKS", "CHECKPOINTED", "STATE SIZE", "PATH / FAILURE");
  for (const auto& c : list) {
    char duration[32];
    std::snprintf(duration, sizeof duration, "%lld ms", static_cast<long long>(c.durationMs));
    const std::string acks = std::to_string(c.acknowledged) + "/" + std::to_string(c.total);
    std::string where = c.__isset.failure ? c.failure : (c.__isset.path ? c.path : "");
    if (c.restoredFrom) where += " (restored from)";
    std::printf("%6lld  %-11s  %-9s  %-8s  %9s  %7s  %11s  %11s  %s\n",
                static_cast<long long>(c.id), thrift::to_string(c.status).c_str(),
                c.savepoint ? "savepoint" : "checkpoint", clockTime(c.triggeredAtMs).c_str(),
                duration, acks.c_str(), bytes(c.checkpointedSize).c_str(),
                bytes(c.stateSize).c_str(), where.c_str());
  }
  if (list.empty()) std::printf("(no checkpoints)\n");
  return kExitOk;
}

}  // namespace weir::cli
