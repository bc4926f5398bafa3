// The runtime side of the plugin boundary: what the engine and a plugin's typed code say to each
// other while a task runs. Users never touch these types; the SDK's templates implement the plugin
// side (detail/chain.h) and the engine implements the other (engine/runtime/).
//
// Concurrency model: one chain instance is driven by exactly one task thread, which makes every
// call below. Nothing here is shared between threads except VertexCounters, which other threads
// read.
//
// "Typed inside, bytes at the edge": inside a chain, records move as C++ objects by direct calls.
// At the chain's network outputs, the plugin serialises records straight into engine-owned buffers
// through a WriteCursor per channel; at its network input, the engine hands it whole data buffers.
// Control elements (watermarks, watermark status, end of input, checkpoint barriers) travel as
// separate event buffers that only the engine interprets; the engine combines the watermarks of a
// task's input channels and hands the chain the result (processWatermark).
//
// Data buffer format (the same bytes the network layer carries between TaskManagers):
//   a sequence of record frames:
//     [u32 word, little endian: bit 31 = a timestamp follows, bits 0..30 = payload length]
//     [i64 event timestamp, little endian, only when bit 31 is set]
//     [payload: Serde<T> bytes]
//   A frame's header (4 or 12 bytes) always lies within one buffer. Its payload may continue into
//   the next buffers of the same channel when it does not fit; a reader reassembles such a record.
//
// Time: event timestamps and watermarks are milliseconds since the Unix epoch (int64), as in
// Flink. Processing time is the TaskManager's wall clock in the same unit.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "weir/graph.h"
#include "weir/job_args.h"
#include "weir/kv_store.h"
#include "weir/status.h"

namespace weir {

// Version of the binary contract between engine and plugins. Bumped whenever any type in this
// header or the plugin descriptor changes incompatibly; it is part of the exported entry's name.
inline constexpr std::uint32_t kSdkAbiVersion = 5;

// Record frame header: the length word, and the timestamp when present.
inline constexpr std::size_t kFrameHeaderSize = 4;
inline constexpr std::size_t kTimestampSize = 8;
inline constexpr std::uint32_t kFrameTimestampFlag = 0x80000000u;

// A record without an event timestamp.
inline constexpr std::int64_t kNoTimestamp = std::numeric_limits<std::int64_t>::min();
// The watermark before any was seen, and the one that ends event time (end of input).
inline constexpr std::int64_t kMinWatermark = std::numeric_limits<std::int64_t>::min();
inline constexpr std::int64_t kMaxWatermark = std::numeric_limits<std::int64_t>::max();
// "No processing-time deadline".
inline constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();

// Where the next frame of one output channel goes. Owned by the engine; the plugin writes at `pos`
// and advances it, never past `end`. All three are null while the channel has no current buffer.
struct WriteCursor {
  std::uint8_t* begin = nullptr;
  std::uint8_t* pos = nullptr;
  std::uint8_t* end = nullptr;
};

// One network output of a task (one outgoing edge), with one channel per consumer subtask it feeds.
class OutputGate {
 public:
  virtual ~OutputGate() = default;
  virtual int numChannels() const noexcept = 0;
  // numChannels() cursors, valid for the gate's lifetime.
  virtual WriteCursor* cursors() noexcept = 0;
  // Hands the channel's current buffer (if it holds any bytes) to the consumer and installs a fresh
  // empty one. Blocks while no buffer is free: this is where back-pressure stops a producer.
  // Returns false when the task is being cancelled; the caller must then stop writing.
  virtual bool advance(int channel) noexcept = 0;
  // Hands every channel's current buffer to its consumer, then sends the event on every channel,
  // so the event follows all records written before it. Events need no buffer from the pool.
  virtual void emitWatermark(std::int64_t watermark) noexcept = 0;
  virtual void emitWatermarkStatus(bool idle) noexcept = 0;
};

struct NetworkOutputSpec {
  int edge_id = 0;
  Partitioner partitioner = Partitioner::kForward;  // resolved, never kDefault
  int num_channels = 1;  // 1 for forward, the consumer's parallelism otherwise
  int target_parallelism = 1;
  int target_max_parallelism = 1;
};

// Which part of the job graph one task runs: a chain of vertices joined by forward edges.
struct ChainSpec {
  std::string job_name;
  std::vector<int> vertex_ids;  // head first, in topological order
  int subtask_index = 0;
  int parallelism = 1;               // shared by every vertex of the chain
  std::vector<int> max_parallelism;  // per vertex, parallel to vertex_ids (resolved)
  int num_input_channels = 0;        // network input channels of the head (0 for a source head)
  std::vector<NetworkOutputSpec> outputs;  // index i is TaskEnvironment::outputGate(i)
  std::vector<std::string> vertex_uids;    // parallel to vertex_ids
  // Time and state, resolved by the engine from the job's arguments and its configuration.
  std::int64_t auto_watermark_interval_ms = 200;  // periodic watermark emission; 0 disables it
  StateBackendKind state_backend = StateBackendKind::kHeap;
  bool timers_in_kv_store = false;  // RocksDB backend: timers live in the store, not on the heap
  // The job takes checkpoints: output that must not be seen twice (two-phase-commit sinks) is only
  // committed once a checkpoint covering it completed. Without checkpoints such sinks commit when
  // their input ends.
  bool checkpointing = false;
};

// ---- Checkpoints ----
//
// The engine aligns a task's checkpoint barriers itself and calls the chain between records:
// snapshotState() once per checkpoint (the synchronous part: it must be quick, and returns bytes,
// or heap key groups frozen for a KeyGroupsWriter, that the engine writes out while records flow
// again), notifyCheckpointComplete() once the whole checkpoint is durable,
// notifyCheckpointAborted() when it was given up. restoreState() hands a new chain the state of
// the checkpoint the job resumes from, before open().
//
// Keyed state on the heap backend travels as bytes per key group (the chain's own format, opaque to
// the engine); keyed state in RocksDB stays in the stores the engine opened (openKvStore) and is
// checkpointed and restored by the engine.

struct CheckpointOptions {
  std::int64_t checkpoint_id = 0;
  std::int64_t timestamp_ms = 0;  // when the coordinator triggered it (Unix ms)
  bool savepoint = false;
  // A stop-with-savepoint: no record follows this snapshot in this attempt of the job.
  bool stop = false;
};

// Heap keyed state frozen by snapshotState(): the engine calls write() once, on its checkpoint
// writer's thread, while the chain goes on processing records (and may snapshot again). It fills
// one entry per key group of the subtask's range, as VertexSnapshot::key_groups would hold them.
// The writer reads nothing the chain changes; it must be destroyed before the plugin is unloaded.
class KeyGroupsWriter {
 public:
  virtual ~KeyGroupsWriter() = default;
  virtual Status write(std::vector<std::string>& key_groups) noexcept = 0;
};

// What one vertex of a chain holds at a checkpoint.
struct VertexSnapshot {
  int vertex_id = 0;
  // The vertex's operator (non-keyed) state, encoded; empty when it has none.
  std::string operator_state;
  // Heap keyed state: one entry per key group of the subtask's range, from key_group_start on,
  // either as bytes already or (key_groups empty) from key_groups_writer. Both are empty for a
  // vertex without keyed state, or whose keyed state lives in a RocksDB store.
  int key_group_start = 0;
  std::vector<std::string> key_groups;
  std::unique_ptr<KeyGroupsWriter> key_groups_writer;
};

struct ChainSnapshot {
  std::vector<VertexSnapshot> vertices;  // one per vertex of the chain, in chain order
};

// The state one vertex of a new chain resumes from (possibly taken at another parallelism: the
// engine has already redistributed operator state and picked the key groups of this subtask).
struct VertexRestore {
  int vertex_id = 0;
  std::string operator_state;  // encoded, as in VertexSnapshot; empty: none
  int key_group_start = 0;     // the subtask's range
  std::vector<std::string> key_groups;  // heap keyed state per key group; empty: none
};

struct ChainRestore {
  std::int64_t checkpoint_id = 0;
  std::vector<VertexRestore> vertices;  // vertices without state may be absent
};

// Records counted per vertex and subtask. Written by the task thread (relaxed, once per batch),
// read by any thread.
struct VertexCounters {
  std::atomic<std::uint64_t> records_in{0};
  std::atomic<std::uint64_t> records_out{0};
  // Records that arrived with a timestamp below the operator's current watermark.
  std::atomic<std::uint64_t> late_records{0};
  // The operator's current input watermark (kMinWatermark before the first).
  std::atomic<std::int64_t> watermark{kMinWatermark};
  void addIn(std::uint64_t n) {
    records_in.store(records_in.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void addOut(std::uint64_t n) {
    records_out.store(records_out.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void addLate(std::uint64_t n) {
    late_records.store(late_records.load(std::memory_order_relaxed) + n,
                       std::memory_order_relaxed);
  }
};

// Provided by the engine to one chain instance, for its whole life.
class TaskEnvironment {
 public:
  virtual ~TaskEnvironment() = default;
  virtual const JobArgs& args() const noexcept = 0;
  virtual OutputGate& outputGate(std::size_t index) noexcept = 0;
  // Processing time: milliseconds since the Unix epoch.
  virtual std::int64_t currentProcessingTime() const noexcept = 0;
  // The key-value store of one keyed operator of this chain (RocksDB backend only): created on
  // first call, empty, private to this subtask; dropped with its files when the task ends.
  virtual Status openKvStore(int vertex_id, KvStore*& out) noexcept = 0;
};

// How much of the bytes it was given one ChainInstance::processInput call read.
struct InputProgress {
  std::size_t bytes = 0;
  std::size_t records = 0;  // handed to the head operator (one the bytes completed included)
};

enum class SourceStatus : std::uint8_t {
  kMoreAvailable,     // call pollSource again at once
  kNothingAvailable,  // nothing now; the engine backs off briefly before polling again
  kEndOfInput,        // the source is exhausted
};

// A running chain, implemented in the plugin. Every method is noexcept: user exceptions are caught
// inside and returned as a failed Status naming the operator. After any failure the engine calls
// close() and then destroys the instance.
class ChainInstance {
 public:
  virtual ~ChainInstance() = default;
  // Opens every operator, the tail first.
  virtual Status open() noexcept = 0;
  // Source chains: runs the source once, asking for at most `max_records` records (at least one;
  // a source may emit more), and pushes what it emitted through the chain. `emitted` is set to
  // the number of records the source emitted.
  virtual Status pollSource(std::size_t max_records, SourceStatus& status,
                            std::size_t& emitted) noexcept = 0;
  // Other chains: the records of one data buffer from network input channel `channel`, or of what
  // is left of it: at most `max_records` of them (at least one) and at most one batch per call.
  // `progress` tells how many bytes were read: all of them, or fewer, and then the engine calls
  // again with the rest, which starts with a record frame (between the calls it may take a
  // checkpoint barrier or wait for output buffers). A record the bytes end within is kept by the
  // chain, and its bytes count as read. The bytes are only borrowed for the duration of the call.
  virtual Status processInput(int channel, const std::uint8_t* data, std::size_t size,
                              std::size_t max_records, InputProgress& progress) noexcept = 0;
  // The task's combined input watermark advanced (for a source chain: end of input, with
  // kMaxWatermark). Operators fire their event-time timers and pass it on.
  virtual Status processWatermark(std::int64_t watermark) noexcept = 0;
  // Every input of the task became idle (true), or one became active again (false).
  virtual Status processWatermarkStatus(bool idle) noexcept = 0;
  // Fires what is due at processing time `now` (timers, periodic watermarks).
  virtual Status onProcessingTime(std::int64_t now) noexcept = 0;
  // The earliest processing time at which onProcessingTime has work, or kNoDeadline. May change
  // after any call into the chain.
  virtual std::int64_t nextProcessingTime() const noexcept = 0;
  // Every input has ended (or the source has): operators emit what they still hold.
  virtual Status endInput() noexcept = 0;
  // Restores checkpointed state; called at most once, before open().
  virtual Status restoreState(const ChainRestore& restore) noexcept = 0;
  // The synchronous part of checkpoint `options.checkpoint_id`: every operator prepares (a
  // two-phase-commit sink pre-commits) and the chain fills `out`. Called between records, after
  // the chain's output for everything before the barrier was written to the output gates.
  virtual Status snapshotState(const CheckpointOptions& options, ChainSnapshot& out) noexcept = 0;
  // Checkpoint `checkpoint_id` is complete (durable for the whole job); a sink commits what it
  // pre-committed for it and earlier checkpoints.
  virtual Status notifyCheckpointComplete(std::int64_t checkpoint_id) noexcept = 0;
  virtual Status notifyCheckpointAborted(std::int64_t checkpoint_id) noexcept = 0;
  // Closes every operator, head first. Called exactly once, also after a failure.
  virtual Status close() noexcept = 0;
  // Counters of one vertex of this chain, or null for a vertex not in it.
  virtual const VertexCounters* counters(int vertex_id) const noexcept = 0;
  // Appends to `out` the bytes of the record frame of input channel `channel` that the chain has
  // read only in part (its frame header and the payload so far, as they arrived); nothing when
  // the channel's input so far ends at a record boundary. An unaligned checkpoint keeps these
  // bytes ahead of the channel's in-flight buffers, so that replaying them reassembles the record.
  virtual Status partialInput(int channel, std::string& out) noexcept = 0;
};

// A built job inside a plugin: the logical graph plus the typed operators behind it. Created by the
// plugin's builder entry; destroyed by the engine before the library is unloaded.
class JobProgram {
 public:
  virtual ~JobProgram() = default;
  virtual const LogicalGraph& graph() const noexcept = 0;
  // Instantiates the operators of one chain for one subtask. `env` outlives the chain.
  virtual Status createChain(const ChainSpec& spec, TaskEnvironment& env,
                             std::unique_ptr<ChainInstance>& out) noexcept = 0;
};

}  // namespace weir
