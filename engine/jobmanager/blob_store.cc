#include "jobmanager/blob_store.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

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
  std::lock_guard<std::mutex> lock(mu_);
  while (!uploads_.empty())
    dropLocked(uploads_.begin()->first);
}

Status BlobStore::open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "incoming", ec);
  if (ec)
    return Status::ioError("cannot create " + (dir_ / "incoming").string() + ": " + ec.message());
  for (const auto& entry : std::filesystem::directory_iterator(dir_ / "incoming", ec)) {
    std::filesystem::remove(entry.path(), ec);
  }
  return Status::ok();
}

Result<std::string> BlobStore::beginUpload(std::int64_t size) {
  if (size <= 0 || size > kMaxBlobSize) {
    return Status::invalidArgument("a plugin upload must have between 1 byte and " +
                                   std::to_string(kMaxBlobSize) + " bytes, not " +
                                   std::to_string(size));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const std::string id = std::to_string(getpid()) + "-" + std::to_string(next_upload_++);
  Upload u;
  u.file = dir_ / "incoming" / id;
  u.out = std::fopen(u.file.c_str(), "wb");
  if (u.out == nullptr) return Status::ioError("cannot create " + u.file.string());
  u.size = size;
  u.hash = std::make_unique<Sha256>();
  uploads_.emplace(id, std::move(u));
  return id;
}

Status BlobStore::appendChunk(const std::string& upload_id, std::int64_t offset,
                              std::string_view data) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = uploads_.find(upload_id);
  if (it == uploads_.end()) return Status::notFound("no upload with id '" + upload_id + "'");
  Upload& u = it->second;
  if (offset != u.received) {
    return Status::invalidArgument("upload " + upload_id + ": chunk at offset " +
                                   std::to_string(offset) + ", expected " +
                                   std::to_string(u.received));
  }
  if (u.received + static_cast<std::int64_t>(data.size()) > u.size) {
    const std::int64_t size = u.size;
    dropLocked(upload_id);
    return Status::invalidArgument("upload " + upload_id + " exceeds its announced size of " +
                                   std::to_string(size) + " bytes");
  }
  if (std::fwrite(data.data(), 1, data.size(), u.out) != data.size()) {
    dropLocked(upload_id);
    return Status::ioError("cannot write upload " + upload_id + " (disk full?)");
  }
  u.hash->update(data.data(), data.size());
  u.received += static_cast<std::int64_t>(data.size());
  return Status::ok();
}

Result<std::string> BlobStore::finishUpload(const std::string& upload_id,
                                            const std::string& expected_sha256) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = uploads_.find(upload_id);
  if (it == uploads_.end()) return Status::notFound("no upload with id '" + upload_id + "'");
  Upload& u = it->second;
  Status s = checkHash(expected_sha256);
  if (!s.isOk()) {
    dropLocked(upload_id);
    return s;
  }
  if (u.received != u.size) {
    const std::string msg = "upload " + upload_id + " ended after " + std::to_string(u.received) +
                            " of " + std::to_string(u.size) + " bytes";
    dropLocked(upload_id);
    return Status::invalidArgument(msg);
  }
  const std::string actual = u.hash->finishHex();
  if (actual != expected_sha256) {
    dropLocked(upload_id);
    return Status::corruption("plugin upload corrupted: SHA-256 " + actual +
                              " of the bytes received, expected " + expected_sha256);
  }
  const bool flushed = std::fflush(u.out) == 0 && fsync(fileno(u.out)) == 0;
  std::fclose(u.out);
  u.out = nullptr;
  if (!flushed) {
    dropLocked(upload_id);
    return Status::ioError("cannot write upload " + upload_id);
  }
  std::error_code ec;
  const auto target = path(actual);
  if (std::filesystem::exists(target, ec)) {
    std::filesystem::remove(u.file, ec);  // same content already stored
  } else {
    std::filesystem::rename(u.file, target, ec);
    if (ec) {
      dropLocked(upload_id);
      return Status::ioError("cannot store " + target.string() + ": " + ec.message());
    }
  }
  uploads_.erase(it);
  return actual;
}

void BlobStore::abortUpload(const std::string& upload_id) {
  std::lock_guard<std::mutex> lock(mu_);
  dropLocked(upload_id);
}

void BlobStore::dropLocked(const std::string& upload_id) {
  auto it = uploads_.find(upload_id);
  if (it == uploads_.end()) return;
  if (it->second.out != nullptr) std::fclose(it->second.out);
  std::error_code ec;
  std::filesystem::remove(it->second.file, ec);
  uploads_.erase(it);
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
    if (!s.isOk()) return s;
    offset += static_cast<std::int64_t>(n);
  }
  return finishUpload(*upload, *hash);
}

}  // namespace weir::engine
