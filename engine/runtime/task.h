// A task: one subtask of one chain, run on its own thread.
//
// Concurrency model: the task thread owns the chain instance, its result partitions and the
// consuming end of its input gate; it makes every call into plugin code. Other threads only push
// buffers into the gate, recycle buffers into the partitions' pools, read the atomic counters and
// call cancel(), which sets a flag and wakes the thread wherever it waits (gate, pool, idle
// source).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "checkpoint_types.h"
#include "runtime/checkpoint_writer.h"
#include "runtime/execution_plan.h"
#include "runtime/network/input_gate.h"
#include "runtime/network/result_partition.h"
#include "runtime/plugin_loader.h"
#include "runtime/state_timer.h"
#include "runtime/watermark_valve.h"
#include "state/rocksdb_kv_store.h"
#include "weir/job_args.h"
#include "weir/status.h"
#include "weir/task_api.h"

namespace weir::engine {

enum class TaskState : int { kCreated, kRunning, kFinished, kCanceled, kFailed };
const char* taskStateName(TaskState s);

struct TaskMetrics {
  StateTimer busy;           // processing, including back-pressured time
  StateTimer idle;           // waiting for input
  StateTimer backpressured;  // waiting for an output buffer
};

// How a task takes part in its job's checkpoints.
struct TaskCheckpointing {
  bool enabled = false;   // barriers and snapshots
  bool periodic = false;  // the job checkpoints periodically: wait for a final checkpoint
  std::filesystem::path job_dir;  // <state.checkpoints.dir>/<job id>
  bool incremental = true;        // RocksDB: upload only SST files the last checkpoint lacks
  // Unaligned checkpoints (savepoints stay aligned): with aligned_timeout 0 every checkpoint is
  // unaligned from its first barrier; otherwise a checkpoint starts aligned and switches to
  // unaligned at a task whose alignment lasts longer than aligned_timeout.
  bool unaligned = false;
  std::chrono::milliseconds aligned_timeout{0};
  AsyncCheckpointWriter* writer = nullptr;
  // Called on the writer's thread once the subtask's part is durable, or when it failed.
  std::function<void(thrift::CheckpointAck)> acknowledge;
  std::function<void(std::int64_t checkpoint_id, const std::string& reason)> decline;
  // Called on the task thread once all its input has ended and it waits for a final checkpoint.
  std::function<void()> end_of_data;
};

// Checkpoints as the task sees them (the barrier handler of Flink's stream tasks):
//   - a source task takes checkpoint n when the coordinator triggers it: it snapshots its chain,
//     then emits barrier n on every output, so the barrier follows every record the snapshot
//     covers;
//   - a task with inputs takes it when barrier n arrived on every input channel (channels that
//     ended count as having delivered it); a channel that delivered barrier n is held back until
//     then (alignment), so no record after the barrier enters the snapshot. A newer barrier
//     abandons an older alignment (that checkpoint is declined);
//   - unaligned checkpoints: a task with inputs takes checkpoint n at the FIRST barrier n (or when
//     its alignment outlasts aligned_timeout), forwards barrier n as a priority event that
//     overtakes its queued output, and does not block channels. Until barrier n arrived on a
//     channel c, every data buffer read from c is copied into the checkpoint's in-flight state
//     (and processed as usual); so are the overtaken(c) buffers queued behind barrier n in the
//     gate (the data sent before the barrier that it overtook there). The record frame a channel
//     was in the middle of at the snapshot (ChainInstance::partialInput) leads that channel's
//     state, so a record cut by the snapshot is reassembled on replay. Once every channel is
//     complete (or ended) the in-flight input is written as one file (channel_state_file.h) by
//     the asynchronous part, and restored subtasks replay it before reading their input. What
//     barrier n overtakes in this task's own send queues to other TaskManagers (buffers waiting
//     for credit) is its in-flight output, taken in the synchronous part and written as a second
//     file; a restored task sends it again before emitting anything else. So no checkpoint waits
//     for credit: each side persists what waits on its side;
//   - with aligned_timeout, an aligned barrier n still waiting in a send queue to another
//     TaskManager when the timeout expires overtakes the data there as an unaligned one, and that
//     data becomes this task's in-flight output of checkpoint n. So this task acknowledges n only
//     once each of its barriers n left its queues, or overtook (settling_);
//   - a task does not take an input buffer while an output has no free buffer: it waits between
//     records, where mail and barriers reach it (an unaligned barrier is taken from the head of
//     its channel at once); a record that needs more buffers than were free draws on its pool's
//     overdraft rather than block halfway;
//   - a task hands its chain an input buffer in parts: as many records per call as took about a
//     millisecond in the call before (one for a slow operator, a batch for a fast one). Between
//     the calls it handles mail, waits for output buffers, and takes barriers: an aligned one on
//     the buffer's own channel only after the buffer, an unaligned one at once, and then the part
//     of the buffer not read yet leads that channel's in-flight input. A source task asks each
//     poll for as many records the same way (Collector::pollBudget, which the built-in sources
//     keep to), so a trigger reaches it soon even when its chain is slow, and a poll that blocked
//     for output buffers is followed by smaller ones;
//   - the synchronous part snapshots the chain (operator state; heap key groups are frozen, not
//     copied) and takes a local RocksDB checkpoint of each store (hard links); the asynchronous
//     part, on the job's writer thread, serialises the frozen key groups, writes files and
//     acknowledges with their handles;
//   - with checkpointing on, a task whose input ended does not finish at once: it ends its
//     outputs, tells the coordinator, and takes part in every checkpoint until the job's last one
//     (triggered once every subtask ended its data, marked `stop`) completed, so that
//     two-phase-commit sinks commit their last output and a restore from any checkpoint finds the
//     state of every subtask.
class StreamTask final : public TaskEnvironment {
 public:
  struct Options {
    std::chrono::milliseconds buffer_timeout{10};
    std::chrono::milliseconds auto_watermark_interval{200};
    StateBackendKind state_backend = StateBackendKind::kHeap;
    bool timers_in_kv_store = false;  // RocksDB backend only
    // Names the task's RocksDB stores (with the vertex uid and subtask): the job id, unique among
    // the jobs on this TaskManager.
    std::string job_id;
    // Where openKvStore opens stores; null: the RocksDB backend is not available.
    LazyRocksDbResources* rocksdb = nullptr;
  };

  StreamTask(TaskDeployment deployment, JobArgs args, Options options);
  ~StreamTask() override;

  // Set-up, before init(): outputs in the order of deployment().spec.outputs.
  void addOutput(std::unique_ptr<ResultPartition> partition);
  InputGate* inputGate() { return gate_.get(); }
  const std::atomic<bool>* cancelFlag() const { return &cancelled_; }
  StateTimer* backpressureTimer() { return &metrics_.backpressured; }

  // Set-up, before init().
  void setCheckpointing(TaskCheckpointing checkpointing);
  void setRestore(thrift::TaskRestore restore);

  // Instantiates the chain's operators from the program (and restores their state).
  Status init(const ProgramPtr& program);

  // From any thread: start checkpoint `barrier` at this task (a source, or a task whose input
  // ended); the checkpoint completed or was aborted. They run on the task thread between records.
  void triggerCheckpoint(std::shared_ptr<const CheckpointBarrier> barrier);
  void notifyCheckpoint(std::int64_t checkpoint_id, bool completed);

  // The thread body: open, process until end of input or cancellation, close. Calls `on_done`
  // once at the end, on the task thread.
  void run();
  void cancel();
  // Ends the task as failed with `reason` (from outside the task thread: a broken channel). The
  // first reason wins; a task that already ended is left alone.
  void fail(const Status& reason);

  TaskState state() const { return state_.load(std::memory_order_acquire); }
  // The failure (or cancellation) reason once the task has ended.
  Status result() const;
  const TaskDeployment& deployment() const { return deployment_; }
  const TaskMetrics& metrics() const { return metrics_; }
  const VertexCounters* counters(int vertex_id) const;
  const std::vector<std::unique_ptr<ResultPartition>>& outputs() const { return outputs_; }

  std::function<void(StreamTask&)> on_done;

  // TaskEnvironment
  const JobArgs& args() const noexcept override { return args_; }
  OutputGate& outputGate(std::size_t index) noexcept override { return *outputs_[index]; }
  std::int64_t currentProcessingTime() const noexcept override;
  // Opens the RocksDB store of one keyed operator of this chain, named
  // rocksDbStoreName(job id, vertex uid, subtask); the same store on later calls. Stores are
  // closed and their files deleted when the task ends, after the chain closed.
  Status openKvStore(int vertex_id, KvStore*& out) noexcept override;
  // RocksDB stores open right now (for tests).
  std::size_t openKvStores() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Mail {
    enum Kind { kTrigger, kComplete, kAbort } kind = kTrigger;
    std::shared_ptr<const CheckpointBarrier> barrier;
    std::int64_t checkpoint_id = 0;
  };
  void post(Mail mail);
  Status processMail();
  bool hasMail() const { return has_mail_.load(std::memory_order_acquire); }
  // Checkpoints.
  Status onBarrier(int channel, const std::shared_ptr<const CheckpointBarrier>& barrier,
                   std::int64_t overtaken);
  // Unaligned checkpoints: takes `barrier` (a checkpoint, not a savepoint) now, as an unaligned
  // one, and starts capturing in-flight data. `channel` delivered it (-1: the aligned timeout
  // expired) having overtaken `overtaken` data buffers; channels marked in `received` delivered it
  // aligned already.
  Status startUnaligned(const std::shared_ptr<const CheckpointBarrier>& barrier, int channel,
                        std::int64_t overtaken, const std::vector<char>& received);
  // Barrier of the captured checkpoint on `channel`, having overtaken the `overtaken` data
  // buffers queued behind it in the gate: they are copied, and the channel is complete.
  void captureBarrier(int channel, std::int64_t overtaken);
  // Copies a data buffer of `channel` into the in-flight state when the channel is being captured.
  void captureData(int channel, const Buffer& buffer);
  void completeChannel(int channel);
  void abandonCapture(const std::string& reason);
  // Whether checkpoints start aligned and switch to unaligned after aligned_timeout.
  bool alignedTimeoutOn() const {
    return checkpointing_.unaligned && checkpointing_.aligned_timeout.count() > 0;
  }
  // The aligned timeout's periodic part: promotes barriers stuck in the gate, settles the output
  // of settling_, and schedules the next check.
  void checkAlignedTimeout();
  // Calls `fn` for every output with the number of its first channel in in-flight output state,
  // where channels are numbered over the outputs in order.
  void forEachOutput(const std::function<void(ResultPartition&, int first_channel)>& fn);
  // ResultPartition::settleBarrier over every output, appending what is persisted to `body` (its
  // channels numbered over the outputs in order); how many channels still hold the barrier.
  int settleOutputs(std::int64_t id, std::int64_t cutoff_ms, std::string& body);
  void abandonSettling(const std::string& reason);
  // When the alignment in progress switches to unaligned (max() when it never does): the aligned
  // timeout counts from the checkpoint's trigger time.
  Clock::time_point alignmentDeadline() const;
  // True when every output has a free buffer (within its pool's bound).
  bool outputsAvailable() const;
  // Before the next record (a source's poll, an input buffer): true when every output has a free
  // buffer; else waits for one (flushing at `flush_deadline`) and returns false at mail, at a
  // barrier queued in the input gate, at cancellation or at `wake_at`.
  bool awaitOutputBuffers(Clock::time_point& flush_deadline, Clock::time_point wake_at);
  // Hands the chain the next part of reading_ (see there), starting at `start`, and sets `done`
  // to when the chain returned; drops the buffer once it was read to its end.
  Status readNextBatch(Clock::time_point start, Clock::time_point& done);
  // The next call into the chain for records takes as many as `records` took about a millisecond
  // in `took` (no change when it had none).
  void adaptRecordsPerCall(std::size_t records, Clock::duration took);
  // Hands the chain every record of `data`, a batch at a time.
  Status readAll(int channel, const std::uint8_t* data, std::size_t size);
  // Replays the restored in-flight input into the chain.
  Status replayInputState();
  // Sends the restored in-flight output again, before anything else is emitted.
  Status replayOutputState();
  // A channel ended: it no longer holds up an alignment.
  Status onChannelEnded(int channel);
  Status finishAlignment();
  void abandonAlignment(const std::string& reason);
  Status performCheckpoint(const std::shared_ptr<const CheckpointBarrier>& barrier);
  // After end of input: waits for the final checkpoint (handling mail) or cancellation.
  Status awaitFinalCheckpoint();
  // Between records: handles mail; after a stop-with-savepoint snapshot, waits for its outcome.
  // Then either stopped_ is set, or `resumed` says the savepoint was aborted and the loop
  // starts over.
  Status handleMail(bool& resumed);
  // After a stop-with-savepoint snapshot: waits until the savepoint completed (stopped_) or was
  // aborted (processing resumes), handling mail.
  Status awaitStopOutcome();
  // Waits for mail (or cancellation) and handles it.
  Status waitForMail();
  Status restoreChain();
  const thrift::VertexSubtaskState* restoredState(std::size_t vertex_index) const;
  std::string vertexUid(std::size_t vertex_index) const;

  Status runSource();
  Status runInputs();
  // Hands the chain what the valve says changed.
  Status forward(const WatermarkValve::Output& out);
  // Fires the chain's processing-time work if it is due; returns the steady-clock time of the next
  // deadline (time_point::max() when none).
  Status firePendingTimers(std::chrono::steady_clock::time_point& next);
  // The steady-clock time at which processing time reaches `due` (max() for kNoDeadline).
  Clock::time_point steadyDeadline(std::int64_t due) const;
  void flushOutputs();
  bool anyPendingOutput() const;
  void finishOutputs();

  TaskDeployment deployment_;
  JobArgs args_;
  Options options_;
  std::unique_ptr<InputGate> gate_;
  std::vector<std::unique_ptr<ResultPartition>> outputs_;
  // Task thread only; closed before on_done runs (their files go with them).
  std::map<int, std::unique_ptr<RocksDbKvStore>> kv_stores_;  // by vertex id
  std::atomic<std::size_t> num_kv_stores_{0};
  ChainPtr chain_;
  bool is_source_ = false;

  // Checkpoints (task thread only, unless noted).
  TaskCheckpointing checkpointing_;
  std::optional<thrift::TaskRestore> restore_;
  std::int64_t last_checkpoint_id_ = 0;  // newest checkpoint taken or abandoned
  std::shared_ptr<const CheckpointBarrier> aligning_;  // the barrier being aligned, if any
  std::vector<char> barrier_received_;                 // per input channel, while aligning
  std::vector<char> channel_ended_;                    // per input channel
  int barriers_missing_ = 0;
  Clock::time_point alignment_start_;
  std::int64_t alignment_ms_ = 0;
  // The unaligned checkpoint whose in-flight input is being captured.
  struct InFlightCapture {
    std::int64_t id = 0;
    // Per input channel: set once its barrier arrived (or it ended); until then every data
    // buffer read from it is copied.
    std::vector<char> complete;
    int incomplete = 0;
    std::vector<std::string> channels;  // per channel: buffers in channel_state_file.h's format
    std::shared_ptr<std::string> body;  // read by the asynchronous part once complete
    std::function<void()> async_part;   // submitted to the writer once complete
    std::function<void()> discard;      // drops the synchronous part's local files
  };
  std::optional<InFlightCapture> capture_;
  // The data buffer the chain has read only in part, and how many of its bytes it read: the chain
  // takes a buffer in parts of at most records_per_call_ records, and between parts the task
  // handles mail, takes barriers (an unaligned one overtakes the rest of the buffer, which goes
  // into the in-flight state) and waits for output buffers.
  std::optional<InputGate::Item> reading_;
  std::size_t reading_offset_ = 0;
  // How many records the next call into the chain may take (a source's poll, or a part of an input
  // buffer, then no more than a chain's batch holds): as many as took about a millisecond in the
  // last call. The first call takes one, as nothing is known yet of how long a record takes.
  static constexpr std::size_t kMaxRecordsPerCall = 1 << 16;
  std::size_t records_per_call_ = 1;
  // An aligned checkpoint whose barrier still waits behind data in a send queue of this task (for
  // credit), with the aligned timeout on: its acknowledgement waits until every barrier left, or
  // overtook that data after the timeout (ChannelSink::settleBarrier), which then is the task's
  // in-flight output.
  struct SettlingOutput {
    std::int64_t id = 0;
    std::shared_ptr<std::string> body;  // in-flight output, channel_state_file.h's format
    std::function<void()> async_part;   // submitted to the writer once settled
    std::function<void()> discard;      // drops the synchronous part's local files
  };
  std::optional<SettlingOutput> settling_;
  // The aligned timeout: when the gate's queues and the barriers settling in the send queues are
  // next checked for barriers that waited too long behind data (InputGate::promoteBarriers,
  // ChannelSink::settleBarrier).
  Clock::time_point next_promotion_check_ = Clock::time_point::min();
  // In-flight input to replay and output to send again on restore (the head vertex's), relative
  // to restore_->baseDir.
  std::vector<thrift::StateFile> restored_input_state_;
  std::vector<thrift::StateFile> restored_output_state_;
  bool outputs_finished_ = false;
  bool data_ended_ = false;                 // awaiting the final checkpoint
  std::int64_t final_checkpoint_id_ = 0;    // the job's last checkpoint, once taken
  bool final_checkpoint_done_ = false;
  // Stop-with-savepoint: the savepoint this task took part in; no record follows it unless it is
  // aborted. Once it completed the task ends (with drain: after ending its input normally).
  std::int64_t stop_pending_ = 0;
  bool stop_drain_ = false;
  bool stopped_ = false;
  // RocksDB: the shared files of each store's last completed checkpoint (by vertex id), and of
  // checkpoints still in flight (written by the writer thread).
  std::map<int, std::vector<thrift::StateFile>> previous_shared_;
  std::mutex uploads_mu_;
  std::map<std::int64_t, std::map<int, std::vector<thrift::StateFile>>> uploaded_shared_;

  std::mutex mail_mu_;
  std::condition_variable mail_cv_;
  std::vector<Mail> mail_;  // guarded by mail_mu_
  std::atomic<bool> has_mail_{false};
  // Set when a barrier was queued in the input gate: ends a wait for an output buffer, so that
  // a back-pressured task takes it (InputGate::pollBarrier).
  std::atomic<bool> barrier_queued_{false};

  std::atomic<bool> cancelled_{false};
  std::atomic<TaskState> state_{TaskState::kCreated};
  TaskMetrics metrics_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // wakes an idle source on cancel
  Status result_;                    // guarded by mu_
  Status external_failure_;          // guarded by mu_
};

}  // namespace weir::engine
