// Control and admin services of a Weir cluster.
//
//   AdminService       on the JobManager, for the weir CLI (jobmanager.admin.port)
//   JobManagerService  on the JobManager, for TaskManagers (jobmanager.rpc.port)
//   TaskManagerService on each TaskManager, for the JobManager (taskmanager.rpc.port)
//
// Transport: framed, compact protocol. Every call that can be refused throws WeirError with a
// one-line message meant for a person.

include "checkpoint.thrift"
include "jobgraph.thrift"

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
  5: required i32 dataPort           // the data plane (taskmanager.data.port, resolved)
}

struct RegistrationResponse {
  1: required string taskManagerId
  2: required string jobManagerId    // changes when a JobManager restarts
  3: required i64 heartbeatIntervalMs
  4: required i64 heartbeatTimeoutMs
}

// The life of one subtask, as in Flink.
enum ExecutionState {
  CREATED = 1,      // waiting for slots
  DEPLOYING = 2,    // sent to its TaskManager: plugin fetched and loaded, channels wired
  RUNNING = 3,
  FINISHED = 4,
  CANCELING = 5,
  CANCELED = 6,
  FAILED = 7,
}

struct VertexRecords {
  1: required i32 vertexId
  2: required i64 recordsIn
  3: required i64 recordsOut
  4: optional i64 lateRecords = 0
  5: optional i64 watermark = -9223372036854775808  // the vertex's input watermark, ms
}

// What a TaskManager reports about one of its subtasks: state changes as they happen, metrics
// with every heartbeat.
struct TaskStatus {
  1: required string jobId
  2: required i32 chainId
  3: required i32 subtask
  4: required ExecutionState state
  5: optional string failure
  6: required i64 busyMs
  7: required i64 idleMs
  8: required i64 backpressuredMs       // waiting for an output buffer or for credit
  9: required list<VertexRecords> vertices
  10: optional i32 attempt = 0          // of the job's deployment the subtask belongs to
  11: optional bool endOfData = false   // all its input has ended; waiting for a final checkpoint
}

struct TaskManagerHeartbeat {
  1: required string taskManagerId
  2: required string jobManagerId
  3: optional list<TaskStatus> tasks    // every subtask the TaskManager hosts
}

struct SubtaskId {
  1: required i32 chainId
  2: required i32 subtask
}

// One subtask for a TaskManager to run. The TaskManager plans the job from the graph itself (the
// plan is a function of the graph) and checks the result against what it was sent.
struct TaskDeploymentDescriptor {
  1: required i32 chainId
  2: required i32 subtask
  3: required i32 parallelism
  4: required list<string> vertexUids          // the chain's vertices, head first
  5: required list<string> inputAddresses      // per input channel: the producer's data address
  6: required list<list<string>> outputAddresses  // [output][channel]: the consumer's data address
  7: optional checkpoint.TaskRestore restore    // the state the subtask resumes from
}

// How a job's subtasks take part in checkpoints and savepoints.
struct JobCheckpointing {
  1: required string jobDir            // absolute <state.checkpoints.dir>/<job id>; empty: none
  2: optional bool incremental = true  // RocksDB: upload only new SST files
  3: optional bool unaligned = false
  4: optional i64 alignedTimeoutMs = 0 // unaligned: start aligned, switch after this long
  // Periodic checkpoints are on: a subtask whose input ended waits for a checkpoint covering it
  // before it finishes, and two-phase-commit sinks commit only on completed checkpoints.
  5: optional bool periodic = false
}

// One checkpoint or savepoint, as the coordinator triggers it at the sources (and as barriers
// carry it through the job).
struct CheckpointTrigger {
  1: required i64 checkpointId
  2: required i64 timestampMs
  3: optional bool savepoint = false
  4: optional bool stop = false        // stop-with-savepoint: sources stop after the barrier
  5: optional bool drain = false       // stop-with-savepoint --drain: end event time first
  6: required string targetDir         // absolute: where this checkpoint's own files go
}

// Everything a TaskManager needs to run its share of a job.
struct JobDeployment {
  1: required string jobId
  2: required jobgraph.JobGraph graph           // with the job's arguments
  3: required string pluginHash                 // SHA-256 of the plugin file, hex
  4: required i64 pluginSize
  5: required list<TaskDeploymentDescriptor> tasks
  6: optional i32 attempt = 0          // restarts so far; names the deployment's channels
  7: optional JobCheckpointing checkpointing
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
  // State changes of subtasks (metrics included), sent as they happen.
  void updateTaskStatus(1: string taskManagerId, 2: list<TaskStatus> statuses)
      throws (1: WeirError error)
  // A subtask's state for a checkpoint is durable.
  void acknowledgeCheckpoint(1: string taskManagerId, 2: checkpoint.CheckpointAck ack)
      throws (1: WeirError error)
  // A subtask could not take its part of a checkpoint: the checkpoint fails.
  void declineCheckpoint(1: string taskManagerId, 2: string jobId, 3: i32 attempt,
                         4: i64 checkpointId, 5: i32 chainId, 6: i32 subtask, 7: string reason)
      throws (1: WeirError error)
  // Part of a stored plugin (length at most 8 MiB; shorter at the end).
  binary fetchBlob(1: string sha256, 2: i64 offset, 3: i32 length) throws (1: WeirError error)
}

service TaskManagerService {
  // The JobManager's half of the two-way heartbeat; refused when `jobManagerId` is not the
  // JobManager this TaskManager is registered with.
  void heartbeat(1: string jobManagerId) throws (1: WeirError error)
  // Starts this TaskManager's subtasks of a job. Returns once accepted; progress (DEPLOYING,
  // RUNNING, ...) is reported through updateTaskStatus.
  void deployTasks(1: string jobManagerId, 2: JobDeployment deployment) throws (1: WeirError error)
  // Cancels every subtask of the job here (no error when none runs).
  void cancelJob(1: string jobManagerId, 2: string jobId) throws (1: WeirError error)
  // Starts a checkpoint at the listed subtasks of the job's deployment `attempt` that run here:
  // its sources, and subtasks whose input has ended (they get no barrier).
  void triggerCheckpoint(1: string jobManagerId, 2: string jobId, 3: i32 attempt,
                         4: CheckpointTrigger trigger, 5: list<SubtaskId> subtasks)
      throws (1: WeirError error)
  void notifyCheckpointComplete(1: string jobManagerId, 2: string jobId, 3: i32 attempt,
                                4: i64 checkpointId) throws (1: WeirError error)
  void notifyCheckpointAborted(1: string jobManagerId, 2: string jobId, 3: i32 attempt,
                               4: i64 checkpointId) throws (1: WeirError error)
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

enum JobState {
  CREATED = 1,      // waiting for slots
  RUNNING = 2,
  CANCELLING = 3,
  FINISHED = 4,
  CANCELED = 5,
  FAILED = 6,
  RESTARTING = 7,   // a subtask failed: cancelling, then waiting out the restart delay
}

struct JobSubmission {
  1: required jobgraph.JobGraph graph           // built by the client from the plugin
  2: required string pluginHash                 // of an upload finished with finishUpload
  3: required string pluginName
  4: required string pluginVersion
  5: optional string fromSavepoint              // savepoint (or checkpoint) directory to resume
  6: optional bool allowNonRestoredState = false  // state of operators the job lacks is dropped
}

enum CheckpointStatus {
  IN_PROGRESS = 1,
  COMPLETED = 2,
  FAILED = 3,
}

struct CheckpointInfo {
  1: required i64 id
  2: required CheckpointStatus status
  3: required bool savepoint
  4: required i64 triggeredAtMs                 // unix time
  5: required i64 durationMs                    // so far, or until it ended
  6: required i32 acknowledged                  // subtasks
  7: required i32 total
  8: required i64 checkpointedSize              // bytes written by this checkpoint
  9: required i64 stateSize                     // bytes of state it references
  10: optional string path                      // its directory, once completed
  11: optional string failure
  12: optional bool restoredFrom = false        // the job's current attempt resumed from it
}

struct JobSummary {
  1: required string id
  2: required string name
  3: required JobState state
  4: required i64 submittedAtMs                 // unix time
  5: required i64 durationMs                    // so far, or until it ended
  6: required i32 parallelism                   // the largest vertex parallelism = slots used
  7: required i32 tasksTotal
  8: required i32 tasksRunning
  9: required i32 tasksFinished
  10: optional string failure
  11: required string plugin                    // "name version (sha256 prefix)"
  12: optional i32 restarts = 0
  13: optional i64 lastCheckpointId = 0         // newest completed (0: none)
}

struct SubtaskInfo {
  1: required i32 subtask
  2: required ExecutionState state
  3: required string taskManagerId              // empty while not deployed
  4: required string taskManagerAddress         // host:rpcPort
  5: required i64 recordsIn
  6: required i64 recordsOut
  7: required i64 busyMs
  8: required i64 idleMs
  9: required i64 backpressuredMs
  10: optional string failure
  11: optional i64 lateRecords = 0               // records behind the watermark on arrival
  12: optional i64 watermark = -9223372036854775808  // event time (ms); the minimum: none yet
}

struct VertexInfo {
  1: required i32 id
  2: required string name
  3: required string uid
  4: required i32 parallelism
  5: required list<SubtaskInfo> subtasks
}

struct JobDetails {
  1: required JobSummary summary
  2: required list<VertexInfo> vertices
}

service AdminService {
  ClusterInfo clusterInfo() throws (1: WeirError error)
  list<TaskManagerInfo> listTaskManagers() throws (1: WeirError error)

  // Plugin upload in chunks: begin, chunks in order, finish with the SHA-256 the client computed.
  // The JobManager verifies it and stores the plugin under it.
  string beginUpload(1: i64 size) throws (1: WeirError error)
  void uploadChunk(1: string uploadId, 2: i64 offset, 3: binary data) throws (1: WeirError error)
  string finishUpload(1: string uploadId, 2: string sha256) throws (1: WeirError error)

  // Returns the new job's id once the graph is accepted; the job then waits for slots.
  string submitJob(1: JobSubmission submission) throws (1: WeirError error)
  list<JobSummary> listJobs() throws (1: WeirError error)
  JobDetails jobDetails(1: string jobId) throws (1: WeirError error)
  void cancelJob(1: string jobId) throws (1: WeirError error)

  // Takes a savepoint into `targetDir` (empty: state.savepoints.dir) and returns its directory
  // once complete.
  string triggerSavepoint(1: string jobId, 2: string targetDir) throws (1: WeirError error)
  // Takes a savepoint, then finishes the job; `drain` ends event time first (every timer fires).
  string stopWithSavepoint(1: string jobId, 2: string targetDir, 3: bool drain)
      throws (1: WeirError error)
  // The job's checkpoints and savepoints, newest first: those in progress, completed, failed.
  list<CheckpointInfo> listCheckpoints(1: string jobId) throws (1: WeirError error)
}
