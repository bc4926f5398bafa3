// CLI commands that talk to a running JobManager's admin service.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "AdminService.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/rpc.h"

namespace weir::cli {

namespace {

using AdminClient = engine::RpcClient<thrift::AdminServiceClient>;

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

const char* stateName(thrift::TaskManagerState::type s) {
  return s == thrift::TaskManagerState::ALIVE ? "ALIVE" : "LOST";
}

}  // namespace

int runTaskManagers(const ClusterOptions& options) {
  auto client = connectAdmin(options);
  if (!client.isOk()) {
    return fail(client.status(), client.status().code() == Status::Code::kInvalidArgument
                                     ? kExitUsage
                                     : kExitFailure);
  }
  std::vector<thrift::TaskManagerInfo> tms;
  Status s = (*client)->call([&](thrift::AdminServiceClient& c) { c.listTaskManagers(tms); });
  if (!s.isOk()) return fail(explain(**client, s), kExitFailure);

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
    std::printf("%-8s %-22s %5d %5d  %-6s %.1f s ago%s\n", tm.id.c_str(), address.c_str(),
                tm.slots, tm.freeSlots, stateName(tm.state), tm.lastHeartbeatAgeMs / 1000.0,
                tm.__isset.lostReason ? ("  (" + tm.lostReason + ")").c_str() : "");
  }
  if (tms.empty()) std::printf("(no TaskManagers registered)\n");
  return kExitOk;
}

}  // namespace weir::cli
