// The JobManager's store of uploaded plugins, content-addressed by SHA-256: <dir>/<hash>.so.
//
// Uploads arrive in chunks, in order, and are written to <dir>/incoming/<id> while their hash is
// computed, so that no plugin is ever held whole in memory. finishUpload() checks the size and the
// hash the client claims, then renames the file into place: a stored blob is always complete and
// verified. Storing the same content twice keeps one file.
//
// Thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/sha256.h"
#include "weir/status.h"

namespace weir::engine {

class BlobStore {
 public:
  static constexpr std::int64_t kMaxBlobSize = std::int64_t{2} << 30;
  static constexpr std::int32_t kMaxChunk = 8 << 20;

  explicit BlobStore(std::filesystem::path dir);
  ~BlobStore();
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Creates the folders and deletes partial uploads left by an earlier run.
  Status open();

  Result<std::string> beginUpload(std::int64_t size);
  // `offset` must be the number of bytes received so far.
  Status appendChunk(const std::string& upload_id, std::int64_t offset, std::string_view data);
  // Verifies size and hash and stores the blob; returns its hash.
  Result<std::string> finishUpload(const std::string& upload_id,
                                   const std::string& expected_sha256);
  void abortUpload(const std::string& upload_id);

  bool contains(const std::string& hash) const;
  Result<std::int64_t> size(const std::string& hash) const;
  Result<std::string> readChunk(const std::string& hash, std::int64_t offset,
                                std::int32_t length) const;
  std::filesystem::path path(const std::string& hash) const;

  // Stores a local file (streamed through an upload); returns its hash.
  Result<std::string> storeFile(const std::filesystem::path& file);

 private:
  struct Upload {
    std::filesystem::path file;
    std::FILE* out = nullptr;
    std::int64_t size = 0;
    std::int64_t received = 0;
    std::unique_ptr<Sha256> hash;
  };
  void dropLocked(const std::string& upload_id);

  const std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::map<std::string, Upload> uploads_;  // guarded by mu_
  std::uint64_t next_upload_ = 1;          // guarded by mu_
};

}  // namespace weir::engine
