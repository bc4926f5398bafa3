#include "checkpoint/shared_state_registry.h"

#include <spdlog/spdlog.h>

#include <system_error>
#include <utility>

namespace weir::engine {

SharedStateRegistry::SharedStateRegistry(std::filesystem::path job_dir)
    : job_dir_(std::move(job_dir)) {}

void SharedStateRegistry::registerCheckpoint(const thrift::CheckpointMetadata& metadata) {
  std::set<std::string> files;
  for (const auto& op : metadata.operators) {
    for (const auto& st : op.subtasks) {
      for (const auto& handle : st.keyed) {
        for (const auto& f : handle.sharedFiles)
          files.insert(f.path);
      }
    }
  }
  std::lock_guard lock(mutex_);
  auto [it, inserted] = files_by_checkpoint_.emplace(metadata.checkpointId, std::move(files));
  if (!inserted) return;
  for (const auto& path : it->second)
    ++ref_counts_[path];
}

std::vector<std::string> SharedStateRegistry::unregisterCheckpoint(int64_t checkpoint_id) {
  std::vector<std::string> released;
  {
    std::lock_guard lock(mutex_);
    const auto it = files_by_checkpoint_.find(checkpoint_id);
    if (it == files_by_checkpoint_.end()) return released;
    for (const auto& path : it->second) {
      const auto rc = ref_counts_.find(path);
      if (rc == ref_counts_.end()) continue;
      if (--rc->second <= 0) {
        released.push_back(path);
        ref_counts_.erase(rc);
      }
    }
    files_by_checkpoint_.erase(it);
  }
  for (const auto& path : released) {
    std::error_code ec;
    std::filesystem::remove(job_dir_ / path, ec);
    if (ec) {
      spdlog::warn("cannot delete shared state file {}: {}", (job_dir_ / path).string(),
                   ec.message());
    }
  }
  return released;
}

void SharedStateRegistry::rebuild(const std::vector<thrift::CheckpointMetadata>& retained) {
  {
    std::lock_guard lock(mutex_);
    files_by_checkpoint_.clear();
    ref_counts_.clear();
  }
  for (const auto& md : retained)
    registerCheckpoint(md);
}

int64_t SharedStateRegistry::refCount(const std::string& path) const {
  std::lock_guard lock(mutex_);
  const auto it = ref_counts_.find(path);
  return it == ref_counts_.end() ? 0 : it->second;
}

std::size_t SharedStateRegistry::fileCount() const {
  std::lock_guard lock(mutex_);
  return ref_counts_.size();
}

}  // namespace weir::engine
