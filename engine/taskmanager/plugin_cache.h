// A TaskManager's on-disk cache of plugins, by SHA-256: <dir>/<hash>.so.
//
// get() returns a verified local copy: a cached file is re-hashed the first time this process uses
// it (a damaged one is fetched again); a missing one is fetched chunk by chunk into
// <dir>/<hash>.part while it is hashed, checked against the hash it was asked for, and renamed
// into place. Nothing is ever held whole in memory. Concurrent get()s of one hash fetch it once.
//
// Thread-safe: mu_ guards only the bookkeeping; hashing and fetching run outside it, one thread per
// hash at a time (others asking for that hash wait on cv_). A directory belongs to one PluginCache:
// two caches (or processes) sharing one would write the same <hash>.part.
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

  // Creates the folder and deletes partial fetches (*.part) left by an earlier run. Call it once,
  // before get().
  Status open();
  // The path of a verified local copy of blob `hash` (`size` bytes), fetching it through `fetch`
  // when it is not cached or the cached copy is damaged. A fetch error is returned as is; bytes
  // that do not hash to `hash` (or a fetcher returning an empty or oversized chunk) are CORRUPTION;
  // an exception thrown by `fetch` becomes INTERNAL. On failure no file is left for `hash`.
  Result<std::filesystem::path> get(const std::string& hash, std::int64_t size,
                                    const ChunkFetcher& fetch);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  // Re-hashes a cached copy, fetching again when it is missing or damaged.
  Status verifyOrFetch(const std::string& hash, std::int64_t size, const ChunkFetcher& fetch);
  Status fetchInto(const std::string& hash, std::int64_t size, const ChunkFetcher& fetch);

  const std::filesystem::path dir_;
  const std::int32_t chunk_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> verified_;  // guarded by mu_
  std::set<std::string> fetching_;  // guarded by mu_
};

}  // namespace weir::engine
