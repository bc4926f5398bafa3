// Control and admin services of a Weir cluster.
//
//   AdminService       on the JobManager, for the weir CLI (jobmanager.admin.port)
//   JobManagerService  on the JobManager, for TaskManagers (jobmanager.rpc.port)
//   TaskManagerService on each TaskManager, for the JobManager (taskmanager.rpc.port)
//
// Transport: framed, compact protocol. Every call that can be refused throws WeirError with a
// one-line message meant for a person.

namespace cpp weir.thrift

enum ErrorCode {
  INVALID_ARGUMENT = 1,
  NOT_FOUND = 2,
  CORRUPTION = 3,
  FAILED = 4,
  INCOMPATIBLE = 5,
  UNAVAILABLE = 6,
  INTERNAL = 7,
}

exception WeirError {
  1: required ErrorCode code
  2: required string message
}

// ---- TaskManager <-> JobManager ----

struct TaskManagerRegistration {
  1: required string resourceId      // unique per TaskManager process start
  2: required string host
  3: required i32 rpcPort
  4: required i32 numSlots
}

struct RegistrationResponse {
  1: required string taskManagerId
  2: required string jobManagerId    // changes when a JobManager restarts
  3: required i64 heartbeatIntervalMs
  4: required i64 heartbeatTimeoutMs
}

struct TaskManagerHeartbeat {
  1: required string taskManagerId
  2: required string jobManagerId
}

struct HeartbeatResponse {
  // False when the JobManager does not know this TaskManager (lost, or the JobManager restarted):
  // the TaskManager then cancels its tasks and registers again.
  1: required bool known
}

service JobManagerService {
  RegistrationResponse registerTaskManager(1: TaskManagerRegistration registration)
      throws (1: WeirError error)
  HeartbeatResponse heartbeat(1: TaskManagerHeartbeat heartbeat) throws (1: WeirError error)
}

service TaskManagerService {
  // The JobManager's half of the two-way heartbeat; refused when `jobManagerId` is not the
  // JobManager this TaskManager is registered with.
  void heartbeat(1: string jobManagerId) throws (1: WeirError error)
}

// ---- Admin ----

enum TaskManagerState {
  ALIVE = 1,
  LOST = 2,
}

struct TaskManagerInfo {
  1: required string id
  2: required string host
  3: required i32 rpcPort
  4: required i32 slots
  5: required i32 freeSlots
  6: required TaskManagerState state
  7: required i64 lastHeartbeatAgeMs
  8: required i64 registeredAtMs     // unix time
  9: optional string lostReason
}

struct ClusterInfo {
  1: required string jobManagerId
  2: required string version
  3: required i64 startedAtMs
}

service AdminService {
  ClusterInfo clusterInfo() throws (1: WeirError error)
  list<TaskManagerInfo> listTaskManagers() throws (1: WeirError error)
}
