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
