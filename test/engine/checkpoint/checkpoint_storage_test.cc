#include "checkpoint/checkpoint_storage.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/checkpoint/checkpoint_test_util.h"
#include "process_util.h"

namespace fs = std::filesystem;
using weir::Status;
using weir::engine::CheckpointStorage;
using weir::testing::makeMetadata;
using weir::testing::readFile;
using weir::testing::TempDir;
using weir::testing::writeStateFile;

namespace {

void writeRaw(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A storage under `tmp` with checkpoint `id` of job "job-a" completed; returns its _metadata.
fs::path completeCheckpoint(CheckpointStorage& storage, int64_t id) {
  auto dir = storage.createCheckpointDir("job-a", id);
  REQUIRE(dir.isOk());
  auto md = makeMetadata(
      "job-a", id,
      {writeStateFile(storage.jobDir("job-a"), "chk-" + std::to_string(id) + "/state", "private")},
      {});
  REQUIRE(storage.writeMetadata(md).isOk());
  return *dir / "_metadata";
}

}  // namespace

TEST_CASE("checkpoint storage: URIs") {
  auto a = weir::engine::parseCheckpointUri("file:///var/weir/ckpt");
  REQUIRE(a.isOk());
  CHECK(*a == fs::path("/var/weir/ckpt"));
  auto b = weir::engine::parseCheckpointUri("/var/weir//ckpt/");
  REQUIRE(b.isOk());
  CHECK(*b == fs::path("/var/weir/ckpt"));
  auto root = weir::engine::parseCheckpointUri("file:///");
  REQUIRE(root.isOk());
  CHECK(*root == fs::path("/"));

  auto relative = CheckpointStorage::open("ckpt/dir");
  REQUIRE_FALSE(relative.isOk());
  CHECK(relative.status().code() == Status::Code::kInvalidArgument);
  CHECK(relative.status().message().find("must be absolute") != std::string::npos);

  auto relative_uri = CheckpointStorage::open("file://ckpt/dir");
  REQUIRE_FALSE(relative_uri.isOk());
  CHECK(relative_uri.status().message().find("absolute") != std::string::npos);

  auto s3 = CheckpointStorage::open("s3://bucket/ckpt");
  REQUIRE_FALSE(s3.isOk());
  CHECK(s3.status().message().find("unsupported scheme 's3'") != std::string::npos);

  CHECK_FALSE(CheckpointStorage::open("").isOk());
  CHECK_FALSE(weir::engine::createSavepointDir("hdfs://nn/sp", "job-a").isOk());
}

TEST_CASE("checkpoint storage: metadata round trip and layout") {
  TempDir tmp;
  auto storage = CheckpointStorage::open("file://" + tmp.path());
  REQUIRE(storage.isOk());
  auto dir = storage->createCheckpointDir("job-a", 3);
  REQUIRE(dir.isOk());
  CHECK(*dir == fs::path(tmp.path()) / "job-a" / "chk-3");
  CHECK(fs::is_directory(fs::path(tmp.path()) / "job-a" / "shared"));
  CHECK(fs::is_directory(fs::path(tmp.path()) / "job-a" / "taskowned"));

  const fs::path job_dir = storage->jobDir("job-a");
  auto md = makeMetadata("job-a", 3, {writeStateFile(job_dir, "chk-3/op-0.heap", "heap bytes")},
                         {writeStateFile(job_dir, "shared/000012.sst", "sst bytes")});
  md.isSavepoint = false;
  REQUIRE(storage->writeMetadata(md).isOk());
  CHECK(fs::exists(*dir / "_metadata"));
  CHECK_FALSE(fs::exists(*dir / "_metadata.tmp"));

  auto loaded = storage->loadMetadata("job-a", 3, true);
  REQUIRE(loaded.isOk());
  CHECK(*loaded == md);
  CHECK(loaded->operators.at(0).subtasks.at(0).operatorState.size() == 10);
  CHECK(loaded->operators.at(0).subtasks.at(0).keyed.at(0).kind ==
        weir::thrift::KeyedStateKind::ROCKSDB_INCREMENTAL);
  CHECK(loaded->operators.at(0).subtasks.at(0).keyed.at(0).sharedFiles.at(0).sha256 ==
        weir::engine::sha256Hex("sst bytes"));

  // A second _metadata for the same id is refused.
  CHECK_FALSE(storage->createCheckpointDir("job-a", 3).isOk());
  // Bad job ids and file paths escaping the job directory are refused.
  CHECK_FALSE(storage->createCheckpointDir("../evil", 4).isOk());
  auto escaping = makeMetadata("job-a", 3, {}, {});
  escaping.operators[0].subtasks[0].keyed[0].privateFiles.push_back(
      weir::testing::writeStateFile(tmp.path(), "outside", "x"));
  escaping.operators[0].subtasks[0].keyed[0].privateFiles.back().path = "../outside";
  CHECK(storage->writeMetadata(escaping).code() == Status::Code::kInvalidArgument);
}

TEST_CASE("checkpoint storage: truncated metadata is detected naming the file") {
  TempDir tmp;
  auto storage = CheckpointStorage::open(tmp.path());
  REQUIRE(storage.isOk());
  const fs::path file = completeCheckpoint(*storage, 1);
  const std::string bytes = readFile(file.string());
  for (std::size_t keep : {bytes.size() - 1, bytes.size() - 40, std::size_t{50}, std::size_t{0}}) {
    CAPTURE(keep);
    writeRaw(file, bytes.substr(0, keep));
    auto loaded = storage->loadMetadata("job-a", 1, false);
    REQUIRE_FALSE(loaded.isOk());
    CHECK(loaded.status().code() == Status::Code::kCorruption);
    CHECK(loaded.status().message().find(file.string()) != std::string::npos);
    CHECK(loaded.status().message().find("truncated") != std::string::npos);
  }
}

TEST_CASE("checkpoint storage: a flipped bit anywhere in metadata is detected") {
  TempDir tmp;
  auto storage = CheckpointStorage::open(tmp.path());
  REQUIRE(storage.isOk());
  const fs::path file = completeCheckpoint(*storage, 1);
  const std::string bytes = readFile(file.string());
  for (std::size_t pos = 0; pos < bytes.size(); ++pos) {
    CAPTURE(pos);
    std::string flipped = bytes;
    flipped[pos] = static_cast<char>(flipped[pos] ^ 0x10);
    writeRaw(file, flipped);
    auto loaded = storage->loadMetadata("job-a", 1, false);
    REQUIRE_FALSE(loaded.isOk());
    CHECK(loaded.status().code() == Status::Code::kCorruption);
    CHECK(loaded.status().message().find(file.string()) != std::string::npos);
  }
  writeRaw(file, bytes);
  CHECK(storage->loadMetadata("job-a", 1, false).isOk());
  // The payload flip is reported as a checksum mismatch.
  std::string flipped = bytes;
  flipped[3] = static_cast<char>(flipped[3] ^ 1);
  writeRaw(file, flipped);
  CHECK(storage->loadMetadata("job-a", 1, false).status().message().find("SHA-256") !=
        std::string::npos);
}

TEST_CASE("checkpoint storage: missing metadata and missing or resized files") {
  TempDir tmp;
  auto storage = CheckpointStorage::open(tmp.path());
  REQUIRE(storage.isOk());
  const fs::path file = completeCheckpoint(*storage, 1);

  const fs::path state = storage->jobDir("job-a") / "chk-1" / "state";
  writeRaw(state, "privat");
  CHECK(storage->loadMetadata("job-a", 1, false).isOk());
  auto resized = storage->loadMetadata("job-a", 1, true);
  REQUIRE_FALSE(resized.isOk());
  CHECK(resized.status().message().find("has 6 bytes, metadata records 7") != std::string::npos);
  fs::remove(state);
  auto missing_file = storage->loadMetadata("job-a", 1, true);
  REQUIRE_FALSE(missing_file.isOk());
  CHECK(missing_file.status().message().find(state.string() + " is missing") != std::string::npos);

  fs::remove(file);
  auto missing = storage->loadMetadata("job-a", 1, false);
  REQUIRE_FALSE(missing.isOk());
  CHECK(missing.status().code() == Status::Code::kNotFound);
  CHECK(missing.status().message() == "checkpoint metadata " + file.string() + " does not exist");
}

TEST_CASE("checkpoint storage: listing finds completed checkpoints newest first") {
  TempDir tmp;
  auto storage = CheckpointStorage::open(tmp.path());
  REQUIRE(storage.isOk());
  auto none = storage->listCompleted("job-a");
  REQUIRE(none.isOk());
  CHECK(none->empty());

  completeCheckpoint(*storage, 2);
  completeCheckpoint(*storage, 10);
  completeCheckpoint(*storage, 9);
  // In progress: a directory without _metadata, and a leftover _metadata.tmp from a crash.
  REQUIRE(storage->createCheckpointDir("job-a", 11).isOk());
  writeRaw(storage->checkpointDir("job-a", 11) / "_metadata.tmp", "half written");
  // Corrupt metadata and unrelated entries are not completed checkpoints.
  const fs::path corrupt = completeCheckpoint(*storage, 12);
  writeRaw(corrupt, "garbage");
  fs::create_directories(storage->jobDir("job-a") / "chk-x");
  writeRaw(storage->jobDir("job-a") / "chk-13", "a file, not a directory");

  auto listed = storage->listCompleted("job-a");
  REQUIRE(listed.isOk());
  REQUIRE(listed->size() == 3);
  CHECK((*listed)[0].id == 10);
  CHECK((*listed)[1].id == 9);
  CHECK((*listed)[2].id == 2);
  CHECK((*listed)[0].dir == storage->checkpointDir("job-a", 10));
  CHECK((*listed)[0].metadata.checkpointId == 10);

  // A rewrite after a crash replaces the leftover .tmp.
  auto md = makeMetadata("job-a", 11, {}, {});
  REQUIRE(storage->writeMetadata(md).isOk());
  CHECK_FALSE(fs::exists(storage->checkpointDir("job-a", 11) / "_metadata.tmp"));
  CHECK(storage->listCompleted("job-a")->front().id == 11);

  REQUIRE(storage->deleteCheckpoint("job-a", 10).isOk());
  CHECK_FALSE(fs::exists(storage->checkpointDir("job-a", 10)));
  CHECK(storage->deleteCheckpoint("job-a", 10).isOk());
  CHECK(storage->listCompleted("job-a")->size() == 3);
}

TEST_CASE("checkpoint storage: savepoints are self-contained in their own directory") {
  TempDir tmp;
  const std::string target = "file://" + tmp.path() + "/savepoints";
  auto dir = weir::engine::createSavepointDir(target, "0123456789abcdef");
  REQUIRE(dir.isOk());
  CHECK(dir->parent_path() == fs::path(tmp.path()) / "savepoints");
  CHECK(dir->filename().string().starts_with("savepoint-012345-"));
  CHECK(dir->filename().string().size() == std::string("savepoint-012345-").size() + 12);
  auto other = weir::engine::createSavepointDir(target, "0123456789abcdef");
  REQUIRE(other.isOk());
  CHECK(*other != *dir);

  auto md = makeMetadata("0123456789abcdef", 5, {writeStateFile(*dir, "op-0.heap", "heap")}, {});
  CHECK(weir::engine::writeSavepointMetadata(*dir, md).code() ==
        Status::Code::kInvalidArgument);  // not marked as a savepoint
  md.isSavepoint = true;
  auto outside = md;
  auto file = writeStateFile(*dir, "x.sst", "sst");
  file.path = "../shared/x.sst";
  outside.operators[0].subtasks[0].keyed[0].sharedFiles.push_back(file);
  auto refused = weir::engine::writeSavepointMetadata(*dir, outside);
  CHECK(refused.message().find("self-contained") != std::string::npos);
  outside.operators[0].subtasks[0].keyed[0].sharedFiles.back().path = "/abs/x.sst";
  refused = weir::engine::writeSavepointMetadata(*dir, outside);
  CHECK(refused.message().find("self-contained") != std::string::npos);
  REQUIRE(weir::engine::writeSavepointMetadata(*dir, md).isOk());

  auto by_dir = weir::engine::loadSavepoint(dir->string(), true);
  REQUIRE(by_dir.isOk());
  CHECK(*by_dir == md);
  auto by_file = weir::engine::loadSavepoint("file://" + (*dir / "_metadata").string(), true);
  REQUIRE(by_file.isOk());
  CHECK(*by_file == md);

  // Moving the savepoint keeps it loadable: its paths are relative to its directory.
  const fs::path moved = fs::path(tmp.path()) / "moved";
  fs::rename(*dir, moved);
  CHECK(weir::engine::loadSavepoint(moved.string(), true).isOk());
  fs::remove(moved / "op-0.heap");
  CHECK_FALSE(weir::engine::loadSavepoint(moved.string(), true).isOk());
  CHECK(weir::engine::loadSavepoint(other->string(), false).status().code() ==
        Status::Code::kNotFound);
}
