// Content-addressed plugin storage: SHA-256, the JobManager's blob store and the TaskManager's
// plugin cache.
#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include "common/sha256.h"
#include "jobmanager/blob_store.h"
#include "process_util.h"
#include "taskmanager/plugin_cache.h"

using weir::Result;
using weir::Status;
using weir::engine::BlobStore;
using weir::engine::PluginCache;
using weir::engine::sha256Hex;
using weir::testing::TempDir;

namespace {

std::string randomBytes(std::size_t n, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

std::string upload(BlobStore& store, const std::string& data, std::size_t chunk) {
  auto id = store.beginUpload(static_cast<std::int64_t>(data.size()));
  REQUIRE(id.isOk());
  for (std::size_t off = 0; off < data.size(); off += chunk) {
    REQUIRE(store
                .appendChunk(*id, static_cast<std::int64_t>(off),
                             std::string_view(data).substr(off, chunk))
                .isOk());
  }
  auto hash = store.finishUpload(*id, sha256Hex(data));
  REQUIRE_MESSAGE(hash.isOk(), hash.status().message());
  return *hash;
}

std::size_t filesIn(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    n += e.is_regular_file();
  return n;
}

}  // namespace

TEST_CASE("sha256: known vectors, files, and the hex check") {
  CHECK(sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  TempDir dir;
  const std::string data = randomBytes(3 << 20);
  std::ofstream(dir.file("f"), std::ios::binary) << data;
  auto h = weir::engine::sha256File(dir.file("f"));
  REQUIRE(h.isOk());
  CHECK(*h == sha256Hex(data));
  CHECK_FALSE(weir::engine::sha256File(dir.file("missing")).isOk());
  CHECK(weir::engine::isSha256Hex(sha256Hex("x")));
  CHECK_FALSE(weir::engine::isSha256Hex("abc"));
  CHECK_FALSE(weir::engine::isSha256Hex(std::string(64, 'G')));
}

TEST_CASE("blob store: a chunked upload is stored under its hash and read back in chunks") {
  TempDir dir;
  BlobStore store(dir.file("blobs"));
  REQUIRE(store.open().isOk());
  const std::string data = randomBytes(10 << 20);
  const std::string hash = upload(store, data, 1 << 20);
  CHECK(hash == sha256Hex(data));
  CHECK(store.contains(hash));
  CHECK(*store.size(hash) == static_cast<std::int64_t>(data.size()));
  std::string back;
  for (std::int64_t off = 0; off < *store.size(hash); off += 3 << 20) {
    auto chunk = store.readChunk(hash, off, 3 << 20);
    REQUIRE(chunk.isOk());
    back += *chunk;
  }
  CHECK(back == data);
  // Reads are bounded.
  CHECK(store.readChunk(hash, 0, 64 << 20)->size() == static_cast<std::size_t>(8 << 20));
  CHECK_FALSE(store.readChunk(hash, -1, 10).isOk());
  CHECK_FALSE(store.readChunk(hash, static_cast<std::int64_t>(data.size()) + 1, 10).isOk());
  CHECK(store.readChunk(sha256Hex("other"), 0, 10).status().code() == Status::Code::kNotFound);
  CHECK(store.readChunk("../../etc/passwd", 0, 10).status().code() ==
        Status::Code::kInvalidArgument);

  // The same content again: still one file.
  CHECK(upload(store, data, 4 << 20) == hash);
  CHECK(filesIn(dir.file("blobs")) == 1);
}

TEST_CASE("blob store: corrupt, out-of-order, oversized and unknown uploads are refused") {
  TempDir dir;
  BlobStore store(dir.file("blobs"));
  REQUIRE(store.open().isOk());
  const std::string data = randomBytes(100000);

  SUBCASE("a hash mismatch is corruption and stores nothing") {
    auto id = store.beginUpload(static_cast<std::int64_t>(data.size()));
    std::string damaged = data;
    damaged[777] ^= 1;
    REQUIRE(store.appendChunk(*id, 0, damaged).isOk());
    auto r = store.finishUpload(*id, sha256Hex(data));
    CHECK(r.status().code() == Status::Code::kCorruption);
    CHECK(r.status().message().find(sha256Hex(data)) != std::string::npos);
    CHECK(r.status().message().find(sha256Hex(damaged)) != std::string::npos);
    CHECK_FALSE(store.contains(sha256Hex(data)));
    CHECK_FALSE(store.contains(sha256Hex(damaged)));
    CHECK(filesIn(dir.file("blobs/incoming")) == 0);
  }
  SUBCASE("chunks must come in order and within the size") {
    auto id = store.beginUpload(10);
    CHECK(store.appendChunk(*id, 5, "abc").code() == Status::Code::kInvalidArgument);
    REQUIRE(store.appendChunk(*id, 0, "abcde").isOk());
    CHECK(store.appendChunk(*id, 5, "toolongchunk").code() == Status::Code::kInvalidArgument);
    // The overrun ended the upload.
    CHECK(store.appendChunk(*id, 5, "fghij").code() == Status::Code::kNotFound);
  }
  SUBCASE("a short upload is refused") {
    auto id = store.beginUpload(10);
    REQUIRE(store.appendChunk(*id, 0, "abc").isOk());
    CHECK(store.finishUpload(*id, sha256Hex("abc")).status().code() ==
          Status::Code::kInvalidArgument);
  }
  SUBCASE("sizes and ids") {
    CHECK_FALSE(store.beginUpload(0).isOk());
    CHECK_FALSE(store.beginUpload(BlobStore::kMaxBlobSize + 1).isOk());
    CHECK(store.appendChunk("nope", 0, "x").code() == Status::Code::kNotFound);
    CHECK(store.finishUpload("nope", sha256Hex("x")).status().code() == Status::Code::kNotFound);
    auto id = store.beginUpload(1);
    REQUIRE(store.appendChunk(*id, 0, "x").isOk());
    CHECK(store.finishUpload(*id, "not-a-hash").status().code() == Status::Code::kInvalidArgument);
  }
}

TEST_CASE("blob store: open() removes partial uploads of an earlier run") {
  TempDir dir;
  {
    BlobStore store(dir.file("blobs"));
    REQUIRE(store.open().isOk());
  }
  std::ofstream(dir.file("blobs/incoming/123-1")) << "partial";
  BlobStore store(dir.file("blobs"));
  REQUIRE(store.open().isOk());
  CHECK(filesIn(dir.file("blobs/incoming")) == 0);
}

TEST_CASE("plugin cache: fetches once, verifies, reuses, and refetches damaged copies") {
  TempDir dir;
  BlobStore store(dir.file("blobs"));
  REQUIRE(store.open().isOk());
  const std::string data = randomBytes(5 << 20, 11);
  const std::string hash = upload(store, data, 1 << 20);
  std::atomic<int> calls{0};
  PluginCache::ChunkFetcher fetch = [&](std::int64_t off, std::int32_t len) {
    ++calls;
    return store.readChunk(hash, off, len);
  };
  const auto size = static_cast<std::int64_t>(data.size());

  {
    PluginCache cache(dir.file("cache"), 1 << 20);
    REQUIRE(cache.open().isOk());
    auto path = cache.get(hash, size, fetch);
    REQUIRE_MESSAGE(path.isOk(), path.status().message());
    CHECK(weir::testing::readFile(path->string()) == data);
    CHECK(calls == 5);
    CHECK(cache.get(hash, size, fetch).isOk());
    CHECK(calls == 5);  // from the cache
  }
  {
    // A new process re-verifies the cached file once and finds it intact.
    PluginCache cache(dir.file("cache"), 1 << 20);
    REQUIRE(cache.open().isOk());
    REQUIRE(cache.get(hash, size, fetch).isOk());
    CHECK(calls == 5);
  }
  {
    // Damaged on disk: fetched again.
    std::fstream f(dir.file("cache/" + hash + ".so"), std::ios::in | std::ios::out);
    f.seekp(100);
    f.put('!');
    f.close();
    PluginCache cache(dir.file("cache"), 1 << 20);
    REQUIRE(cache.open().isOk());
    auto path = cache.get(hash, size, fetch);
    REQUIRE(path.isOk());
    CHECK(calls == 10);
    CHECK(weir::testing::readFile(path->string()) == data);
  }
}

TEST_CASE("plugin cache: wrong bytes, fetch errors and bad hashes leave nothing behind") {
  TempDir dir;
  PluginCache cache(dir.file("cache"), 1000);
  REQUIRE(cache.open().isOk());
  const std::string data = randomBytes(5000, 3);
  const std::string hash = sha256Hex(data);

  auto wrong =
      cache.get(hash, 5000, [&](std::int64_t off, std::int32_t len) -> Result<std::string> {
        std::string chunk =
            data.substr(static_cast<std::size_t>(off), static_cast<std::size_t>(len));
        if (off == 2000) chunk[0] ^= 1;
        return chunk;
      });
  CHECK(wrong.status().code() == Status::Code::kCorruption);
  CHECK(wrong.status().message().find("failed verification") != std::string::npos);
  CHECK(filesIn(dir.file("cache")) == 0);

  auto failing = cache.get(hash, 5000, [](std::int64_t, std::int32_t) -> Result<std::string> {
    return Status::ioError("cannot reach 127.0.0.1:1: connection refused");
  });
  CHECK(failing.status().message().find("connection refused") != std::string::npos);
  CHECK(filesIn(dir.file("cache")) == 0);

  auto empty = cache.get(
      hash, 5000, [](std::int64_t, std::int32_t) -> Result<std::string> { return std::string(); });
  CHECK(empty.status().code() == Status::Code::kCorruption);
  CHECK_FALSE(cache.get("../escape", 10, nullptr).isOk());
}

TEST_CASE("plugin cache: concurrent requests for one plugin fetch it once") {
  TempDir dir;
  PluginCache cache(dir.file("cache"), 1000);
  REQUIRE(cache.open().isOk());
  const std::string data = randomBytes(20000, 5);
  const std::string hash = sha256Hex(data);
  std::atomic<int> calls{0};
  auto fetch = [&](std::int64_t off, std::int32_t len) -> Result<std::string> {
    ++calls;
    std::this_thread::yield();
    return data.substr(static_cast<std::size_t>(off), static_cast<std::size_t>(len));
  };
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] { ok += cache.get(hash, 20000, fetch).isOk(); });
  }
  for (auto& t : threads)
    t.join();
  CHECK(ok == 4);
  CHECK(calls == 20);
}
