// The completed checkpoints a job retains: the newest `max_retained`, each with a durable
// `_metadata`. Adding checkpoint n+1 subsumes the oldest beyond the limit, but only after n+1's
// `_metadata` is durable: first the subsumed `chk-<id>` directory goes (its `_metadata` first),
// then the shared files no retained checkpoint references any more.
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_storage.h"
#include "checkpoint/shared_state_registry.h"
#include "weir/status.h"

namespace weir::engine {

class CompletedCheckpointStore {
 public:
  // `max_retained` is at least 1 (0 is treated as 1).
  CompletedCheckpointStore(CheckpointStorage storage, std::string job_id, std::size_t max_retained);

  // Replaces what the store holds with the completed checkpoints found in storage (after a
  // JobManager restart): keeps the newest `max_retained`, subsumes older ones, rebuilds the
  // shared-state registry.
  Status recover();
  // Writes `metadata` as the `_metadata` of its checkpoint (its directory must exist), registers
  // its shared files, then subsumes the oldest checkpoints beyond the limit. The id must be newer
  // than every retained checkpoint. Failures to delete subsumed files are logged, not returned:
  // the new checkpoint is complete either way.
  Status add(const thrift::CheckpointMetadata& metadata);

  std::optional<CompletedCheckpoint> latest() const;
  // Newest first.
  std::vector<CompletedCheckpoint> all() const;
  // The newest checkpoint whose `_metadata` still loads and verifies (and, with `verify_files`,
  // whose files all exist with their recorded sizes), with the metadata as re-read from storage.
  // Logs one line per checkpoint skipped.
  Result<CompletedCheckpoint> latestUsable(bool verify_files) const;

  const SharedStateRegistry& sharedState() const { return registry_; }
  const std::string& jobId() const { return job_id_; }

 private:
  // Drops the oldest retained checkpoints beyond the limit; caller holds mutex_.
  void subsumeLocked();

  CheckpointStorage storage_;
  std::string job_id_;
  std::size_t max_retained_;
  SharedStateRegistry registry_;
  mutable std::mutex mutex_;
  std::deque<CompletedCheckpoint> retained_;  // newest first
};

}  // namespace weir::engine
