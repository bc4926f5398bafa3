// The JobManager's store of uploaded plugins, content-addressed by SHA-256: <dir>/<hash>.so.
//
// Uploads arrive in chunks, in order, and are written to <dir>/incoming/<id> while their hash is
// computed, so that no plugin is ever held whole in memory. finishUpload() checks the size and the
// hash the client claims, then renames the file into place: a stored blob is always complete and
// verified, and never changes afterwards. Storing the same content twice keeps one file.
//
// Thread-safe. mu_ guards only the table of uploads; each upload has its own mutex, held while its
// chunks are written and while it is finished (fsync, rename), so a large upload never blocks
// another one or a reader. Lock order: an upload's mutex, then mu_; never the other way round.
// Reads of stored blobs take no lock (stored files are immutable).
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
  static constexpr std::int64_t kMaxBlobSize = std::int64_t{2} << 30;  // 2 GiB
  static constexpr std::int32_t kMaxChunk = 8 << 20;                   // readChunk() cap

  explicit BlobStore(std::filesystem::path dir);
  // Aborts the uploads still in progress (their partial files are deleted).
  ~BlobStore();
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Creates <dir> and <dir>/incoming and deletes partial uploads left there by an earlier run.
  // Call it once, before any upload.
  Status open();

  // Starts an upload of `size` bytes (1 byte to kMaxBlobSize) and returns its opaque id.
  Result<std::string> beginUpload(std::int64_t size);
  // Appends `data` at `offset`, which must be the number of bytes received so far (an out-of-order
  // chunk is refused and the upload stays usable). A chunk that would take the upload past its
  // announced size, or a failed write, aborts the upload. An unknown (or already finished or
  // aborted) id is NOT_FOUND.
  Status appendChunk(const std::string& upload_id, std::int64_t offset, std::string_view data);
  // Ends the upload, whatever the outcome: checks that all `size` bytes arrived and that their
  // SHA-256 equals `expected_sha256` (CORRUPTION naming both hashes otherwise), then renames the
  // file to <dir>/<hash>.so (if that exists already, the new copy is dropped). Returns the hash.
  // On any failure the partial file is deleted and nothing is stored.
  Result<std::string> finishUpload(const std::string& upload_id,
                                   const std::string& expected_sha256);
  // Drops an upload and its partial file; unknown ids are ignored.
  void abortUpload(const std::string& upload_id);

  bool contains(const std::string& hash) const;
  // INVALID_ARGUMENT when `hash` is not 64 lowercase hex digits; NOT_FOUND when it is not stored.
  Result<std::int64_t> size(const std::string& hash) const;
  // Up to `length` bytes (capped at kMaxChunk) from `offset`, fewer only at the end of the blob;
  // `offset` may equal the size (an empty chunk). Errors as size(), and INVALID_ARGUMENT for an
  // offset outside the blob or a negative length.
  Result<std::string> readChunk(const std::string& hash, std::int64_t offset,
                                std::int32_t length) const;
  // Where blob `hash` is (or would be) stored; does not check the hash text.
  std::filesystem::path path(const std::string& hash) const;

  // Stores a local file (streamed through an upload); returns its hash.
  Result<std::string> storeFile(const std::filesystem::path& file);

 private:
  struct Upload {
    std::mutex mu;
    // All guarded by mu. `out` is null once the upload is finished or aborted.
    std::filesystem::path file;
    std::FILE* out = nullptr;
    std::int64_t size = 0;
    std::int64_t received = 0;
    Sha256 hash;
  };

  // The upload with this id, or null.
  std::shared_ptr<Upload> find(const std::string& upload_id) const;
  // Removes `upload_id` from the table if it still maps to `upload`.
  void forget(const std::string& upload_id, const Upload* upload);
  // Closes and deletes the partial file. Requires upload.mu.
  static void discard(Upload& upload);

  const std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Upload>> uploads_;  // guarded by mu_
  std::uint64_t next_upload_ = 1;                           // guarded by mu_
};

}  // namespace weir::engine
