// A TaskManager's on-disk cache of plugins, by SHA-256: <dir>/<hash>.so.
//
// get() returns a verified local copy: a cached file is re-hashed the first time this process uses
// it (a damaged one is fetched again); a missing one is fetched chunk by chunk into
// <dir>/<hash>.part while it is hashed, checked against the hash it was asked for, and renamed
// into place. Nothing is ever held whole in memory. Concurrent get()s of one hash fetch it once.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>

#include "weir/status.h"

namespace weir::engine {

class PluginCache {
 public:
  // Returns up to `length` bytes of the blob from `offset`.
  using ChunkFetcher = std::function<Result<std::string>(std::int64_t offset, std::int32_t length)>;

  explicit PluginCache(std::filesystem::path dir, std::int32_t chunk_size = 1 << 20);

  // Creates the folder and deletes partial fetches left by an earlier run.
  Status open();
  Result<std::filesystem::path> get(const std::string& hash, std::int64_t size,
                                    const ChunkFetcher& fetch);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Status fetchInto(const std::string& hash, std::int64_t size, const ChunkFetcher& fetch);

  const std::filesystem::path dir_;
  const std::int32_t chunk_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> verified_;  // guarded by mu_
  std::set<std::string> fetching_;  // guarded by mu_
};

}  // namespace weir::engine
