// Builders for checkpoint metadata and the state files it references, for checkpoint tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_storage.h"
#include "common/sha256.h"

namespace weir::testing {

// Writes `content` to `base/rel` (creating directories) and returns its StateFile entry.
inline thrift::StateFile writeStateFile(const std::filesystem::path& base, const std::string& rel,
                                        const std::string& content) {
  const auto path = base / rel;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
  thrift::StateFile f;
  f.path = rel;
  f.size = static_cast<int64_t>(content.size());
  f.sha256 = engine::sha256Hex(content);
  return f;
}

// One operator with one subtask: inline operator state plus one keyed handle with the given
// private and shared files.
inline thrift::CheckpointMetadata makeMetadata(const std::string& job_id, int64_t id,
                                               std::vector<thrift::StateFile> private_files,
                                               std::vector<thrift::StateFile> shared_files) {
  thrift::CheckpointMetadata md;
  md.formatVersion = engine::kCheckpointFormatVersion;
  md.jobId = job_id;
  md.checkpointId = id;
  md.timestampMs = 1700000000000 + id;
  md.stateBackend = "rocksdb";
  thrift::KeyedStateHandle handle;
  handle.keyGroupStart = 0;
  handle.keyGroupEnd = 127;
  handle.kind = shared_files.empty() ? thrift::KeyedStateKind::HEAP_FULL
                                     : thrift::KeyedStateKind::ROCKSDB_INCREMENTAL;
  handle.privateFiles = std::move(private_files);
  handle.sharedFiles = std::move(shared_files);
  thrift::SubtaskState subtask;
  subtask.subtask = 0;
  subtask.operatorState = std::string("offsets\0\x01\xff", 10);
  subtask.keyed.push_back(std::move(handle));
  thrift::OperatorState op;
  op.uid = "counter";
  op.parallelism = 1;
  op.maxParallelism = 128;
  op.subtasks.push_back(std::move(subtask));
  md.operators.push_back(std::move(op));
  return md;
}

}  // namespace weir::testing
