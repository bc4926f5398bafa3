#include "jobmanager/blob_store.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace weir::engine {

namespace {

Status checkHash(const std::string& hash) {
  if (!isSha256Hex(hash)) {
    return Status::invalidArgument("'" + hash + "' is not a SHA-256 (64 lowercase hex digits)");
  }
  return Status::ok();
}

}  // namespace

BlobStore::BlobStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

BlobStore::~BlobStore() {
  std::map<std::string, std::shared_ptr<Upload>> uploads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    uploads.swap(uploads_);
  }
  for (auto& [id, upload] : uploads) {
    std::lock_guard<std::mutex> lock(upload->mu);
    discard(*upload);
  }
}

Status BlobStore::open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "incoming", ec);
  if (ec)
    return Status::ioError("cannot create " + (dir_ / "incoming").string() + ": " + ec.message());
  for (const auto& entry : std::filesystem::directory_iterator(dir_ / "incoming", ec)) {
    std::error_code rm;
    std::filesystem::remove_all(entry.path(), rm);
    if (rm)
      spdlog::warn("cannot delete partial upload {}: {}", entry.path().string(), rm.message());
  }
  if (ec)
    return Status::ioError("cannot list " + (dir_ / "incoming").string() + ": " + ec.message());
  return Status::ok();
}

Result<std::string> BlobStore::beginUpload(std::int64_t size) {
  if (size <= 0 || size > kMaxBlobSize) {
    return Status::invalidArgument("a plugin upload must have between 1 byte and " +
                                   std::to_string(kMaxBlobSize) + " bytes, not " +
                                   std::to_string(size));
  }
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = std::to_string(getpid()) + "-" + std::to_string(next_upload_++);
  }
  auto upload = std::make_shared<Upload>();
  upload->file = dir_ / "incoming" / id;
  upload->out = std::fopen(upload->file.c_str(), "wb");
  if (upload->out == nullptr) {
    return Status::ioError("cannot create " + upload->file.string() + ": " + std::strerror(errno));
  }
  upload->size = size;
  std::lock_guard<std::mutex> lock(mu_);
  uploads_.emplace(id, std::move(upload));
  return id;
}

Status BlobStore::appendChunk(const std::string& upload_id, std::int64_t offset,
                              std::string_view data) {
  const auto upload = find(upload_id);
  if (upload == nullptr) return Status::notFound("no upload with id '" + upload_id + "'");
  std::lock_guard<std::mutex> lock(upload->mu);
  Upload& u = *upload;
  if (u.out == nullptr) return Status::notFound("no upload with id '" + upload_id + "'");
  if (offset != u.received) {
    return Status::invalidArgument("upload " + upload_id + ": chunk at offset " +
                                   std::to_string(offset) + ", expected " +
                                   std::to_string(u.received));
  }
  if (static_cast<std::int64_t>(data.size()) > u.size - u.received) {
    discard(u);
    forget(upload_id, &u);
    return Status::invalidArgument("upload " + upload_id + ": a chunk of " +
                                   std::to_string(data.size()) + " bytes at offset " +
                                   std::to_string(offset) + " exceeds its announced size of " +
                                   std::to_string(u.size) + " bytes; upload aborted");
  }
  if (std::fwrite(data.data(), 1, data.size(), u.out) != data.size()) {
    const std::string reason = std::strerror(errno);
    discard(u);
    forget(upload_id, &u);
    return Status::ioError("cannot write upload " + upload_id + ": " + reason);
  }
  u.hash.update(data.data(), data.size());
  u.received += static_cast<std::int64_t>(data.size());
  return Status::ok();
}

Result<std::string> BlobStore::finishUpload(const std::string& upload_id,
                                            const std::string& expected_sha256) {
  const auto upload = find(upload_id);
  if (upload == nullptr) return Status::notFound("no upload with id '" + upload_id + "'");
  std::lock_guard<std::mutex> lock(upload->mu);
  Upload& u = *upload;
  if (u.out == nullptr) return Status::notFound("no upload with id '" + upload_id + "'");
  // From here on the upload is over whatever happens: later chunks for it are NOT_FOUND.
  forget(upload_id, &u);
  auto fail = [&](Status s) {
    discard(u);
    return s;
  };
  Status s = checkHash(expected_sha256);
  if (!s.isOk()) return fail(s);
  if (u.received != u.size) {
    return fail(Status::invalidArgument("upload " + upload_id + " ended after " +
                                        std::to_string(u.received) + " of " +
                                        std::to_string(u.size) + " bytes"));
  }
  const std::string actual = u.hash.finishHex();
  if (actual != expected_sha256) {
    return fail(Status::corruption("plugin upload corrupted: SHA-256 of the bytes received is " +
                                   actual + ", expected " + expected_sha256));
  }
  // Durable before it becomes visible under its name.
  const bool flushed = std::fflush(u.out) == 0 && fsync(fileno(u.out)) == 0;
  const std::string reason = flushed ? "" : std::strerror(errno);
  const bool closed = std::fclose(u.out) == 0;
  u.out = nullptr;
  std::error_code ec;
  if (!flushed || !closed) {
    std::filesystem::remove(u.file, ec);
    return Status::ioError("cannot write upload " + upload_id + ": " + reason);
  }
  const auto target = path(actual);
  if (std::filesystem::exists(target, ec)) {
    std::filesystem::remove(u.file, ec);  // same content already stored
    return actual;
  }
  // Two uploads of the same content may race to here; rename() replaces atomically and both
  // copies are identical, so either outcome is the same blob.
  std::filesystem::rename(u.file, target, ec);
  if (ec) {
    const std::string msg = "cannot store " + target.string() + ": " + ec.message();
    std::filesystem::remove(u.file, ec);
    return Status::ioError(msg);
  }
  return actual;
}

void BlobStore::abortUpload(const std::string& upload_id) {
  const auto upload = find(upload_id);
  if (upload == nullptr) return;
  std::lock_guard<std::mutex> lock(upload->mu);
  discard(*upload);
  forget(upload_id, upload.get());
}

std::shared_ptr<BlobStore::Upload> BlobStore::find(const std::string& upload_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = uploads_.find(upload_id);
  return it == uploads_.end() ? nullptr : it->second;
}

void BlobStore::forget(const std::string& upload_id, const Upload* upload) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = uploads_.find(upload_id);
  if (it != uploads_.end() && it->second.get() == upload) uploads_.erase(it);
}

void BlobStore::discard(Upload& upload) {
  if (upload.out == nullptr) return;
  std::fclose(upload.out);
  upload.out = nullptr;
  std::error_code ec;
  std::filesystem::remove(upload.file, ec);
}

std::filesystem::path BlobStore::path(const std::string& hash) const {
  return dir_ / (hash + ".so");
}

bool BlobStore::contains(const std::string& hash) const {
  std::error_code ec;
  return isSha256Hex(hash) && std::filesystem::is_regular_file(path(hash), ec);
}

Result<std::int64_t> BlobStore::size(const std::string& hash) const {
  Status s = checkHash(hash);
  if (!s.isOk()) return s;
  std::error_code ec;
  const auto n = std::filesystem::file_size(path(hash), ec);
  if (ec) return Status::notFound("no plugin " + hash + " in the blob store");
  return static_cast<std::int64_t>(n);
}

Result<std::string> BlobStore::readChunk(const std::string& hash, std::int64_t offset,
                                         std::int32_t length) const {
  auto total = size(hash);
  if (!total.isOk()) return total.status();
  if (offset < 0 || offset > *total || length < 0) {
    return Status::invalidArgument("read of plugin " + hash + " at offset " +
                                   std::to_string(offset) + " outside its " +
                                   std::to_string(*total) + " bytes");
  }
  const std::int64_t n = std::min<std::int64_t>({length, kMaxChunk, *total - offset});
  std::string out(static_cast<std::size_t>(n), '\0');
  std::ifstream in(path(hash), std::ios::binary);
  in.seekg(offset);
  if (!in.read(out.data(), static_cast<std::streamsize>(n))) {
    return Status::ioError("cannot read plugin " + hash);
  }
  return out;
}

Result<std::string> BlobStore::storeFile(const std::filesystem::path& file) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return Status::ioError("cannot read " + file.string() + ": " + ec.message());
  auto hash = sha256File(file);
  if (!hash.isOk()) return hash.status();
  auto upload = beginUpload(static_cast<std::int64_t>(size));
  if (!upload.isOk()) return upload.status();
  std::ifstream in(file, std::ios::binary);
  std::string chunk(1 << 20, '\0');
  std::int64_t offset = 0;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    Status s = appendChunk(*upload, offset, std::string_view(chunk.data(), n));
    if (!s.isOk()) {
      abortUpload(*upload);
      return s.withContext("storing " + file.string());
    }
    offset += static_cast<std::int64_t>(n);
  }
  return finishUpload(*upload, *hash);
}

}  // namespace weir::engine
