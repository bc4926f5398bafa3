#include "checkpoint/completed_checkpoint_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace weir::engine {

CompletedCheckpointStore::CompletedCheckpointStore(CheckpointStorage storage, std::string job_id,
                                                   std::size_t max_retained)
    : storage_(std::move(storage)),
      job_id_(std::move(job_id)),
      max_retained_(std::max<std::size_t>(max_retained, 1)),
      registry_(storage_.jobDir(job_id_)) {}

Status CompletedCheckpointStore::recover() {
  auto found = storage_.listCompleted(job_id_);
  if (!found) return found.status();
  std::lock_guard lock(mutex_);
  retained_.assign(found->begin(), found->end());
  std::vector<thrift::CheckpointMetadata> all_metadata;
  for (const auto& c : retained_)
    all_metadata.push_back(c.metadata);
  registry_.rebuild(all_metadata);
  subsumeLocked();
  return Status::ok();
}

Status CompletedCheckpointStore::add(const thrift::CheckpointMetadata& metadata) {
  if (metadata.jobId != job_id_) {
    return Status::invalidArgument("checkpoint of job " + metadata.jobId +
                                   " added to the store of job " + job_id_);
  }
  std::lock_guard lock(mutex_);
  if (!retained_.empty() && metadata.checkpointId <= retained_.front().id) {
    return Status::invalidArgument("checkpoint " + std::to_string(metadata.checkpointId) +
                                   " of job " + job_id_ + " is not newer than checkpoint " +
                                   std::to_string(retained_.front().id));
  }
  if (Status s = storage_.writeMetadata(metadata); !s) {
    return s.withContext("cannot complete checkpoint " + std::to_string(metadata.checkpointId) +
                         " of job " + job_id_);
  }
  registry_.registerCheckpoint(metadata);
  retained_.push_front(
      {metadata.checkpointId, storage_.checkpointDir(job_id_, metadata.checkpointId), metadata});
  subsumeLocked();
  return Status::ok();
}

void CompletedCheckpointStore::subsumeLocked() {
  while (retained_.size() > max_retained_) {
    const int64_t id = retained_.back().id;
    retained_.pop_back();
    if (Status s = storage_.deleteCheckpoint(job_id_, id); !s) {
      // Its _metadata may survive and still reference shared files: keep them.
      spdlog::warn("cannot delete subsumed checkpoint {} of job {}: {}", id, job_id_, s.message());
      continue;
    }
    const auto released = registry_.unregisterCheckpoint(id);
    spdlog::debug("subsumed checkpoint {} of job {} ({} shared files released)", id, job_id_,
                  released.size());
  }
}

std::optional<CompletedCheckpoint> CompletedCheckpointStore::latest() const {
  std::lock_guard lock(mutex_);
  if (retained_.empty()) return std::nullopt;
  return retained_.front();
}

std::vector<CompletedCheckpoint> CompletedCheckpointStore::all() const {
  std::lock_guard lock(mutex_);
  return {retained_.begin(), retained_.end()};
}

Result<CompletedCheckpoint> CompletedCheckpointStore::latestUsable(bool verify_files) const {
  const std::vector<CompletedCheckpoint> candidates = all();
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const CompletedCheckpoint& c = candidates[i];
    auto md = storage_.loadMetadata(job_id_, c.id, verify_files);
    if (md) return CompletedCheckpoint{c.id, c.dir, std::move(*md)};
    if (i + 1 < candidates.size()) {
      spdlog::warn("checkpoint {} of job {} is unusable ({}); falling back to checkpoint {}", c.id,
                   job_id_, md.status().message(), candidates[i + 1].id);
    } else {
      spdlog::warn("checkpoint {} of job {} is unusable ({}); no older checkpoint to fall back to",
                   c.id, job_id_, md.status().message());
    }
  }
  return Status::notFound("no usable completed checkpoint of job " + job_id_);
}

}  // namespace weir::engine
