#include "jobmanager/blob_store.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "process_util.h"
#include "test_data.h"

using weir::Status;
using weir::engine::BlobStore;
using weir::engine::sha256Hex;
using weir::testing::randomBytes;
using weir::testing::TempDir;

namespace {

constexpr std::size_t kMiB = 1 << 20;

// Uploads `data` in chunks of `chunk` bytes and returns finishUpload's result.
weir::Result<std::string> upload(BlobStore& store, std::string_view data, std::size_t chunk,
                                 const std::string& claimed_hash) {
  auto id = store.beginUpload(static_cast<std::int64_t>(data.size()));
  REQUIRE_MESSAGE(id.isOk(), id.status().message());
  for (std::size_t off = 0; off < data.size(); off += chunk) {
    Status s = store.appendChunk(*id, static_cast<std::int64_t>(off), data.substr(off, chunk));
    REQUIRE_MESSAGE(s.isOk(), s.message());
  }
  return store.finishUpload(*id, claimed_hash);
}

std::string upload(BlobStore& store, std::string_view data, std::size_t chunk = kMiB) {
  auto hash = upload(store, data, chunk, sha256Hex(data));
  REQUIRE_MESSAGE(hash.isOk(), hash.status().message());
  return *hash;
}

std::vector<std::string> filesIn(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A store in a fresh folder, opened.
struct Fixture {
  TempDir tmp;
  std::filesystem::path dir = std::filesystem::path(tmp.path()) / "blobs";
  BlobStore store{dir};
  Fixture() { REQUIRE(store.open().isOk()); }
};

}  // namespace

TEST_CASE("blob store: a 10 MB blob uploaded in 1 MB chunks reads back byte for byte") {
  Fixture f;
  const std::string data = randomBytes(10'000'000, 42);
  const std::string hash = upload(f.store, data);
  CHECK(hash == sha256Hex(data));
  CHECK(f.store.contains(hash));
  CHECK(f.store.path(hash) == f.dir / (hash + ".so"));
  CHECK(filesIn(f.dir) == std::vector<std::string>{hash + ".so"});
  CHECK(filesIn(f.dir / "incoming").empty());
  auto size = f.store.size(hash);
  REQUIRE(size.isOk());
  CHECK(*size == 10'000'000);

  std::string back;
  for (std::int64_t off = 0; off < *size;) {
    auto chunk = f.store.readChunk(hash, off, 3 << 20);
    REQUIRE_MESSAGE(chunk.isOk(), chunk.status().message());
    REQUIRE_FALSE(chunk->empty());
    back += *chunk;
    off += static_cast<std::int64_t>(chunk->size());
  }
  CHECK(back == data);

  // Reads are capped at 8 MiB and end at the end of the blob.
  auto big = f.store.readChunk(hash, 0, 64 << 20);
  REQUIRE(big.isOk());
  CHECK(big->size() == std::size_t{BlobStore::kMaxChunk});
  auto tail = f.store.readChunk(hash, 9'999'990, 100);
  REQUIRE(tail.isOk());
  CHECK(*tail == data.substr(9'999'990));
  auto at_end = f.store.readChunk(hash, 10'000'000, 100);
  REQUIRE(at_end.isOk());
  CHECK(at_end->empty());
}

TEST_CASE("blob store: reads outside a blob, of unknown blobs or with bad hash text are refused") {
  Fixture f;
  const std::string hash = upload(f.store, "plugin bytes");
  CHECK(f.store.readChunk(hash, 13, 1).status().code() == Status::Code::kInvalidArgument);
  CHECK(f.store.readChunk(hash, -1, 1).status().code() == Status::Code::kInvalidArgument);
  CHECK(f.store.readChunk(hash, 0, -1).status().code() == Status::Code::kInvalidArgument);

  const std::string unknown = sha256Hex("not stored");
  CHECK_FALSE(f.store.contains(unknown));
  CHECK(f.store.size(unknown).status().code() == Status::Code::kNotFound);
  CHECK(f.store.readChunk(unknown, 0, 1).status().code() == Status::Code::kNotFound);

  for (const std::string& bad :
       {std::string(), std::string("../../etc/passwd"), std::string("ABC"), std::string(64, 'A')}) {
    CAPTURE(bad);
    CHECK_FALSE(f.store.contains(bad));
    CHECK(f.store.size(bad).status().code() == Status::Code::kInvalidArgument);
    auto r = f.store.readChunk(bad, 0, 1);
    CHECK(r.status().code() == Status::Code::kInvalidArgument);
    CHECK(r.status().message().find("SHA-256") != std::string::npos);
  }
}

TEST_CASE("blob store: a wrong hash is corruption naming both hashes, and nothing is stored") {
  Fixture f;
  const std::string data = randomBytes(3 * kMiB + 17, 1);
  const std::string claimed = sha256Hex("something else");
  auto r = upload(f.store, data, kMiB, claimed);
  REQUIRE_FALSE(r.isOk());
  CHECK(r.status().code() == Status::Code::kCorruption);
  CHECK(r.status().message().find(claimed) != std::string::npos);
  CHECK(r.status().message().find(sha256Hex(data)) != std::string::npos);
  CHECK_FALSE(f.store.contains(sha256Hex(data)));
  CHECK_FALSE(f.store.contains(claimed));
  CHECK(filesIn(f.dir).empty());
  CHECK(filesIn(f.dir / "incoming").empty());

  // Claimed hash text that is not a SHA-256 at all.
  auto bad = upload(f.store, data, kMiB, "not-a-hash");
  CHECK(bad.status().code() == Status::Code::kInvalidArgument);
  CHECK(filesIn(f.dir).empty());
  CHECK(filesIn(f.dir / "incoming").empty());
}

TEST_CASE("blob store: out-of-order chunks, overruns and short uploads are refused") {
  Fixture f;
  const std::string data = randomBytes(100, 2);
  auto id = f.store.beginUpload(100);
  REQUIRE(id.isOk());

  SUBCASE("a chunk at the wrong offset is refused and the upload goes on") {
    REQUIRE(f.store.appendChunk(*id, 0, std::string_view(data).substr(0, 40)).isOk());
    Status gap = f.store.appendChunk(*id, 50, std::string_view(data).substr(50, 10));
    CHECK(gap.code() == Status::Code::kInvalidArgument);
    CHECK(gap.message().find("offset 50, expected 40") != std::string::npos);
    Status replay = f.store.appendChunk(*id, 0, std::string_view(data).substr(0, 40));
    CHECK(replay.code() == Status::Code::kInvalidArgument);
    REQUIRE(f.store.appendChunk(*id, 40, std::string_view(data).substr(40)).isOk());
    auto hash = f.store.finishUpload(*id, sha256Hex(data));
    REQUIRE(hash.isOk());
    CHECK(f.store.contains(*hash));
  }

  SUBCASE("a chunk past the announced size aborts the upload") {
    REQUIRE(f.store.appendChunk(*id, 0, std::string_view(data).substr(0, 60)).isOk());
    Status over = f.store.appendChunk(*id, 60, data);
    CHECK(over.code() == Status::Code::kInvalidArgument);
    CHECK(over.message().find("100 bytes") != std::string::npos);
    CHECK(filesIn(f.dir / "incoming").empty());
    CHECK(f.store.appendChunk(*id, 60, "x").code() == Status::Code::kNotFound);
    CHECK(f.store.finishUpload(*id, sha256Hex(data)).status().code() == Status::Code::kNotFound);
  }

  SUBCASE("finishing before every byte arrived is refused") {
    REQUIRE(f.store.appendChunk(*id, 0, std::string_view(data).substr(0, 99)).isOk());
    auto r = f.store.finishUpload(*id, sha256Hex(data));
    CHECK(r.status().code() == Status::Code::kInvalidArgument);
    CHECK(r.status().message().find("99 of 100") != std::string::npos);
    CHECK(filesIn(f.dir).empty());
    CHECK(filesIn(f.dir / "incoming").empty());
  }
}

TEST_CASE("blob store: sizes outside 1 byte .. 2 GiB are refused") {
  Fixture f;
  for (std::int64_t size : {std::int64_t{0}, std::int64_t{-1}, BlobStore::kMaxBlobSize + 1}) {
    CAPTURE(size);
    auto r = f.store.beginUpload(size);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == Status::Code::kInvalidArgument);
    CHECK(r.status().message().find(std::to_string(size)) != std::string::npos);
  }
  auto max = f.store.beginUpload(BlobStore::kMaxBlobSize);  // allowed; nothing is allocated
  REQUIRE(max.isOk());
  f.store.abortUpload(*max);
  CHECK(filesIn(f.dir / "incoming").empty());
}

TEST_CASE("blob store: unknown, finished and aborted upload ids are NOT_FOUND") {
  Fixture f;
  CHECK(f.store.appendChunk("no-such-upload", 0, "x").code() == Status::Code::kNotFound);
  CHECK(f.store.finishUpload("no-such-upload", sha256Hex("x")).status().code() ==
        Status::Code::kNotFound);
  f.store.abortUpload("no-such-upload");  // ignored

  auto id = f.store.beginUpload(3);
  REQUIRE(id.isOk());
  REQUIRE(f.store.appendChunk(*id, 0, "abc").isOk());
  REQUIRE(f.store.finishUpload(*id, sha256Hex("abc")).isOk());
  CHECK(f.store.appendChunk(*id, 3, "d").code() == Status::Code::kNotFound);
  CHECK(f.store.finishUpload(*id, sha256Hex("abc")).status().code() == Status::Code::kNotFound);

  auto aborted = f.store.beginUpload(3);
  REQUIRE(aborted.isOk());
  REQUIRE(f.store.appendChunk(*aborted, 0, "ab").isOk());
  CHECK(filesIn(f.dir / "incoming").size() == 1);
  f.store.abortUpload(*aborted);
  CHECK(filesIn(f.dir / "incoming").empty());
  CHECK(f.store.appendChunk(*aborted, 2, "c").code() == Status::Code::kNotFound);
}

TEST_CASE("blob store: open() deletes partial uploads left by an earlier run and keeps blobs") {
  TempDir tmp;
  const auto dir = std::filesystem::path(tmp.path()) / "blobs";
  std::string hash;
  {
    BlobStore first(dir);
    REQUIRE(first.open().isOk());
    hash = upload(first, "kept");
  }
  std::filesystem::create_directories(dir / "incoming" / "a-dir");
  std::ofstream(dir / "incoming" / "123-1", std::ios::binary) << "half an upload";
  std::ofstream(dir / "incoming" / "a-dir" / "x", std::ios::binary) << "x";

  BlobStore second(dir);
  REQUIRE(second.open().isOk());
  CHECK(std::filesystem::is_empty(dir / "incoming"));
  CHECK(second.contains(hash));
  auto back = second.readChunk(hash, 0, 100);
  REQUIRE(back.isOk());
  CHECK(*back == "kept");
}

TEST_CASE("blob store: two uploads of the same content keep one file") {
  Fixture f;
  const std::string data = randomBytes(2 * kMiB + 5, 3);
  const std::string a = upload(f.store, data, kMiB);
  const std::string b = upload(f.store, data, 300'000);
  CHECK(a == b);
  CHECK(filesIn(f.dir) == std::vector<std::string>{a + ".so"});
  CHECK(filesIn(f.dir / "incoming").empty());
  CHECK(f.store.size(a).value() == static_cast<std::int64_t>(data.size()));
}

TEST_CASE("blob store: concurrent uploads from several threads") {
  Fixture f;
  constexpr int kThreads = 4;
  std::vector<std::string> blobs;
  for (int i = 0; i < kThreads; ++i)
    blobs.push_back(randomBytes(3 * kMiB + static_cast<std::size_t>(i), 100 + i));
  blobs.push_back(blobs[0]);  // the same content twice, at the same time
  // Returns an error message, or "" with `hash` set.
  auto run = [&](const std::string& data, std::string& hash) -> std::string {
    auto id = f.store.beginUpload(static_cast<std::int64_t>(data.size()));
    if (!id.isOk()) return id.status().message();
    for (std::size_t off = 0; off < data.size(); off += 256 * 1024) {
      Status s = f.store.appendChunk(*id, static_cast<std::int64_t>(off),
                                     std::string_view(data).substr(off, 256 * 1024));
      if (!s.isOk()) return s.message();
    }
    auto h = f.store.finishUpload(*id, sha256Hex(data));
    if (!h.isOk()) return h.status().message();
    hash = *h;
    return "";
  };
  std::vector<std::string> hashes(blobs.size());
  std::vector<std::string> errors(blobs.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < blobs.size(); ++t)
    threads.emplace_back([&, t] { errors[t] = run(blobs[t], hashes[t]); });
  for (auto& t : threads)
    t.join();
  for (std::size_t t = 0; t < blobs.size(); ++t) {
    CAPTURE(t);
    CHECK(errors[t] == "");
    CHECK(hashes[t] == sha256Hex(blobs[t]));
    auto back = f.store.readChunk(hashes[t], 0, BlobStore::kMaxChunk);
    REQUIRE(back.isOk());
    CHECK(*back == blobs[t]);
  }
  CHECK(filesIn(f.dir).size() == kThreads);
  CHECK(filesIn(f.dir / "incoming").empty());
}

TEST_CASE("blob store: storeFile streams a local file in") {
  Fixture f;
  const std::string data = randomBytes(2 * kMiB + 1, 9);
  const std::string file = f.tmp.file("plugin.so");
  std::ofstream(file, std::ios::binary) << data;
  auto hash = f.store.storeFile(file);
  REQUIRE_MESSAGE(hash.isOk(), hash.status().message());
  CHECK(*hash == sha256Hex(data));
  CHECK(f.store.size(*hash).value() == static_cast<std::int64_t>(data.size()));
  CHECK(f.store.storeFile(f.tmp.file("missing.so")).status().code() == Status::Code::kIoError);
}
