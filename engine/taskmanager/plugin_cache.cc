#include "taskmanager/plugin_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>

#include "common/sha256.h"

namespace weir::engine {

PluginCache::PluginCache(std::filesystem::path dir, std::int32_t chunk_size)
    : dir_(std::move(dir)), chunk_size_(chunk_size) {}

Status PluginCache::open() {
  if (chunk_size_ <= 0) {
    return Status::invalidArgument("plugin cache chunk size must be positive, not " +
                                   std::to_string(chunk_size_));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec)
    return Status::ioError("cannot create plugin cache " + dir_.string() + ": " + ec.message());
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (entry.path().extension() == ".part") std::filesystem::remove(entry.path(), ec);
  }
  return Status::ok();
}

Result<std::filesystem::path> PluginCache::get(const std::string& hash, std::int64_t size,
                                               const ChunkFetcher& fetch) {
  if (!isSha256Hex(hash)) {
    return Status::invalidArgument("'" + hash + "' is not a SHA-256 (64 lowercase hex digits)");
  }
  if (size <= 0) return Status::invalidArgument("plugin " + hash + " has no bytes");
  const auto target = dir_ / (hash + ".so");
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return fetching_.count(hash) == 0; });
    if (verified_.count(hash) != 0) return target;
    fetching_.insert(hash);
  }
  // This thread now owns `hash`; others asking for it wait until it is verified (then use it) or
  // this attempt failed (then try themselves).
  Status s;
  try {
    s = verifyOrFetch(hash, size, fetch);
  } catch (const std::exception& e) {
    s = Status::internal("fetching plugin " + hash + ": " + e.what());
  } catch (...) {
    s = Status::internal("fetching plugin " + hash + ": unknown exception");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fetching_.erase(hash);
    if (s.isOk()) verified_.insert(hash);
  }
  cv_.notify_all();
  if (!s.isOk()) return s;
  return target;
}

Status PluginCache::verifyOrFetch(const std::string& hash, std::int64_t size,
                                  const ChunkFetcher& fetch) {
  const auto target = dir_ / (hash + ".so");
  std::error_code ec;
  if (!std::filesystem::exists(target, ec)) return fetchInto(hash, size, fetch);
  auto actual = sha256File(target);
  if (actual.isOk() && *actual == hash) return Status::ok();
  spdlog::warn("cached plugin {} is damaged ({}); fetching it again", target.string(),
               actual.isOk() ? "its SHA-256 is " + *actual : actual.status().message());
  std::filesystem::remove(target, ec);
  return fetchInto(hash, size, fetch);
}

Status PluginCache::fetchInto(const std::string& hash, std::int64_t size,
                              const ChunkFetcher& fetch) {
  const auto part = dir_ / (hash + ".part");
  // Closes the file and deletes the part file on every way out (errors and exceptions from the
  // fetcher) unless it was renamed into place.
  struct PartFile {
    std::filesystem::path path;
    std::FILE* out = nullptr;
    bool kept = false;
    ~PartFile() {
      if (out != nullptr) std::fclose(out);
      std::error_code ec;
      if (!kept) std::filesystem::remove(path, ec);
    }
  } file{part};
  file.out = std::fopen(part.c_str(), "wb");
  if (file.out == nullptr) {
    return Status::ioError("cannot create " + part.string() + ": " + std::strerror(errno));
  }
  Sha256 h;
  std::int64_t offset = 0;
  while (offset < size) {
    const auto want = static_cast<std::int32_t>(std::min<std::int64_t>(chunk_size_, size - offset));
    auto chunk = fetch(offset, want);
    if (!chunk.isOk()) return chunk.status();
    if (chunk->empty() || static_cast<std::int64_t>(chunk->size()) > want) {
      return Status::corruption("plugin " + hash + ": fetch at offset " + std::to_string(offset) +
                                " returned " + std::to_string(chunk->size()) + " bytes, expected " +
                                std::to_string(want));
    }
    if (std::fwrite(chunk->data(), 1, chunk->size(), file.out) != chunk->size()) {
      return Status::ioError("cannot write " + part.string() + ": " + std::strerror(errno));
    }
    h.update(chunk->data(), chunk->size());
    offset += static_cast<std::int64_t>(chunk->size());
  }
  const std::string actual = h.finishHex();
  if (actual != hash) {
    return Status::corruption("plugin " + hash + " failed verification: got " + actual);
  }
  const int closed = std::fclose(file.out);
  file.out = nullptr;
  if (closed != 0)
    return Status::ioError("cannot write " + part.string() + ": " + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(part, dir_ / (hash + ".so"), ec);
  if (ec) return Status::ioError("cannot store plugin " + hash + ": " + ec.message());
  file.kept = true;
  return Status::ok();
}

}  // namespace weir::engine
