// RocksDB store checkpoints: local checkpoint, incremental upload, restore (same range, split,
// merged) and the errors of a damaged checkpoint.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "process_util.h"
#include "state/rocksdb_kv_store.h"

using weir::KvIterator;
using weir::KvSlice;
using weir::Status;
using weir::engine::RocksDbCheckpointFile;
using weir::engine::RocksDbKvStore;
using weir::engine::RocksDbOptions;
using weir::engine::RocksDbResources;
using weir::testing::TempDir;
namespace fs = std::filesystem;
namespace thrift = weir::thrift;

namespace {

KvSlice kv(std::string_view bytes) {
  return bytes;
}

std::unique_ptr<RocksDbResources> makeResources(const TempDir& dir) {
  RocksDbOptions o;
  o.local_dir = dir.file("local");
  o.block_cache_size = 4 << 20;
  o.write_buffer_size = 4 << 20;
  auto r = RocksDbResources::create(o);
  REQUIRE_MESSAGE(r.isOk(), r.status().message());
  return std::move(r).value();
}

int column(weir::KvStore& store, const std::string& name) {
  int id = -1;
  Status s = store.openColumn(name, id);
  REQUIRE_MESSAGE(s.isOk(), s.message());
  return id;
}

std::string kgKey(int key_group, const std::string& rest) {
  std::string k;
  k.push_back(static_cast<char>((key_group >> 8) & 0xff));
  k.push_back(static_cast<char>(key_group & 0xff));
  k.append(rest);
  return k;
}

// Column name → key → value.
using Contents = std::map<std::string, std::map<std::string, std::string>>;

const std::vector<std::string> kColumns = {"counts", "lists", "timers"};

Contents readAll(RocksDbKvStore& store) {
  Contents out;
  for (const std::string& name : kColumns) {
    const int c = column(store, name);
    std::unique_ptr<KvIterator> it;
    Status s = store.scan(c, KvSlice(), KvSlice(), it);
    REQUIRE_MESSAGE(s.isOk(), s.message());
    auto& entries = out[name];
    for (; it->valid(); it->next())
      entries.emplace(std::string(it->key().view()), std::string(it->value().view()));
    REQUIRE_MESSAGE(it->status().isOk(), it->status().message());
  }
  return out;
}

// Writes entries of key groups [first, last] into every column (lists by append), flushing now
// and then so the store holds several SST files.
Contents fill(RocksDbKvStore& store, int first, int last) {
  Contents expected;
  for (int kg = first; kg <= last; ++kg) {
    for (int k = 0; k < 5; ++k) {
      const std::string key = kgKey(kg, "key" + std::to_string(k));
      const std::string v = "v" + std::to_string(kg) + "." + std::to_string(k);
      REQUIRE(store.put(column(store, "counts"), kv(key), kv(v)).isOk());
      REQUIRE(store.append(column(store, "lists"), kv(key), kv("a")).isOk());
      REQUIRE(store.append(column(store, "lists"), kv(key), kv(v)).isOk());
      expected["counts"][key] = v;
      expected["lists"][key] = "a" + v;
      if (k == 0) {
        REQUIRE(store.put(column(store, "timers"), kv(key), kv("t")).isOk());
        expected["timers"][key] = "t";
      }
    }
    if (kg % 8 == 7) REQUIRE(store.flush().isOk());
  }
  for (const std::string& name : kColumns)
    expected[name];
  return expected;
}

Contents onlyKeyGroups(const Contents& all, int first, int last) {
  Contents out;
  for (const auto& [name, entries] : all) {
    auto& kept = out[name];
    for (const auto& [key, value] : entries) {
      const int kg = (static_cast<unsigned char>(key[0]) << 8) | static_cast<unsigned char>(key[1]);
      if (kg >= first && kg <= last) kept.emplace(key, value);
    }
  }
  return out;
}

// Checkpoints `store` and uploads it below `base` ("shared", private "<tag>").
thrift::KeyedStateHandle snapshot(RocksDbKvStore& store, const TempDir& dir, const std::string& tag,
                                  int first, int last,
                                  const std::vector<thrift::StateFile>& previous = {}) {
  const std::string local = dir.file("cp-" + tag);
  auto files = store.checkpoint(local);
  REQUIRE_MESSAGE(files.isOk(), files.status().message());
  auto handle = weir::engine::uploadRocksDbCheckpoint(local, *files, dir.file("job"), "shared",
                                                      "chk-" + tag, previous, first, last);
  REQUIRE_MESSAGE(handle.isOk(), handle.status().message());
  fs::remove_all(local);
  return std::move(handle).value();
}

std::unique_ptr<RocksDbKvStore> restore(RocksDbResources& resources, const TempDir& dir,
                                        const std::string& name,
                                        const std::vector<thrift::KeyedStateHandle>& handles,
                                        int first, int last) {
  auto store = resources.openStoreFrom(name, dir.file("job"), handles, first, last);
  REQUIRE_MESSAGE(store.isOk(), store.status().message());
  return std::move(store).value();
}

std::set<std::string> paths(const std::vector<thrift::StateFile>& files) {
  std::set<std::string> out;
  for (const auto& f : files)
    out.insert(f.path);
  return out;
}

}  // namespace

TEST_CASE("rocksdb checkpoint: files are listed with the SST files told apart") {
  TempDir dir;
  auto resources = makeResources(dir);
  auto store = resources->openStore("job/op_0").value();
  fill(*store, 0, 7);
  // Unflushed writes are in the checkpoint too.
  REQUIRE(store->put(column(*store, "counts"), kv(kgKey(1, "late")), kv("x")).isOk());
  auto files = store->checkpoint(dir.file("cp"));
  REQUIRE_MESSAGE(files.isOk(), files.status().message());
  int ssts = 0;
  bool current = false;
  bool manifest = false;
  for (const RocksDbCheckpointFile& f : *files) {
    CHECK(fs::file_size(dir.file("cp/" + f.name)) == f.size);
    CHECK(f.sst == f.name.ends_with(".sst"));
    ssts += f.sst ? 1 : 0;
    current = current || f.name == "CURRENT";
    manifest = manifest || f.name.starts_with("MANIFEST-");
  }
  CHECK(ssts >= 3);
  CHECK(current);
  CHECK(manifest);
  // The directory must be new.
  CHECK_FALSE(store->checkpoint(dir.file("cp")).isOk());
}

TEST_CASE("rocksdb checkpoint: restore gives back every column with identical contents") {
  TempDir dir;
  auto resources = makeResources(dir);
  auto store = resources->openStore("job/op_0").value();
  Contents expected = fill(*store, 0, 9);
  const auto handle = snapshot(*store, dir, "1", 0, 9);
  CHECK(handle.kind == thrift::KeyedStateKind::ROCKSDB_INCREMENTAL);
  CHECK(handle.keyGroupStart == 0);
  CHECK(handle.keyGroupEnd == 9);
  CHECK_FALSE(handle.sharedFiles.empty());
  CHECK_FALSE(handle.privateFiles.empty());
  for (const auto& f : handle.sharedFiles) {
    CHECK(f.path.starts_with("shared/"));
    CHECK(f.sha256.size() == 64);
    CHECK(fs::file_size(dir.file("job/" + f.path)) == static_cast<std::uint64_t>(f.size));
  }
  for (const auto& f : handle.privateFiles)
    CHECK(f.path.starts_with("chk-1/"));

  // Into other resources (another TaskManager), after the original is gone.
  store.reset();
  auto other = makeResources(dir);
  auto restored = restore(*other, dir, "job2/op_0", {handle}, 0, 9);
  // The restored columns are known before anyone opens them.
  CHECK(restored->numColumns() == static_cast<int>(kColumns.size()));
  CHECK(readAll(*restored) == expected);
  // And the store goes on working.
  const int counts = column(*restored, "counts");
  REQUIRE(restored->put(counts, kv(kgKey(3, "new")), kv("n")).isOk());
  REQUIRE(restored->append(column(*restored, "lists"), kv(kgKey(0, "key0")), kv("+")).isOk());
  expected["counts"][kgKey(3, "new")] = "n";
  expected["lists"][kgKey(0, "key0")] += "+";
  CHECK(readAll(*restored) == expected);
  int fresh = -1;
  REQUIRE(restored->openColumn("fresh", fresh).isOk());
  CHECK(fresh == static_cast<int>(kColumns.size()));
}

TEST_CASE("rocksdb checkpoint: a second checkpoint uploads only the new SST files") {
  TempDir dir;
  auto resources = makeResources(dir);
  auto store = resources->openStore("job/op_0").value();
  Contents expected = fill(*store, 0, 9);
  const auto first = snapshot(*store, dir, "1", 0, 9);
  const auto count_shared = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir.file("job/shared"))) {
      (void)e;
      ++n;
    }
    return n;
  };
  const int shared_after_first = count_shared();
  CHECK(shared_after_first == static_cast<int>(first.sharedFiles.size()));

  REQUIRE(store->put(column(*store, "counts"), kv(kgKey(5, "changed")), kv("c")).isOk());
  expected["counts"][kgKey(5, "changed")] = "c";
  const auto second = snapshot(*store, dir, "2", 0, 9, first.sharedFiles);
  const auto first_paths = paths(first.sharedFiles);
  const auto second_paths = paths(second.sharedFiles);
  int reused = 0;
  for (const auto& p : second_paths)
    reused += first_paths.count(p) != 0 ? 1 : 0;
  // No compaction ran (few files): every earlier SST is reused; the flush added exactly one.
  CHECK(reused == static_cast<int>(first_paths.size()));
  CHECK(second_paths.size() == first_paths.size() + 1);
  CHECK(count_shared() == shared_after_first + 1);
  // The private files are the second checkpoint's own.
  for (const auto& f : second.privateFiles)
    CHECK(f.path.starts_with("chk-2/"));

  store.reset();
  auto restored = restore(*resources, dir, "job/op_0", {second}, 0, 9);
  CHECK(readAll(*restored) == expected);

  // A restored store checkpoints incrementally against the handle it came from.
  REQUIRE(restored->put(column(*restored, "timers"), kv(kgKey(9, "t2")), kv("t")).isOk());
  const auto third = snapshot(*restored, dir, "3", 0, 9, second.sharedFiles);
  int reused_third = 0;
  for (const auto& p : paths(third.sharedFiles))
    reused_third += second_paths.count(p) != 0 ? 1 : 0;
  CHECK(reused_third == static_cast<int>(second_paths.size()));
  CHECK(third.sharedFiles.size() == second_paths.size() + 1);
}

TEST_CASE("rocksdb checkpoint: restore splits a range and merges two ranges") {
  TempDir dir;
  auto resources = makeResources(dir);
  Contents all;
  {
    auto store = resources->openStore("job/op_0").value();
    all = fill(*store, 0, 15);
    const auto whole = snapshot(*store, dir, "1", 0, 15);

    auto low = restore(*resources, dir, "job/op_low", {whole}, 0, 6);
    auto high = restore(*resources, dir, "job/op_high", {whole}, 7, 15);
    CHECK(readAll(*low) == onlyKeyGroups(all, 0, 6));
    CHECK(readAll(*high) == onlyKeyGroups(all, 7, 15));

    // Merge back: each half checkpointed on its own, then restored into one store.
    const auto low_handle = snapshot(*low, dir, "2-low", 0, 6);
    const auto high_handle = snapshot(*high, dir, "2-high", 7, 15);
    auto merged = restore(*resources, dir, "job/op_merged", {low_handle, high_handle}, 0, 15);
    CHECK(readAll(*merged) == all);

    // A range overlapping both halves in part takes exactly its key groups from each.
    auto middle = restore(*resources, dir, "job/op_middle", {low_handle, high_handle}, 4, 9);
    CHECK(readAll(*middle) == onlyKeyGroups(all, 4, 9));
    // Appends after a restore still merge onto the restored lists.
    REQUIRE(middle->append(column(*middle, "lists"), kv(kgKey(4, "key1")), kv("!")).isOk());
    std::string value;
    bool found = false;
    REQUIRE(middle->get(column(*middle, "lists"), kv(kgKey(4, "key1")), value, found).isOk());
    CHECK(found);
    CHECK(value == "av4.1!");

    // No handle overlaps: an empty store.
    auto empty = restore(*resources, dir, "job/op_empty", {low_handle}, 20, 30);
    CHECK(empty->numColumns() == 0);
  }
}

TEST_CASE("rocksdb checkpoint: a missing or resized file fails restore naming it") {
  TempDir dir;
  auto resources = makeResources(dir);
  auto store = resources->openStore("job/op_0").value();
  fill(*store, 0, 7);
  const auto handle = snapshot(*store, dir, "1", 0, 7);
  REQUIRE(handle.sharedFiles.size() >= 2);

  SUBCASE("missing shared file") {
    const std::string victim = handle.sharedFiles[1].path;
    fs::remove(dir.file("job/" + victim));
    auto r = resources->openStoreFrom("job/op_r", dir.file("job"), {handle}, 0, 7);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == Status::Code::kNotFound);
    CHECK_MESSAGE(r.status().message().find(victim) != std::string::npos, r.status().message());
  }
  SUBCASE("resized private file") {
    const std::string victim = handle.privateFiles.front().path;
    std::ofstream(dir.file("job/" + victim), std::ios::app) << "junk";
    auto r = resources->openStoreFrom("job/op_r", dir.file("job"), {handle}, 0, 7);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.status().code() == Status::Code::kCorruption);
    CHECK_MESSAGE(r.status().message().find(victim) != std::string::npos, r.status().message());
  }
  SUBCASE("missing file of a handle copied in while rescaling") {
    thrift::KeyedStateHandle other = handle;
    other.keyGroupStart = 8;
    other.keyGroupEnd = 9;
    other.sharedFiles.back().size += 1;
    auto r = resources->openStoreFrom("job/op_r", dir.file("job"), {handle, other}, 0, 9);
    REQUIRE_FALSE(r.isOk());
    CHECK_MESSAGE(r.status().message().find(other.sharedFiles.back().path) != std::string::npos,
                  r.status().message());
  }
  // The failed restores left the name free.
  auto again = resources->openStore("job/op_r");
  CHECK_MESSAGE(again.isOk(), again.status().message());
}
