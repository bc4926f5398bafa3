// Checkpoint and savepoint metadata: the `_metadata` file of a completed checkpoint, written last.
// Serialised with the compact protocol and followed by a trailer (see
// engine/checkpoint/checkpoint_storage.h). Fields without `required` are always written and may be
// absent on read; fields added later must not be `required`, so older files still load.

namespace cpp weir.thrift

enum KeyedStateKind {
  HEAP_FULL = 1,
  ROCKSDB_INCREMENTAL = 2,
}

// A file written by a snapshot. `path` is relative to the job's checkpoint root
// (`<root>/<job-id>/`), e.g. `chk-7/op-3-0.heap` or `shared/abcd.sst`; in a savepoint it is
// relative to the savepoint directory.
struct StateFile {
  1: required string path
  2: required i64 size
  3: required string sha256
}

struct KeyedStateHandle {
  1: required i32 keyGroupStart
  2: required i32 keyGroupEnd  // inclusive
  3: required KeyedStateKind kind
  4: list<StateFile> privateFiles = []
  5: list<StateFile> sharedFiles = []
}

struct SubtaskState {
  1: required i32 subtask
  2: binary operatorState
  3: list<KeyedStateHandle> keyed = []
  // Unaligned checkpoints, on the chain head's vertex: the input channels' in-flight buffers the
  // subtask persisted (one file; see StreamTask), replayed before its input on restore.
  4: list<StateFile> inputChannelState = []
  // Unaligned checkpoints, on the chain head's vertex: the buffers of its output channels to
  // other TaskManagers that the barriers overtook there (one file), sent again on restore before
  // anything else.
  5: list<StateFile> outputChannelState = []
}

struct OperatorState {
  1: required string uid
  2: required i32 parallelism
  3: required i32 maxParallelism
  4: list<SubtaskState> subtasks = []
}

struct CheckpointMetadata {
  1: required i32 formatVersion
  2: required string jobId
  3: required i64 checkpointId
  4: required i64 timestampMs
  5: bool isSavepoint = false
  6: string stateBackend
  7: list<OperatorState> operators = []
}

// One vertex's state in one subtask: what a subtask acknowledges for a checkpoint, and what a
// restored subtask is given (operator state already redistributed, the keyed handles that overlap
// its key groups).
struct VertexSubtaskState {
  1: required string uid
  2: binary operatorState
  3: list<KeyedStateHandle> keyed = []
  4: list<StateFile> inputChannelState = []   // as in SubtaskState
  5: list<StateFile> outputChannelState = []  // as in SubtaskState
}

// How one subtask's part of a checkpoint went.
struct SubtaskCheckpointStats {
  1: i64 alignmentDurationMs = 0   // first barrier to the last one
  2: i64 syncDurationMs = 0        // the task's pause for the snapshot
  3: i64 asyncDurationMs = 0       // writing the files, while records flow
  4: i64 checkpointedSize = 0      // bytes this checkpoint wrote for the subtask
  5: i64 stateSize = 0             // bytes of state the subtask's handles reference
}

// A subtask's part of a checkpoint, sent to the JobManager once its state is durable.
struct CheckpointAck {
  1: required string jobId
  2: required i32 attempt
  3: required i64 checkpointId
  4: required i32 chainId
  5: required i32 subtask
  6: list<VertexSubtaskState> vertices = []
  7: SubtaskCheckpointStats stats
}

// Where a restored subtask's state comes from.
struct TaskRestore {
  1: required i64 checkpointId
  2: required string baseDir       // absolute: the state files' paths are relative to it
  3: list<VertexSubtaskState> vertices = []
}
