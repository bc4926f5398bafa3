// The checkpoint coordinator of one job: triggers periodic checkpoints and savepoints at the
// job's running attempt, collects the subtasks' acknowledgements, writes the `_metadata` of
// completed checkpoints (retaining the newest `state.checkpoints.num-retained`), expires and
// aborts failed ones and fails the job when too many fail in a row.
//
// Threading: the public methods only update the coordinator's state under its mutex and wake its
// thread. That one thread does all timing (periodic triggers, expiry), all file IO (checkpoint and
// savepoint directories, `_metadata`, deleting aborted checkpoints) and calls every callback,
// never while the mutex is held, so callbacks may call the public methods.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint_storage.h"
#include "checkpoint/completed_checkpoint_store.h"
#include "checkpoint_types.h"
#include "cluster_types.h"
#include "jobmanager/job_settings.h"
#include "weir/status.h"

namespace weir::engine {

// One subtask of a running attempt. Sources are where checkpoints are triggered.
struct CoordinatorTask {
  int chain_id = 0;
  int subtask = 0;
  bool source = false;
};

// One vertex of the job graph: its state is recorded under `uid` in the checkpoint metadata.
struct CoordinatorVertex {
  std::string uid;
  int chain_id = 0;
  int parallelism = 1;
  int max_parallelism = 128;
};

class CheckpointCoordinator {
 public:
  // Called only from the coordinator's thread, never while its mutex is held.
  struct Callbacks {
    // Start checkpoint `trigger` at `subtasks` (the sources, and subtasks that reported end of
    // data).
    std::function<void(int attempt, const thrift::CheckpointTrigger& trigger,
                       const std::vector<thrift::SubtaskId>& subtasks)>
        trigger;
    std::function<void(int attempt, std::int64_t checkpoint_id)> notify_complete;
    std::function<void(int attempt, std::int64_t checkpoint_id)> notify_aborted;
    // More checkpoints failed in a row than execution.checkpointing.tolerable-failed-checkpoints.
    std::function<void(const std::string& reason)> fail_job;
  };

  struct Options {
    std::string job_id;
    // Interval, timeout, min pause, tolerable failures, concurrency, retained count, directories.
    CheckpointSettings settings;
    std::vector<CoordinatorVertex> vertices;  // every vertex of the job graph
    std::string state_backend;                // "heap" or "rocksdb", recorded in metadata
  };

  // Opens the job's checkpoint storage (settings.checkpoints_dir) and recovers the completed
  // checkpoints of an earlier run of this job id: they are kept, and new ids continue after the
  // newest checkpoint directory found. Without a checkpoints directory only savepoints can be
  // taken (periodic checkpointing then is an error). Starts the coordinator's thread.
  static Result<std::unique_ptr<CheckpointCoordinator>> create(Options options,
                                                               Callbacks callbacks);
  // Stops the thread. Pending checkpoints are aborted without callbacks: their directories are
  // deleted and pending savepoints resolve with an error. Must not be called from a callback.
  ~CheckpointCoordinator();

  CheckpointCoordinator(const CheckpointCoordinator&) = delete;
  CheckpointCoordinator& operator=(const CheckpointCoordinator&) = delete;

  // A deployment of the job is running with these subtasks: periodic checkpoints start (the first
  // one after one interval). Aborts whatever belonged to an earlier attempt.
  void startAttempt(int attempt, std::vector<CoordinatorTask> tasks);
  // The attempt is over (failure, cancellation): pending checkpoints are aborted (without calling
  // notify_aborted: the tasks are gone) and periodic triggering pauses until the next
  // startAttempt. A checkpoint whose acknowledgements are all in still completes.
  void stopAttempt(const std::string& reason);
  // A subtask's input ended; later checkpoints trigger it directly. When every subtask of the
  // attempt has ended its data, a checkpoint is triggered at once (after the one in flight, and
  // regardless of the minimum pause) so the job can finish without waiting for the interval.
  void endOfData(int attempt, int chain_id, int subtask);
  // Acknowledgements of another job are refused; of another attempt, an unknown or finished
  // checkpoint or an unknown subtask are ignored (debug log, ok); duplicates are ignored.
  Status acknowledge(const thrift::CheckpointAck& ack);
  // The checkpoint fails at once with `reason` (ignored like acknowledgements when stale).
  void decline(int attempt, std::int64_t checkpoint_id, int chain_id, int subtask,
               const std::string& reason);
  // Savepoint into `target_uri` (empty: settings.savepoints_dir; neither set: error). Taken
  // after the checkpoint in flight, regardless of the minimum pause. Resolves with the savepoint
  // directory once it completed, or with the error. `stop`/`drain` are carried in the trigger.
  // Savepoint failures do not count towards the tolerable failed checkpoints.
  std::shared_future<Result<std::string>> triggerSavepoint(const std::string& target_uri, bool stop,
                                                           bool drain);

  // Newest first: in progress, completed and failed checkpoints and savepoints (the last 50
  // finished ones plus every retained checkpoint).
  std::vector<thrift::CheckpointInfo> history() const;
  // The newest completed checkpoint whose metadata still loads and whose files exist (logging a
  // line per skipped corrupt or incomplete one): what a restart restores from. nullopt when none.
  Result<std::optional<CompletedCheckpoint>> latestForRestore() const;
  // Shown as restoredFrom in history.
  void markRestoredFrom(std::int64_t checkpoint_id);
  // Id of the newest completed checkpoint (not savepoint); 0: none.
  std::int64_t lastCompletedId() const;

 private:
  using Clock = std::chrono::steady_clock;
  using SavepointPromise = std::shared_ptr<std::promise<Result<std::string>>>;
  using SubtaskKey = std::pair<int, int>;  // chain id, subtask

  enum class Phase {
    kCreating,    // the thread creates its directory; not yet triggered
    kTriggered,   // waiting for acknowledgements
    kCompleting,  // every acknowledgement is in; the thread writes the metadata
  };

  struct Pending {
    std::int64_t id = 0;
    int attempt = 0;
    bool savepoint = false;
    bool stop = false;
    bool drain = false;
    std::string savepoint_target;  // savepoints: the URI the directory is created in
    Phase phase = Phase::kCreating;
    bool completion_started = false;
    Clock::time_point triggered_at;
    std::int64_t triggered_at_ms = 0;  // unix time
    std::filesystem::path dir;         // once created
    thrift::CheckpointTrigger trigger;  // once triggered
    std::set<SubtaskKey> expected;     // every subtask of the attempt
    std::map<SubtaskKey, thrift::CheckpointAck> acks;
    SavepointPromise promise;  // savepoints only
  };

  struct SavepointRequest {
    std::string target_uri;
    bool stop = false;
    bool drain = false;
    SavepointPromise promise;
  };

  // A checkpoint taken out of `pending_` because it failed or was aborted; the thread cleans up.
  struct Aborted {
    std::int64_t id = 0;
    int attempt = 0;
    bool savepoint = false;
    std::filesystem::path dir;  // empty: not created yet (the creating thread deletes it)
    bool notify = false;        // call notify_aborted
    bool failed = false;        // a failure (logged as a warning), not an abort on request
    std::string failure;
    SavepointPromise promise;
  };

  CheckpointCoordinator(Options options, Callbacks callbacks,
                        std::optional<CheckpointStorage> storage,
                        std::unique_ptr<CompletedCheckpointStore> store, std::int64_t next_id);

  void run();
  // One round of the thread's work, started and ended with `lock` held; false when idle.
  bool doWork(std::unique_lock<std::mutex>& lock);
  // Allocates an id and a Pending for a checkpoint or savepoint to trigger now, if one is due.
  std::optional<std::int64_t> nextTriggerLocked(Clock::time_point now);
  std::optional<Clock::time_point> nextWakeLocked() const;
  void triggerPending(std::unique_lock<std::mutex>& lock, std::int64_t id);
  void completePending(std::unique_lock<std::mutex>& lock, std::int64_t id);
  void cleanUpAborted(const Aborted& aborted, bool callbacks);

  // Takes checkpoint `id` out of `pending_` and queues its cleanup; `counted` failures count
  // towards the tolerable failed checkpoints (savepoints never do). Once more failed in a row
  // than tolerated, fail_job is called and the count starts again.
  void abortLocked(std::int64_t id, const std::string& failure, bool counted, bool notify);
  // Aborts every pending checkpoint not yet completing and fails queued savepoint requests.
  void abortAllLocked(const std::string& failure);
  // Resolves every queued savepoint request as not taken, for `reason`.
  void failSavepointRequestsLocked(const std::string& reason);
  void countFailureLocked(const std::string& failure);
  void recordFinishedLocked(thrift::CheckpointInfo info);
  thrift::CheckpointInfo infoLocked(const Pending& pending, Clock::time_point now) const;
  bool isCurrentSubtaskLocked(int attempt, int chain_id, int subtask) const;
  thrift::CheckpointMetadata buildMetadata(const Pending& pending) const;

  const Options options_;
  const Callbacks callbacks_;
  std::optional<CheckpointStorage> storage_;  // absent without a checkpoints directory
  std::unique_ptr<CompletedCheckpointStore> store_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;

  int attempt_ = -1;
  bool running_ = false;
  std::vector<CoordinatorTask> tasks_;
  std::set<SubtaskKey> ended_;
  bool final_checkpoint_requested_ = false;  // every subtask ended: one checkpoint at once
  // A checkpoint marked stop (the job's last, or a stop-with-savepoint) completed: the attempt's
  // subtasks are finishing, and nothing more is triggered.
  bool attempt_stopping_ = false;
  std::optional<Clock::time_point> next_periodic_;
  std::optional<Clock::time_point> last_end_;  // when the previous checkpoint ended

  std::int64_t next_id_ = 1;
  std::int64_t last_completed_id_ = 0;
  std::int64_t restored_from_ = 0;
  std::int64_t consecutive_failures_ = 0;
  std::map<std::int64_t, Pending> pending_;
  std::deque<SavepointRequest> savepoint_requests_;
  std::vector<Aborted> aborted_;
  std::vector<std::string> fail_job_reasons_;
  // Subtasks whose input ended while a checkpoint was in flight: no barrier of it reaches them
  // any more, so the thread triggers them directly.
  struct LateTrigger {
    int attempt = 0;
    thrift::CheckpointTrigger trigger;
    thrift::SubtaskId subtask;
  };
  std::vector<LateTrigger> late_triggers_;
  std::deque<thrift::CheckpointInfo> finished_;  // newest first
  std::set<std::int64_t> retained_ids_;

  std::thread thread_;
};

}  // namespace weir::engine
