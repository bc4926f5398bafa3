// CLI commands that talk to a running JobManager's admin service.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/admin_client.h"
#include "weir/task_api.h"
#include "common/config.h"

namespace weir::cli {

int fail(const Status& status, int code) {
  std::fprintf(stderr, "weir: %s\n", status.message().c_str());
  return code;
}

// Where the JobManager's admin service is: --jobmanager, else the configuration file, else the
// defaults.
Result<std::unique_ptr<AdminClient>> connectAdmin(const ClusterOptions& options) {
  std::string host;
  int port = 0;
  if (!options.jobmanager.empty()) {
    Status s = engine::parseHostPort(options.jobmanager, host, port);
    if (!s.isOk()) return Status::invalidArgument("--jobmanager: " + s.message());
  } else {
    auto config = engine::Configuration::load(options.config_file, {});
    if (!config.isOk()) return config.status();
    host = config->getString("jobmanager.rpc.address");
    port = static_cast<int>(config->getInt("jobmanager.admin.port"));
  }
  return std::make_unique<AdminClient>(host, port, std::chrono::milliseconds(options.timeout_ms));
}

// Turns a transport failure into the message a user needs.
Status explain(const AdminClient& client, const Status& s) {
  if (s.code() == Status::Code::kIoError) {
    return Status::ioError("cannot reach the JobManager at " + client.address() + ": " +
                           s.message().substr(s.message().rfind(": ") + 2));
  }
  return s;
}

namespace {

const char* stateName(thrift::TaskManagerState::type s) {
  return s == thrift::TaskManagerState::ALIVE ? "ALIVE" : "LOST";
}

}  // namespace

int runTaskManagers(const ClusterOptions& options) {
  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(options, client); code != kExitOk) return code;
  std::vector<thrift::TaskManagerInfo> tms;
  Status s = client->call([&](thrift::AdminServiceClient& c) { c.listTaskManagers(tms); });
  if (!s.isOk()) return fail(explain(*client, s), kExitFailure);

  if (options.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& tm : tms) {
      nlohmann::json j = {{"id", tm.id},
                          {"host", tm.host},
                          {"rpcPort", tm.rpcPort},
                          {"slots", tm.slots},
                          {"freeSlots", tm.freeSlots},
                          {"state", stateName(tm.state)},
                          {"lastHeartbeatAgeMs", tm.lastHeartbeatAgeMs},
                          {"registeredAtMs", tm.registeredAtMs}};
      if (tm.__isset.lostReason) j["lostReason"] = tm.lostReason;
      out.push_back(std::move(j));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-8s %-22s %5s %5s  %-6s %s\n", "ID", "ADDRESS", "SLOTS", "FREE", "STATE",
              "LAST HEARTBEAT");
  for (const auto& tm : tms) {
    const std::string address = tm.host + ":" + std::to_string(tm.rpcPort);
    std::printf("%-8s %-22s %5d %5d  %-6s %.1f s ago%s\n", tm.id.c_str(), address.c_str(), tm.slots,
                tm.freeSlots, stateName(tm.state), tm.lastHeartbeatAgeMs / 1000.0,
                tm.__isset.lostReason ? ("  (" + tm.lostReason + ")").c_str() : "");
  }
  if (tms.empty()) std::printf("(no TaskManagers registered)\n");
  return kExitOk;
}

int connectOrFail(const ClusterOptions& options, std::unique_ptr<AdminClient>& out) {
  auto client = connectAdmin(options);
  if (!client.isOk()) {
    return fail(client.status(), client.status().code() == Status::Code::kInvalidArgument
                                     ? kExitUsage
                                     : kExitFailure);
  }
  out = std::move(*client);
  return kExitOk;
}

namespace {

nlohmann::json toJson(const thrift::JobSummary& j) {
  nlohmann::json out = {{"id", j.id},
                        {"name", j.name},
                        {"state", thrift::to_string(j.state)},
                        {"submittedAtMs", j.submittedAtMs},
                        {"durationMs", j.durationMs},
                        {"parallelism", j.parallelism},
                        {"tasksTotal", j.tasksTotal},
                        {"tasksRunning", j.tasksRunning},
                        {"tasksFinished", j.tasksFinished},
                        {"plugin", j.plugin}};
  if (j.__isset.failure) out["failure"] = j.failure;
  out["restarts"] = j.restarts;
  out["lastCheckpointId"] = j.lastCheckpointId;
  return out;
}

std::string seconds(std::int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

// Share of wall time in a state, as a percentage, from a subtask's busy/idle/back-pressured time.
std::string percent(std::int64_t part, std::int64_t total) {
  if (total <= 0) return "-";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.0f%%",
                100.0 * static_cast<double>(part) / static_cast<double>(total));
  return buf;
}

}  // namespace

int runList(const ClusterOptions& options) {
  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(options, client); code != kExitOk) return code;
  std::vector<thrift::JobSummary> jobs;
  Status s = client->call([&](thrift::AdminServiceClient& c) { c.listJobs(jobs); });
  if (!s.isOk()) return fail(explain(*client, s), kExitFailure);
  if (options.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& j : jobs)
      out.push_back(toJson(j));
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-32s  %-10s  %9s  %7s  %s\n", "JOB ID", "STATE", "DURATION", "TASKS", "NAME");
  for (const auto& j : jobs) {
    const std::string tasks =
        std::to_string(j.tasksRunning + j.tasksFinished) + "/" + std::to_string(j.tasksTotal);
    std::printf("%-32s  %-10s  %9s  %7s  %s\n", j.id.c_str(), thrift::to_string(j.state).c_str(),
                seconds(j.durationMs).c_str(), tasks.c_str(), j.name.c_str());
  }
  if (jobs.empty()) std::printf("(no jobs)\n");
  return kExitOk;
}

int runStatus(const ClusterOptions& options, const std::string& job_id) {
  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(options, client); code != kExitOk) return code;
  thrift::JobDetails d;
  Status s = client->call([&](thrift::AdminServiceClient& c) { c.jobDetails(d, job_id); });
  if (!s.isOk()) return fail(explain(*client, s), kExitFailure);
  if (options.output == "json") {
    nlohmann::json out = toJson(d.summary);
    out["vertices"] = nlohmann::json::array();
    for (const auto& v : d.vertices) {
      nlohmann::json jv = {{"id", v.id},
                           {"name", v.name},
                           {"uid", v.uid},
                           {"parallelism", v.parallelism},
                           {"subtasks", nlohmann::json::array()}};
      for (const auto& t : v.subtasks) {
        nlohmann::json jt = {{"subtask", t.subtask},
                             {"state", thrift::to_string(t.state)},
                             {"taskManagerId", t.taskManagerId},
                             {"taskManagerAddress", t.taskManagerAddress},
                             {"recordsIn", t.recordsIn},
                             {"recordsOut", t.recordsOut},
                             {"busyMs", t.busyMs},
                             {"idleMs", t.idleMs},
                             {"backpressuredMs", t.backpressuredMs},
                             {"lateRecords", t.lateRecords}};
        if (t.watermark != weir::kMinWatermark) jt["watermark"] = t.watermark;
        if (t.__isset.failure) jt["failure"] = t.failure;
        jv["subtasks"].push_back(std::move(jt));
      }
      out["vertices"].push_back(std::move(jv));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  const auto& j = d.summary;
  std::printf("Job %s '%s': %s after %s\n", j.id.c_str(), j.name.c_str(),
              thrift::to_string(j.state).c_str(), seconds(j.durationMs).c_str());
  std::printf("plugin %s, %d slots, %d/%d subtasks running, %d finished\n", j.plugin.c_str(),
              j.parallelism, j.tasksRunning, j.tasksTotal, j.tasksFinished);
  if (j.restarts > 0 || j.lastCheckpointId > 0) {
    std::printf("restarts %d, last completed checkpoint %s\n", j.restarts,
                j.lastCheckpointId > 0 ? std::to_string(j.lastCheckpointId).c_str() : "none");
  }
  if (j.__isset.failure) std::printf("failure: %s\n", j.failure.c_str());
  for (const auto& v : d.vertices) {
    std::printf("\n%s (uid %s), parallelism %d\n", v.name.c_str(), v.uid.c_str(), v.parallelism);
    std::printf("  %-7s %-10s %-8s %-22s %12s %12s %6s %6s %6s %8s %s\n", "SUBTASK", "STATE", "TM",
                "ADDRESS", "RECORDS IN", "RECORDS OUT", "BUSY", "IDLE", "BACKPR", "LATE",
                "WATERMARK");
    for (const auto& t : v.subtasks) {
      const std::int64_t total = t.busyMs + t.idleMs;
      const std::string watermark = t.watermark == weir::kMinWatermark ? "-"
                                    : t.watermark == weir::kMaxWatermark
                                        ? "end"
                                        : std::to_string(t.watermark);
      std::printf("  %-7d %-10s %-8s %-22s %12lld %12lld %6s %6s %6s %8lld %s\n", t.subtask + 1,
                  thrift::to_string(t.state).c_str(),
                  t.taskManagerId.empty() ? "-" : t.taskManagerId.c_str(),
                  t.taskManagerAddress.empty() ? "-" : t.taskManagerAddress.c_str(),
                  static_cast<long long>(t.recordsIn), static_cast<long long>(t.recordsOut),
                  percent(t.busyMs - t.backpressuredMs, total).c_str(),
                  percent(t.idleMs, total).c_str(), percent(t.backpressuredMs, total).c_str(),
                  static_cast<long long>(t.lateRecords), watermark.c_str());
      if (t.__isset.failure) std::printf("          failure: %s\n", t.failure.c_str());
    }
  }
  return kExitOk;
}

int runCancel(const ClusterOptions& options, const std::string& job_id) {
  std::unique_ptr<AdminClient> client;
  if (int code = connectOrFail(options, client); code != kExitOk) return code;
  Status s = client->call([&](thrift::AdminServiceClient& c) { c.cancelJob(job_id); });
  if (!s.isOk()) return fail(explain(*client, s), kExitFailure);
  std::printf("Cancelled job %s\n", job_id.c_str());
  return kExitOk;
}

}  // namespace weir::cli
