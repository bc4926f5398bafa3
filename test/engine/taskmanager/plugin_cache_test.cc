#include "taskmanager/plugin_cache.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "jobmanager/blob_store.h"
#include "process_util.h"
#include "test_data.h"

using weir::Result;
using weir::Status;
using weir::engine::BlobStore;
using weir::engine::PluginCache;
using weir::engine::sha256Hex;
using weir::testing::randomBytes;
using weir::testing::readFile;
using weir::testing::TempDir;

namespace {

constexpr std::int32_t kMiB = 1 << 20;

std::vector<std::string> filesIn(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A JobManager-side blob store holding one blob, and a TaskManager-side cache with 1 MiB chunks.
struct Fixture {
  TempDir tmp;
  BlobStore store{std::filesystem::path(tmp.path()) / "jm"};
  std::filesystem::path cache_dir = std::filesystem::path(tmp.path()) / "tm";
  std::string data;
  std::string hash;
  std::int64_t size = 0;
  std::atomic<int> fetches{0};

  explicit Fixture(std::size_t n = 10'000'000) : data(randomBytes(n, 5)) {
    REQUIRE(store.open().isOk());
    const std::string file = tmp.file("plugin.so");
    std::ofstream(file, std::ios::binary) << data;
    auto h = store.storeFile(file);
    REQUIRE_MESSAGE(h.isOk(), h.status().message());
    hash = *h;
    size = static_cast<std::int64_t>(data.size());
  }

  // Reads from the blob store, counting calls.
  PluginCache::ChunkFetcher fetcher() {
    return [this](std::int64_t offset, std::int32_t length) -> Result<std::string> {
      ++fetches;
      return store.readChunk(hash, offset, length);
    };
  }
};

}  // namespace

TEST_CASE("plugin cache: fetches a blob chunk by chunk from a blob store and reuses it") {
  Fixture f;
  PluginCache cache(f.cache_dir, kMiB);
  REQUIRE(cache.open().isOk());
  auto path = cache.get(f.hash, f.size, f.fetcher());
  REQUIRE_MESSAGE(path.isOk(), path.status().message());
  CHECK(*path == f.cache_dir / (f.hash + ".so"));
  CHECK(readFile(path->string()) == f.data);
  CHECK(f.fetches == 10);  // 10 MB in 1 MiB chunks
  CHECK(filesIn(f.cache_dir) == std::vector<std::string>{f.hash + ".so"});

  // The same cache: no fetch.
  auto again = cache.get(f.hash, f.size, f.fetcher());
  REQUIRE(again.isOk());
  CHECK(*again == *path);
  CHECK(f.fetches == 10);

  // A new cache on the same folder (a restarted TaskManager) re-verifies the file, no fetch.
  PluginCache restarted(f.cache_dir, kMiB);
  REQUIRE(restarted.open().isOk());
  auto reused = restarted.get(f.hash, f.size, f.fetcher());
  REQUIRE(reused.isOk());
  CHECK(*reused == *path);
  CHECK(f.fetches == 10);
}

TEST_CASE("plugin cache: a damaged cached file is deleted and fetched again") {
  Fixture f(3 * kMiB + 7);
  {
    PluginCache cache(f.cache_dir, kMiB);
    REQUIRE(cache.open().isOk());
    REQUIRE(cache.get(f.hash, f.size, f.fetcher()).isOk());
  }
  CHECK(f.fetches == 4);
  const auto cached = f.cache_dir / (f.hash + ".so");

  SUBCASE("a flipped byte") {
    std::fstream file(cached, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(12345);
    file.put(static_cast<char>(f.data[12345] ^ 1));
  }
  SUBCASE("a truncated file") {
    std::filesystem::resize_file(cached, 1000);
  }

  PluginCache cache(f.cache_dir, kMiB);
  REQUIRE(cache.open().isOk());
  auto path = cache.get(f.hash, f.size, f.fetcher());
  REQUIRE_MESSAGE(path.isOk(), path.status().message());
  CHECK(f.fetches == 8);
  CHECK(readFile(path->string()) == f.data);
}

TEST_CASE("plugin cache: bytes that do not match the hash are corruption and leave no file") {
  Fixture f(2 * kMiB);
  PluginCache cache(f.cache_dir, kMiB);
  REQUIRE(cache.open().isOk());
  const std::string other = randomBytes(2 * kMiB, 6);
  auto wrong = cache.get(f.hash, f.size, [&](std::int64_t offset, std::int32_t length) {
    return Result<std::string>(other.substr(static_cast<std::size_t>(offset), length));
  });
  REQUIRE_FALSE(wrong.isOk());
  CHECK(wrong.status().code() == Status::Code::kCorruption);
  CHECK(wrong.status().message() ==
        "plugin " + f.hash + " failed verification: got " + sha256Hex(other));
  CHECK(filesIn(f.cache_dir).empty());

  // Chunks that are empty or longer than asked for are refused before hashing.
  auto empty = cache.get(f.hash, f.size, [](std::int64_t, std::int32_t) {
    return Result<std::string>(std::string());
  });
  CHECK(empty.status().code() == Status::Code::kCorruption);
  auto longer = cache.get(f.hash, f.size, [](std::int64_t, std::int32_t length) {
    return Result<std::string>(std::string(static_cast<std::size_t>(length) + 1, 'x'));
  });
  CHECK(longer.status().code() == Status::Code::kCorruption);
  CHECK(filesIn(f.cache_dir).empty());

  // The cache is not stuck: the right bytes still work.
  REQUIRE(cache.get(f.hash, f.size, f.fetcher()).isOk());
}

TEST_CASE("plugin cache: a fetch error is returned as is and leaves no file") {
  Fixture f(3 * kMiB);
  PluginCache cache(f.cache_dir, kMiB);
  REQUIRE(cache.open().isOk());
  int calls = 0;
  auto r = cache.get(f.hash, f.size, [&](std::int64_t offset, std::int32_t length) {
    if (++calls == 2) return Result<std::string>(Status::ioError("JobManager unreachable"));
    return f.store.readChunk(f.hash, offset, length);
  });
  REQUIRE_FALSE(r.isOk());
  CHECK(r.status().code() == Status::Code::kIoError);
  CHECK(r.status().message() == "JobManager unreachable");
  CHECK(calls == 2);
  CHECK(filesIn(f.cache_dir).empty());

  // A throwing fetcher becomes an error, cleans up, and does not wedge the hash.
  auto thrown = cache.get(f.hash, f.size, [&](std::int64_t offset, std::int32_t length) {
    if (offset > 0) throw std::runtime_error("transport closed");
    return f.store.readChunk(f.hash, offset, length);
  });
  CHECK(thrown.status().code() == Status::Code::kInternal);
  CHECK(thrown.status().message().find("transport closed") != std::string::npos);
  CHECK(filesIn(f.cache_dir).empty());
  REQUIRE(cache.get(f.hash, f.size, f.fetcher()).isOk());
}

TEST_CASE("plugin cache: concurrent gets of one hash fetch it once") {
  Fixture f(4 * kMiB);
  PluginCache cache(f.cache_dir, kMiB);
  REQUIRE(cache.open().isOk());
  std::atomic<int> from_start{0};
  const PluginCache::ChunkFetcher slow = [&](std::int64_t offset, std::int32_t length) {
    if (offset == 0) ++from_start;
    ++f.fetches;
    // Slow enough that the other threads arrive while the first one is still fetching.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    return f.store.readChunk(f.hash, offset, length);
  };
  std::vector<Result<std::filesystem::path>> results(4, Status::internal("not run"));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i)
    threads.emplace_back([&, i] { results[i] = cache.get(f.hash, f.size, slow); });
  for (auto& t : threads)
    t.join();
  for (const auto& r : results) {
    REQUIRE_MESSAGE(r.isOk(), r.status().message());
    CHECK(*r == f.cache_dir / (f.hash + ".so"));
  }
  CHECK(from_start == 1);
  CHECK(f.fetches == 4);
  CHECK(readFile((f.cache_dir / (f.hash + ".so")).string()) == f.data);
}

TEST_CASE("plugin cache: open() deletes partial fetches and keeps complete plugins") {
  Fixture f(1000);
  {
    PluginCache cache(f.cache_dir, kMiB);
    REQUIRE(cache.open().isOk());
    REQUIRE(cache.get(f.hash, f.size, f.fetcher()).isOk());
  }
  std::ofstream(f.cache_dir / (sha256Hex("x") + ".part"), std::ios::binary) << "half";
  PluginCache cache(f.cache_dir, kMiB);
  REQUIRE(cache.open().isOk());
  CHECK(filesIn(f.cache_dir) == std::vector<std::string>{f.hash + ".so"});
  REQUIRE(cache.get(f.hash, f.size, f.fetcher()).isOk());
  CHECK(f.fetches == 1);
}

TEST_CASE("plugin cache: bad arguments are refused") {
  TempDir tmp;
  PluginCache cache(tmp.path(), kMiB);
  REQUIRE(cache.open().isOk());
  int calls = 0;
  const PluginCache::ChunkFetcher never = [&](std::int64_t, std::int32_t) {
    ++calls;
    return Result<std::string>(std::string("x"));
  };
  CHECK(cache.get("../escape", 1, never).status().code() == Status::Code::kInvalidArgument);
  CHECK(cache.get(std::string(64, 'A'), 1, never).status().code() ==
        Status::Code::kInvalidArgument);
  CHECK(cache.get(sha256Hex("x"), 0, never).status().code() == Status::Code::kInvalidArgument);
  CHECK(calls == 0);
  PluginCache zero(tmp.path(), 0);
  CHECK(zero.open().code() == Status::Code::kInvalidArgument);
}
