#include "taskmanager/plugin_cache.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/sha256.h"

namespace weir::engine {

PluginCache::PluginCache(std::filesystem::path dir, std::int32_t chunk_size)
    : dir_(std::move(dir)), chunk_size_(chunk_size) {}

Status PluginCache::open() {
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
  Status s;
  std::error_code ec;
  if (std::filesystem::exists(target, ec)) {
    auto actual = sha256File(target);
    if (actual.isOk() && *actual == hash) {
      s = Status::ok();
    } else {
      spdlog::warn("cached plugin {} is damaged; fetching it again", target.string());
      std::filesystem::remove(target, ec);
      s = fetchInto(hash, size, fetch);
    }
  } else {
    s = fetchInto(hash, size, fetch);
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

Status PluginCache::fetchInto(const std::string& hash, std::int64_t size,
                              const ChunkFetcher& fetch) {
  const auto part = dir_ / (hash + ".part");
  std::FILE* out = std::fopen(part.c_str(), "wb");
  if (out == nullptr) return Status::ioError("cannot create " + part.string());
  std::error_code ec;
  auto abandon = [&](Status s) {
    std::fclose(out);
    std::filesystem::remove(part, ec);
    return s;
  };
  Sha256 h;
  std::int64_t offset = 0;
  while (offset < size) {
    const auto want = static_cast<std::int32_t>(std::min<std::int64_t>(chunk_size_, size - offset));
    auto chunk = fetch(offset, want);
    if (!chunk.isOk()) return abandon(chunk.status());
    if (chunk->empty() || static_cast<std::int64_t>(chunk->size()) > want) {
      return abandon(Status::corruption(
          "plugin " + hash + ": fetch at offset " + std::to_string(offset) + " returned " +
          std::to_string(chunk->size()) + " bytes, expected " + std::to_string(want)));
    }
    if (std::fwrite(chunk->data(), 1, chunk->size(), out) != chunk->size()) {
      return abandon(Status::ioError("cannot write " + part.string() + " (disk full?)"));
    }
    h.update(chunk->data(), chunk->size());
    offset += static_cast<std::int64_t>(chunk->size());
  }
  const std::string actual = h.finishHex();
  if (actual != hash) {
    return abandon(Status::corruption("plugin " + hash + " failed verification: got " + actual));
  }
  if (std::fclose(out) != 0) {
    std::filesystem::remove(part, ec);
    return Status::ioError("cannot write " + part.string());
  }
  std::filesystem::rename(part, dir_ / (hash + ".so"), ec);
  if (ec) return Status::ioError("cannot store plugin " + hash + ": " + ec.message());
  return Status::ok();
}

}  // namespace weir::engine
