// How CLI commands reach a running JobManager's admin service.
#pragma once

#include <memory>

#include "AdminService.h"
#include "cli/commands.h"
#include "common/rpc.h"

namespace weir::cli {

using AdminClient = engine::RpcClient<thrift::AdminServiceClient>;

// Where the JobManager's admin service is: --jobmanager, else the configuration file, else the
// defaults. Errors are usage errors (bad --jobmanager) or configuration errors.
Result<std::unique_ptr<AdminClient>> connectAdmin(const ClusterOptions& options);

// connectAdmin, or prints why not and returns the exit code (usage error for a bad --jobmanager).
int connectOrFail(const ClusterOptions& options, std::unique_ptr<AdminClient>& out);

// Turns a transport failure into the message a user needs ("cannot reach the JobManager at ...").
Status explain(const AdminClient& client, const Status& s);

// Prints "weir: <message>" to stderr and returns `code`.
int fail(const Status& status, int code);

}  // namespace weir::cli
