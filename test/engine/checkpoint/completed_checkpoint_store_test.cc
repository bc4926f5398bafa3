#include "checkpoint/completed_checkpoint_store.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/shared_state_registry.h"
#include "engine/checkpoint/checkpoint_test_util.h"
#include "process_util.h"

namespace fs = std::filesystem;
using weir::engine::CheckpointStorage;
using weir::engine::CompletedCheckpointStore;
using weir::engine::SharedStateRegistry;
using weir::testing::makeMetadata;
using weir::testing::TempDir;
using weir::testing::writeStateFile;

namespace {

constexpr const char* kJob = "job-b";

// Writes checkpoint `id` with one private file and the given shared files (created if absent)
// and returns its metadata; the caller adds it to a store.
weir::thrift::CheckpointMetadata prepare(CheckpointStorage& storage, int64_t id,
                                         const std::vector<std::string>& shared) {
  REQUIRE(storage.createCheckpointDir(kJob, id).isOk());
  const fs::path job_dir = storage.jobDir(kJob);
  std::vector<weir::thrift::StateFile> shared_files;
  for (const auto& name : shared) {
    shared_files.push_back(writeStateFile(job_dir, "shared/" + name, "sst:" + name));
  }
  return makeMetadata(kJob, id,
                      {writeStateFile(job_dir, "chk-" + std::to_string(id) + "/private", "p")},
                      shared_files);
}

std::vector<int64_t> ids(const CompletedCheckpointStore& store) {
  std::vector<int64_t> out;
  for (const auto& c : store.all())
    out.push_back(c.id);
  return out;
}

// Routes the default logger into a string for the lifetime of this object.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace

TEST_CASE("shared state registry: counts references and deletes at zero") {
  TempDir tmp;
  auto storage = CheckpointStorage::open(tmp.path());
  REQUIRE(storage.isOk());
  SharedStateRegistry registry(storage->jobDir(kJob));
  const auto md1 = prepare(*storage, 1, {"a.sst", "b.sst"});
  const auto md2 = prepare(*storage, 2, {"b.sst", "c.sst"});
  registry.registerCheckpoint(md1);
  registry.registerCheckpoint(md2);
  registry.registerCheckpoint(md2);  // idempotent
  CHECK(registry.refCount("shared/a.sst") == 1);
  CHECK(registry.refCount("shared/b.sst") == 2);
  CHECK(registry.fileCount() == 3);

  const auto released = registry.unregisterCheckpoint(1);
  CHECK(released == std::vector<std::string>{"shared/a.sst"});
  CHECK_FALSE(fs::exists(storage->jobDir(kJob) / "shared/a.sst"));
  CHECK(fs::exists(storage->jobDir(kJob) / "shared/b.sst"));
  CHECK(registry.refCount("shared/b.sst") == 1);
  CHECK(registry.unregisterCheckpoint(1).empty());

  registry.rebuild({md1, md2});
  CHECK(registry.refCount("shared/b.sst") == 2);
  CHECK(registry.refCount("shared/a.sst") == 1);
  registry.rebuild({});
  CHECK(registry.fileCount() == 0);
  CHECK(fs::exists(storage->jobDir(kJob) / "shared/c.sst"));  // rebuild deletes nothing
}

TEST_CASE("completed checkpoint store: retains N and deletes shared files with the last user") {
  TempDir tmp;
  auto storage = CheckpointStorage::open("file://" + tmp.path());
  REQUIRE(storage.isOk());
  CompletedCheckpointStore store(*storage, kJob, 2);
  CHECK_FALSE(store.latest().has_value());
  const fs::path shared = storage->sharedDir(kJob);

  REQUIRE(store.add(prepare(*storage, 1, {"a.sst", "b.sst"})).isOk());
  REQUIRE(store.add(prepare(*storage, 2, {"b.sst", "c.sst"})).isOk());
  CHECK(ids(store) == std::vector<int64_t>{2, 1});

  // 3 subsumes 1: chk-1 and a.sst go; b.sst is still referenced by 2.
  REQUIRE(store.add(prepare(*storage, 3, {"c.sst", "d.sst"})).isOk());
  CHECK(ids(store) == std::vector<int64_t>{3, 2});
  CHECK(store.latest()->id == 3);
  CHECK_FALSE(fs::exists(storage->checkpointDir(kJob, 1)));
  CHECK_FALSE(fs::exists(shared / "a.sst"));
  CHECK(fs::exists(shared / "b.sst"));
  CHECK(fs::exists(shared / "c.sst"));
  CHECK(store.sharedState().refCount("shared/c.sst") == 2);

  // 4 subsumes 2: the last reference to b.sst goes; c.sst stays with 3.
  REQUIRE(store.add(prepare(*storage, 4, {"d.sst"})).isOk());
  CHECK(ids(store) == std::vector<int64_t>{4, 3});
  CHECK_FALSE(fs::exists(storage->checkpointDir(kJob, 2)));
  CHECK_FALSE(fs::exists(shared / "b.sst"));
  CHECK(fs::exists(shared / "c.sst"));
  CHECK(fs::exists(shared / "d.sst"));

  // Older or foreign checkpoints are refused and change nothing.
  CHECK_FALSE(store.add(makeMetadata(kJob, 4, {}, {})).isOk());
  CHECK_FALSE(store.add(makeMetadata("other-job", 9, {}, {})).isOk());
  // A checkpoint whose _metadata cannot be written subsumes nothing.
  CHECK_FALSE(store.add(makeMetadata(kJob, 5, {}, {})).isOk());  // no chk-5 directory
  CHECK(ids(store) == std::vector<int64_t>{4, 3});
  CHECK(fs::exists(storage->checkpointDir(kJob, 3)));

  // After a restart the store is rebuilt from storage, shared counts included.
  CompletedCheckpointStore recovered(*storage, kJob, 2);
  REQUIRE(recovered.recover().isOk());
  CHECK(ids(recovered) == std::vector<int64_t>{4, 3});
  CHECK(recovered.sharedState().refCount("shared/d.sst") == 2);
  CHECK(recovered.sharedState().refCount("shared/c.sst") == 1);
  REQUIRE(recovered.add(prepare(*storage, 5, {})).isOk());
  CHECK_FALSE(fs::exists(shared / "c.sst"));
  CHECK(fs::exists(shared / "d.sst"));

  // Recovering with a smaller limit subsumes the extras.
  CompletedCheckpointStore smaller(*storage, kJob, 1);
  REQUIRE(smaller.recover().isOk());
  CHECK(ids(smaller) == std::vector<int64_t>{5});
  CHECK_FALSE(fs::exists(storage->checkpointDir(kJob, 4)));
  CHECK_FALSE(fs::exists(shared / "d.sst"));
}

TEST_CASE("completed checkpoint store: falls back past corrupt or incomplete checkpoints") {
  TempDir tmp;
  auto storage = CheckpointStorage::open(tmp.path());
  REQUIRE(storage.isOk());
  CompletedCheckpointStore store(*storage, kJob, 3);
  REQUIRE(store.add(prepare(*storage, 5, {"a.sst"})).isOk());
  REQUIRE(store.add(prepare(*storage, 6, {"a.sst"})).isOk());
  REQUIRE(store.add(prepare(*storage, 7, {"b.sst"})).isOk());

  {
    CapturedLog log;
    auto usable = store.latestUsable(true);
    REQUIRE(usable.isOk());
    CHECK(usable->id == 7);
    CHECK(log.text().empty());
  }

  // 7: a bit flipped in _metadata. 6: a missing file, noticed only when verifying files.
  const fs::path md7 = storage->checkpointDir(kJob, 7) / "_metadata";
  std::string bytes = weir::testing::readFile(md7.string());
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 4);
  std::ofstream(md7, std::ios::binary | std::ios::trunc) << bytes;
  fs::remove(storage->checkpointDir(kJob, 6) / "private");

  {
    CapturedLog log;
    auto usable = store.latestUsable(false);
    REQUIRE(usable.isOk());
    CHECK(usable->id == 6);
    const std::string text = log.text();
    CHECK(text.find("checkpoint 7 of job job-b is unusable (checkpoint metadata " + md7.string() +
                    " is corrupt: SHA-256 of its contents does not match); falling back to "
                    "checkpoint 6\n") == 0);
    CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  }
  {
    CapturedLog log;
    auto usable = store.latestUsable(true);
    REQUIRE(usable.isOk());
    CHECK(usable->id == 5);
    CHECK(usable->metadata.checkpointId == 5);
    const std::string text = log.text();
    CHECK(std::count(text.begin(), text.end(), '\n') == 2);
    CHECK(text.find("falling back to checkpoint 6") != std::string::npos);
    CHECK(text.find("checkpoint 6 of job job-b is unusable (state file ") != std::string::npos);
    CHECK(text.find("falling back to checkpoint 5") != std::string::npos);
  }

  fs::remove(storage->checkpointDir(kJob, 5) / "_metadata");
  {
    CapturedLog log;
    auto none = store.latestUsable(true);
    REQUIRE_FALSE(none.isOk());
    CHECK(none.status().message() == "no usable completed checkpoint of job job-b");
    CHECK(log.text().find("checkpoint 5 of job job-b is unusable (checkpoint metadata ") !=
          std::string::npos);
    CHECK(log.text().find("no older checkpoint to fall back to") != std::string::npos);
  }
}
