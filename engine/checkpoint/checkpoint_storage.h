// Checkpoint storage on a directory shared by all hosts (`file:///abs/path` or `/abs/path`).
//
// Layout under the storage root:
//   <root>/<job-id>/chk-<n>/      files exclusive to checkpoint n, and its `_metadata`
//   <root>/<job-id>/shared/       files shared between checkpoints (incremental RocksDB SSTs)
//   <root>/<job-id>/taskowned/    files owned by tasks, never deleted by a checkpoint
// A savepoint is self-contained: `<dir>/savepoint-<job-id prefix>-<random>/_metadata` plus its
// files, all referenced relative to the savepoint directory.
//
// `_metadata` is written last and atomically (`_metadata.tmp`, fsync, rename, fsync of the
// directory). Its bytes are the compact-protocol CheckpointMetadata followed by an 80-byte
// trailer: the magic "WEIRCKP1", the payload length (8 bytes little-endian) and the payload's
// SHA-256 (64 hex digits). A directory without a valid `_metadata` is not a completed checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint_types.h"
#include "weir/status.h"

namespace weir::engine {

inline constexpr int32_t kCheckpointFormatVersion = 1;
inline constexpr std::string_view kMetadataFileName = "_metadata";
inline constexpr std::string_view kMetadataTrailerMagic = "WEIRCKP1";
inline constexpr std::size_t kMetadataTrailerSize = 8 + 8 + 64;

// `file:///abs/path` or `/abs/path` to an absolute, normalised path; anything else is refused.
Result<std::filesystem::path> parseCheckpointUri(std::string_view uri);

// Payload plus trailer, as stored in `_metadata`.
std::string encodeCheckpointMetadata(const thrift::CheckpointMetadata& metadata);
// Verifies the trailer and decodes; `file` names the source in error messages.
Result<thrift::CheckpointMetadata> decodeCheckpointMetadata(std::string_view bytes,
                                                            const std::string& file);

// Writes `<dir>/_metadata` atomically and durably; `dir` must exist.
Status writeMetadataFile(const std::filesystem::path& dir,
                         const thrift::CheckpointMetadata& metadata);
// Reads and verifies `<dir>/_metadata`.
Result<thrift::CheckpointMetadata> readMetadataFile(const std::filesystem::path& dir);
// Every file the metadata references exists under `base` with its recorded size.
Status verifyStateFiles(const std::filesystem::path& base,
                        const thrift::CheckpointMetadata& metadata);

struct CompletedCheckpoint {
  int64_t id = 0;
  std::filesystem::path dir;
  thrift::CheckpointMetadata metadata;
};

class CheckpointStorage {
 public:
  static Result<CheckpointStorage> open(std::string_view uri);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path jobDir(const std::string& job_id) const { return root_ / job_id; }
  std::filesystem::path checkpointDir(const std::string& job_id, int64_t id) const;
  std::filesystem::path sharedDir(const std::string& job_id) const;
  std::filesystem::path taskOwnedDir(const std::string& job_id) const;

  // Creates `chk-<id>` (and the job's shared/ and taskowned/ directories). Refuses an id whose
  // directory already holds a `_metadata`.
  Result<std::filesystem::path> createCheckpointDir(const std::string& job_id, int64_t id);
  // Writes the `_metadata` of the checkpoint the metadata names (its directory must exist).
  Status writeMetadata(const thrift::CheckpointMetadata& metadata);
  // Loads and verifies `_metadata` of checkpoint `id`; checks it names this job and id; with
  // `verify_files`, also checks that every referenced file exists with its recorded size.
  Result<thrift::CheckpointMetadata> loadMetadata(const std::string& job_id, int64_t id,
                                                  bool verify_files) const;
  // `chk-<n>` directories with a valid `_metadata`, newest first. A job without a directory has
  // none.
  Result<std::vector<CompletedCheckpoint>> listCompleted(const std::string& job_id) const;
  // Removes `chk-<id>` and everything in it (a missing directory is not an error).
  Status deleteCheckpoint(const std::string& job_id, int64_t id);

 private:
  explicit CheckpointStorage(std::filesystem::path root) : root_(std::move(root)) {}

  std::filesystem::path root_;
};

// Creates `<target>/savepoint-<first 6 chars of job id>-<12 random hex digits>/`.
Result<std::filesystem::path> createSavepointDir(std::string_view target_uri,
                                                 const std::string& job_id);
// Writes the savepoint's `_metadata`. Refuses metadata that is not marked as a savepoint or that
// references a file outside the savepoint directory (a savepoint is self-contained: its RocksDB
// table files are its own copies, even where a handle lists them as shared files).
Status writeSavepointMetadata(const std::filesystem::path& savepoint_dir,
                              const thrift::CheckpointMetadata& metadata);
// Loads a savepoint given its directory or its `_metadata` file (URI or absolute path).
Result<thrift::CheckpointMetadata> loadSavepoint(std::string_view uri, bool verify_files);

}  // namespace weir::engine
