// Reference counts of a job's shared state files (incremental RocksDB SSTs under
// `<root>/<job-id>/shared/`) across the checkpoints the job retains. A file is deleted when the
// last retained checkpoint that references it is unregistered.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "checkpoint_types.h"

namespace weir::engine {

class SharedStateRegistry {
 public:
  // Paths in metadata are relative to `job_dir`, where files are deleted.
  explicit SharedStateRegistry(std::filesystem::path job_dir);

  // Counts each shared file of the checkpoint once; registering the same checkpoint id again
  // changes nothing.
  void registerCheckpoint(const thrift::CheckpointMetadata& metadata);
  // Drops the references of checkpoint `checkpoint_id` and deletes the files no retained
  // checkpoint references any more. Returns their paths (relative to the job directory); a file
  // that cannot be deleted is logged and still returned (it is no longer tracked).
  std::vector<std::string> unregisterCheckpoint(int64_t checkpoint_id);
  // Forgets everything, then registers every checkpoint in `retained`. Deletes nothing.
  void rebuild(const std::vector<thrift::CheckpointMetadata>& retained);

  // Number of registered checkpoints referencing `path`; 0 when unknown.
  int64_t refCount(const std::string& path) const;
  std::size_t fileCount() const;

 private:
  std::filesystem::path job_dir_;
  mutable std::mutex mutex_;
  std::map<int64_t, std::set<std::string>> files_by_checkpoint_;
  std::map<std::string, int64_t> ref_counts_;
};

}  // namespace weir::engine
