#include "state/rocksdb_kv_store.h"

#include <doctest/doctest.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/metadata.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "process_util.h"

using weir::KvIterator;
using weir::KvSlice;
using weir::Status;
using weir::engine::RocksDbColumnSizing;
using weir::engine::RocksDbKvStore;
using weir::engine::RocksDbOptions;
using weir::engine::RocksDbResources;
using weir::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// KvSlice converts from string_view only; strings and literals need one step more.
KvSlice kv(std::string_view bytes) {
  return bytes;
}

// prefix + i (spelled out: GCC 12 warns about `"literal" + std::to_string(i)` wrongly).
std::string numbered(std::string prefix, int i) {
  prefix += std::to_string(i);
  return prefix;
}

RocksDbOptions smallOptions(const TempDir& dir) {
  RocksDbOptions o;
  o.local_dir = dir.path();
  o.block_cache_size = 4 << 20;
  o.write_buffer_size = 4 << 20;
  return o;
}

std::unique_ptr<RocksDbResources> makeResources(const RocksDbOptions& options) {
  auto r = RocksDbResources::create(options);
  REQUIRE_MESSAGE(r.isOk(), r.status().message());
  return std::move(r).value();
}

std::unique_ptr<RocksDbKvStore> makeStore(RocksDbResources& resources, const std::string& name) {
  auto s = resources.openStore(name);
  REQUIRE_MESSAGE(s.isOk(), s.status().message());
  return std::move(s).value();
}

int column(weir::KvStore& store, const std::string& name) {
  int id = -1;
  Status s = store.openColumn(name, id);
  REQUIRE_MESSAGE(s.isOk(), s.message());
  return id;
}

void put(weir::KvStore& store, int col, const std::string& key, const std::string& value) {
  Status s = store.put(col, kv(key), kv(value));
  REQUIRE_MESSAGE(s.isOk(), s.message());
}

void append(weir::KvStore& store, int col, const std::string& key, const std::string& value) {
  Status s = store.append(col, kv(key), kv(value));
  REQUIRE_MESSAGE(s.isOk(), s.message());
}

// The value under `key`, or "<absent>".
std::string get(weir::KvStore& store, int col, const std::string& key) {
  std::string value = "stale";
  bool found = true;
  Status s = store.get(col, kv(key), value, found);
  REQUIRE_MESSAGE(s.isOk(), s.message());
  return found ? value : "<absent>";
}

using Entries = std::vector<std::pair<std::string, std::string>>;

Entries scanAll(weir::KvStore& store, int col, const std::string& begin, const std::string& end) {
  std::unique_ptr<KvIterator> it;
  Status s = store.scan(col, kv(begin), kv(end), it);
  REQUIRE_MESSAGE(s.isOk(), s.message());
  Entries out;
  for (; it->valid(); it->next())
    out.emplace_back(std::string(it->key().view()), std::string(it->value().view()));
  REQUIRE_MESSAGE(it->status().isOk(), it->status().message());
  return out;
}

// A key as the SDK lays it out: key group (u16, big endian) followed by the serialised key.
std::string kgKey(int key_group, const std::string& rest) {
  std::string k;
  k.push_back(static_cast<char>((key_group >> 8) & 0xff));
  k.push_back(static_cast<char>(key_group & 0xff));
  k.append(rest);
  return k;
}

std::string kgPrefix(int key_group) {
  return kgKey(key_group, "");
}

}  // namespace

TEST_CASE("rocksdb store: put, get, remove, and get reuses the caller's string") {
  TempDir dir;
  auto resources = makeResources(smallOptions(dir));
  auto store = makeStore(*resources, "job/op_0");
  const int c = column(*store, "value-state");

  CHECK(get(*store, c, "k") == "<absent>");
  put(*store, c, "k", "v1");
  CHECK(get(*store, c, "k") == "v1");
  put(*store, c, "k", "second value");
  CHECK(get(*store, c, "k") == "second value");
  put(*store, c, "empty", "");
  CHECK(get(*store, c, "empty").empty());
  // Keys and values are bytes, NULs included.
  const std::string bin_key("a\0b", 3);
  const std::string bin_value("\0\xff\0", 3);
  put(*store, c, bin_key, bin_value);
  CHECK(get(*store, c, bin_key) == bin_value);
  CHECK(get(*store, c, "a") == "<absent>");

  REQUIRE(store->remove(c, kv("k")).isOk());
  CHECK(get(*store, c, "k") == "<absent>");
  CHECK(store->remove(c, kv("never-there")).isOk());

  // The same after the memtable went to an SST file.
  REQUIRE(store->flush().isOk());
  CHECK(get(*store, c, "k") == "<absent>");
  CHECK(get(*store, c, bin_key) == bin_value);

  // get overwrites the caller's string in place, keeping its capacity.
  std::string value;
  value.reserve(1024);
  value = "old contents";
  const char* buffer = value.data();
  bool found = false;
  REQUIRE(store->get(c, kv("empty"), value, found).isOk());
  CHECK(found);
  CHECK(value.empty());
  REQUIRE(store->get(c, kv(bin_key), value, found).isOk());
  CHECK(value == bin_value);
  CHECK(value.data() == buffer);
  CHECK(value.capacity() >= 1024);
  REQUIRE(store->get(c, kv("missing"), value, found).isOk());
  CHECK_FALSE(found);
  CHECK(value.empty());
}

TEST_CASE("rocksdb store: appends concatenate in order, across flushes and compactions") {
  TempDir dir;
  auto resources = makeResources(smallOptions(dir));
  auto store = makeStore(*resources, "job/list_0");
  const int c = column(*store, "list-state");

  append(*store, c, "fresh", "a");  // as put when absent
  CHECK(get(*store, c, "fresh") == "a");
  append(*store, c, "fresh", "bc");
  append(*store, c, "fresh", "");
  append(*store, c, "fresh", "d");
  CHECK(get(*store, c, "fresh") == "abcd");

  put(*store, c, "base", "[");
  append(*store, c, "base", "1,");
  REQUIRE(store->flush().isOk());  // base value and one operand in an SST file
  append(*store, c, "base", "2,");
  append(*store, c, "base", "3]");  // operands still in the memtable
  CHECK(get(*store, c, "base") == "[1,2,3]");

  REQUIRE(store->remove(c, kv("base")).isOk());
  append(*store, c, "base", "x");
  CHECK(get(*store, c, "base") == "x");

  // Many appends, spread over several SST files, merged by reads, scans and compaction alike.
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string element = std::to_string(i) + ";";
    append(*store, c, "long", element);
    expected += element;
    if (i % 250 == 249) REQUIRE(store->flush().isOk());
  }
  CHECK(get(*store, c, "long") == expected);
  CHECK(scanAll(*store, c, "long", "long\x01") == Entries{{"long", expected}});
  REQUIRE(
      store->db()
          ->CompactRange(rocksdb::CompactRangeOptions(), store->columnHandle(c), nullptr, nullptr)
          .ok());
  CHECK(get(*store, c, "long") == expected);
  CHECK(get(*store, c, "fresh") == "abcd");
}

TEST_CASE("rocksdb store: scans by key group, with and without an upper bound") {
  TempDir dir;
  auto resources = makeResources(smallOptions(dir));
  auto store = makeStore(*resources, "job/window_1");
  const int c = column(*store, "window-contents");

  // Key groups around a byte boundary (255 | 256), a few keys each, written in random order; half
  // of them flushed so a scan merges an SST file with the memtable.
  const std::vector<int> groups = {0, 1, 2, 254, 255, 256, 257, 1000};
  Entries all;
  for (int kg : groups) {
    for (const char* k : {"apple", "b", "banana", "zz"})
      all.emplace_back(kgKey(kg, k), std::to_string(kg) + ":" + k);
  }
  Entries shuffled = all;
  std::mt19937 rng(42);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  for (std::size_t i = 0; i < shuffled.size(); ++i) {
    put(*store, c, shuffled[i].first, shuffled[i].second);
    if (i == shuffled.size() / 2) REQUIRE(store->flush().isOk());
  }
  std::sort(all.begin(), all.end());

  auto group = [&](int kg) {
    Entries out;
    for (const auto& e : all) {
      if (e.first.compare(0, 2, kgPrefix(kg)) == 0) out.push_back(e);
    }
    return out;
  };
  for (int kg : groups) {
    CAPTURE(kg);
    const Entries got = scanAll(*store, c, kgPrefix(kg), kgPrefix(kg + 1));
    CHECK(got == group(kg));
    CHECK(got.size() == 4);
  }
  CHECK(scanAll(*store, c, kgPrefix(3), kgPrefix(254)).empty());  // no such groups
  // A range of groups: [255, 257) crosses the byte boundary.
  Entries range = group(255);
  for (const auto& e : group(256))
    range.push_back(e);
  CHECK(scanAll(*store, c, kgPrefix(255), kgPrefix(257)) == range);

  // No upper bound: from a group to the end; and everything.
  const Entries tail = scanAll(*store, c, kgPrefix(256), "");
  CHECK(tail == Entries(all.end() - 12, all.end()));
  CHECK(scanAll(*store, c, "", "") == all);
  // Bounds inside a group.
  CHECK(scanAll(*store, c, kgKey(2, "b"), kgKey(2, "c")) ==
        Entries{{kgKey(2, "b"), "2:b"}, {kgKey(2, "banana"), "2:banana"}});
  // An empty or inverted range.
  CHECK(scanAll(*store, c, kgPrefix(2), kgPrefix(2)).empty());
  CHECK(scanAll(*store, c, kgPrefix(5), kgPrefix(2)).empty());

  // The iterator keeps its own copies of the bounds: the caller's may change or go at once.
  std::unique_ptr<KvIterator> it;
  {
    std::string begin = kgPrefix(1);
    std::string end = kgPrefix(2);
    REQUIRE(store->scan(c, kv(begin), kv(end), it).isOk());
    begin.assign(64, '\xff');
    end.assign(64, '\0');
  }
  Entries got;
  for (; it->valid(); it->next())
    got.emplace_back(std::string(it->key().view()), std::string(it->value().view()));
  CHECK(it->status().isOk());
  CHECK(got == group(1));
  it.reset();

  // Removed entries disappear from scans; the iterator sees the state at its creation.
  REQUIRE(store->scan(c, kv(kgPrefix(0)), kv(kgPrefix(1)), it).isOk());
  REQUIRE(store->remove(c, kv(kgKey(0, "b"))).isOk());
  int seen = 0;
  for (; it->valid(); it->next())
    ++seen;
  CHECK(seen == 4);
  it.reset();
  CHECK(scanAll(*store, c, kgPrefix(0), kgPrefix(1)).size() == 3);
}

TEST_CASE("rocksdb store: many columns are independent") {
  TempDir dir;
  auto resources = makeResources(smallOptions(dir));
  auto store = makeStore(*resources, "job/many_0");
  constexpr int kColumns = 40;
  std::vector<int> ids;
  for (int i = 0; i < kColumns; ++i)
    ids.push_back(column(*store, numbered("state-", i)));
  for (int i = 0; i < kColumns; ++i)
    CHECK(ids[i] == i);                        // small ints, in order of first use
  CHECK(column(*store, "state-7") == 7);       // same name, same column
  const int dflt = column(*store, "default");  // RocksDB's own default column family works too
  CHECK(dflt == kColumns);
  CHECK(store->numColumns() == kColumns + 1);

  for (int i = 0; i < kColumns; ++i) {
    put(*store, ids[i], "shared-key", numbered("value-", i));
    append(*store, ids[i], "list", std::to_string(i));
  }
  put(*store, dflt, "shared-key", "default");
  REQUIRE(store->flush().isOk());
  for (int i = 0; i < kColumns; ++i) {
    CHECK(get(*store, ids[i], "shared-key") == numbered("value-", i));
    CHECK(get(*store, ids[i], "list") == std::to_string(i));
    CHECK(scanAll(*store, ids[i], "", "").size() == 2);
  }
  CHECK(get(*store, dflt, "shared-key") == "default");
}

TEST_CASE("rocksdb store: misuse and failures are reported as Status") {
  TempDir dir;
  auto resources = makeResources(smallOptions(dir));
  auto store = makeStore(*resources, "job/errors_0");
  const int c = column(*store, "s");

  std::string value;
  bool found = true;
  Status s = store->get(7, kv("k"), value, found);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message() ==
        "RocksDB store 'job/errors_0': get on column 7, which was not opened (1 open)");
  CHECK_FALSE(found);
  CHECK(store->put(-1, kv("k"), kv("v")).code() == Status::Code::kInvalidArgument);
  CHECK(store->append(1, kv("k"), kv("v")).code() == Status::Code::kInvalidArgument);
  CHECK(store->remove(1, kv("k")).code() == Status::Code::kInvalidArgument);
  std::unique_ptr<KvIterator> it;
  CHECK(store->scan(1, kv(""), kv(""), it).code() == Status::Code::kInvalidArgument);
  CHECK(it == nullptr);
  int id = -1;
  CHECK(store->openColumn("", id).message() ==
        "RocksDB store 'job/errors_0': a column needs a name");
  CHECK(c == 0);

  // Store names: not empty, no empty parts, not open twice.
  CHECK(resources->openStore("").status().code() == Status::Code::kInvalidArgument);
  CHECK(resources->openStore("job//x").status().message() ==
        "RocksDB store name 'job//x' has an empty part between slashes");
  CHECK(resources->openStore("/abs").status().code() == Status::Code::kInvalidArgument);
  CHECK(resources->openStore("job/errors_0").status().message() ==
        "RocksDB store 'job/errors_0' is already open");

  // An unusable local directory: a path below a regular file.
  const std::string file = dir.file("not-a-dir");
  std::ofstream(file) << "x";
  RocksDbOptions bad = smallOptions(dir);
  bad.local_dir = file + "/rocksdb";
  auto r = RocksDbResources::create(bad);
  REQUIRE_FALSE(r.isOk());
  CHECK(r.status().code() == Status::Code::kIoError);
  CHECK(r.status().message().find("RocksDB local directory '" + bad.local_dir +
                                  "' cannot be created: ") == 0);
  bad.local_dir = file;  // the regular file itself
  CHECK_FALSE(RocksDbResources::create(bad).isOk());

  // A store whose directory cannot be created (a file is in the way of its parent).
  std::ofstream(resources->workingDir() + "/blocked") << "x";
  auto blocked = resources->openStore("blocked/op_0");
  REQUIRE_FALSE(blocked.isOk());
  CHECK(blocked.status().code() == Status::Code::kIoError);
  CHECK(blocked.status().message().find("RocksDB store 'blocked/op_0': cannot create directory") ==
        0);
}

TEST_CASE("rocksdb resources: a working directory per TaskManager, a directory per store") {
  TempDir dir;
  RocksDbOptions options = smallOptions(dir);
  options.local_dir = dir.file("state/nested");  // created when missing
  auto resources = makeResources(options);
  const std::string work = resources->workingDir();
  CHECK(fs::path(work).parent_path() == fs::path(options.local_dir));
  CHECK(fs::path(work).filename().string().rfind("weir-rocksdb-", 0) == 0);
  CHECK(fs::is_directory(work));

  // A second TaskManager on the same host gets its own working directory.
  auto other = makeResources(options);
  CHECK(other->workingDir() != work);

  {
    auto a = makeStore(*resources, "job 1/map:uid_0");
    auto b = makeStore(*resources, "job 1/map:uid_1");
    auto dots = makeStore(*resources, "../..");  // escaped: stays inside the working directory
    CHECK(a->name() == "job 1/map:uid_0");
    CHECK(a->path() == work + "/job%201/map%3Auid_0");
    CHECK(b->path() == work + "/job%201/map%3Auid_1");
    CHECK(dots->path() == work + "/%2E%2E/%2E%2E");
    // Distinct names never share a directory, however close their spellings.
    auto similar = makeStore(*resources, "job%201/map%3Auid_0");
    CHECK(similar->path() == work + "/job%25201/map%253Auid_0");
    // A very long name is shortened, and stays unique.
    auto long1 = makeStore(*resources, "job/" + std::string(300, 'x') + "1");
    auto long2 = makeStore(*resources, "job/" + std::string(300, 'x') + "2");
    CHECK(fs::path(long1->path()).filename().string().size() <= 200);
    CHECK(long1->path() != long2->path());

    const int c = column(*a, "s");
    put(*a, c, "k", "v");
    REQUIRE(a->flush().isOk());
    CHECK(fs::exists(a->path() + "/CURRENT"));
    const std::string a_path = a->path();
    a.reset();
    CHECK_FALSE(fs::exists(a_path));
    CHECK(fs::is_directory(work + "/job%201"));  // b still lives there
    b.reset();
    CHECK_FALSE(fs::exists(work + "/job%201"));  // the last store of the job took it along

    CHECK(weir::engine::rocksDbStoreName("job 1", "map:uid", 0) == "job 1/map:uid_0");
    // The name is free again, and the new store starts empty.
    auto again = makeStore(*resources, "job 1/map:uid_0");
    CHECK(get(*again, column(*again, "s"), "k") == "<absent>");
  }
  CHECK(fs::is_directory(work));
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(work))
    left.push_back(entry.path().filename().string());
  CHECK(left.empty());

  resources.reset();
  CHECK_FALSE(fs::exists(work));
  CHECK(fs::is_directory(other->workingDir()));
  CHECK(fs::is_directory(options.local_dir));  // the local directory itself stays
}

TEST_CASE("rocksdb resources: the working directory outlives the resources while a store lives") {
  TempDir dir;
  auto resources = makeResources(smallOptions(dir));
  const std::string work = resources->workingDir();
  auto store = makeStore(*resources, "job/late_0");
  resources.reset();
  CHECK(fs::is_directory(store->path()));
  const int c = column(*store, "s");
  put(*store, c, "k", "v");
  CHECK(get(*store, c, "k") == "v");
  store.reset();
  CHECK_FALSE(fs::exists(work));
}

TEST_CASE("rocksdb resources: an empty local directory means the system temp directory") {
  auto resources = makeResources(RocksDbOptions{});
  CHECK(fs::path(resources->workingDir()).parent_path() == fs::temp_directory_path());
  const std::string work = resources->workingDir();
  resources.reset();
  CHECK_FALSE(fs::exists(work));
}

TEST_CASE("rocksdb resources: every store uses the one cache and write buffer manager") {
  TempDir dir;
  RocksDbOptions options = smallOptions(dir);
  options.block_cache_size = 8 << 20;
  options.write_buffer_size = 2 << 20;
  auto resources = makeResources(options);
  const auto& cache = resources->blockCache();
  const auto& wbm = resources->writeBufferManager();
  // Memtables are charged to the cache, so it holds both budgets.
  CHECK(cache->GetCapacity() == (10u << 20));
  CHECK(wbm->buffer_size() == (2u << 20));
  CHECK(wbm->cost_to_cache());

  auto a = makeStore(*resources, "job/a_0");
  auto b = makeStore(*resources, "job/b_0");
  const int ca = column(*a, "s");
  const int cb1 = column(*b, "s1");
  const int cb2 = column(*b, "s2");
  CHECK(a->blockCacheInUse(ca) == cache);
  CHECK(b->blockCacheInUse(cb1) == cache);
  CHECK(b->blockCacheInUse(cb2) == cache);

  // 150 kB per store: less than one memtable (256 kB with a 2 MiB budget), so nothing flushes.
  const std::size_t before = cache->GetUsage();
  const std::string payload(1000, 'p');
  for (int i = 0; i < 150; ++i)
    put(*a, ca, numbered("a", i), payload);
  const std::size_t after_a = cache->GetUsage();
  const std::size_t memtables_a = wbm->memory_usage();
  for (int i = 0; i < 150; ++i)
    put(*b, cb1, numbered("b", i), payload);
  const std::size_t after_b = cache->GetUsage();
  const std::size_t memtables_b = wbm->memory_usage();
  MESSAGE("cache usage: " << before << " -> " << after_a << " (a) -> " << after_b
                          << " (b); memtables " << memtables_a << " -> " << memtables_b);
  // Both stores' memtables are counted by the one manager and charged to the one cache (in
  // 256 kB reservations).
  CHECK(memtables_a >= 150u * 1000);
  CHECK(memtables_b >= 2 * 150u * 1000);
  CHECK(after_b >= memtables_b);
  CHECK(after_b > after_a);

  // Reads of flushed data load blocks of both stores into the same cache.
  REQUIRE(a->flush().isOk());
  REQUIRE(b->flush().isOk());
  const std::size_t flushed = cache->GetUsage();
  for (int i = 0; i < 150; i += 10)
    CHECK(get(*a, ca, numbered("a", i)) == payload);
  const std::size_t read_a = cache->GetUsage();
  for (int i = 0; i < 150; i += 10)
    CHECK(get(*b, cb1, numbered("b", i)) == payload);
  const std::size_t read_b = cache->GetUsage();
  MESSAGE("cache usage after flush " << flushed << ", reads of a " << read_a << ", reads of b "
                                     << read_b);
  CHECK(read_a > flushed);
  CHECK(read_b > read_a);
  CHECK(read_b <= cache->GetCapacity());

  // Background work of all stores shares RocksDB's process-wide pools: one flush thread and one
  // compaction thread.
  CHECK(rocksdb::Env::Default()->GetBackgroundThreads(rocksdb::Env::Priority::HIGH) == 1);
  CHECK(rocksdb::Env::Default()->GetBackgroundThreads(rocksdb::Env::Priority::LOW) == 1);
}

namespace {

// Waits (at most 10 s) until no flush is pending or running in `store`.
bool waitForFlushes(RocksDbKvStore& store) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::uint64_t running = 0;
    bool idle = store.db()->GetIntProperty("rocksdb.num-running-flushes", &running) && running == 0;
    for (int c = 0; idle && c < store.numColumns(); ++c) {
      std::uint64_t pending = 0;
      idle = store.db()->GetIntProperty(store.columnHandle(c), "rocksdb.mem-table-flush-pending",
                                        &pending) &&
             pending == 0;
    }
    if (idle) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

std::uint64_t sumProperty(RocksDbKvStore& store, const std::string& property) {
  std::uint64_t sum = 0;
  for (int c = 0; c < store.numColumns(); ++c) {
    std::uint64_t v = 0;
    REQUIRE(store.db()->GetIntProperty(store.columnHandle(c), property, &v));
    sum += v;
  }
  return sum;
}

std::uint64_t numFiles(RocksDbKvStore& store) {
  std::uint64_t n = 0;
  for (int c = 0; c < store.numColumns(); ++c) {
    rocksdb::ColumnFamilyMetaData meta;
    store.db()->GetColumnFamilyMetaData(store.columnHandle(c), &meta);
    n += meta.file_count;
  }
  return n;
}

struct ManyStores {
  std::vector<std::unique_ptr<RocksDbKvStore>> stores;
  std::vector<std::vector<int>> columns;
  ManyStores(RocksDbResources& resources, int num_stores, int columns_each) {
    for (int s = 0; s < num_stores; ++s) {
      stores.push_back(makeStore(resources, numbered("job/op_", s)));
      columns.emplace_back();
      for (int c = 0; c < columns_each; ++c)
        columns.back().push_back(column(*stores.back(), numbered("state-", c)));
    }
  }
};

}  // namespace

TEST_CASE("rocksdb resources: the shared budget flushes memtables no column would flush alone") {
  TempDir dir;
  RocksDbOptions options = smallOptions(dir);
  options.write_buffer_size = 1 << 20;  // 1 MiB for every store together: 128 kB memtables
  auto resources = makeResources(options);
  const auto& wbm = resources->writeBufferManager();
  ManyStores many(*resources, 2, 8);
  // 80 kB into each of 16 columns: no memtable fills up, but together they pass the budget.
  const std::string payload(1000, 'x');
  for (int i = 0; i < 80; ++i) {
    for (int s = 0; s < 2; ++s) {
      for (int c = 0; c < 8; ++c)
        put(*many.stores[s], many.columns[s][c], numbered("key-", i), payload);
    }
  }
  std::uint64_t flushed = 0;
  for (auto& store : many.stores)
    flushed += sumProperty(*store, "rocksdb.num-immutable-mem-table") + numFiles(*store);
  CHECK(flushed > 0);
  for (auto& store : many.stores)
    REQUIRE(waitForFlushes(*store));
  MESSAGE("1.25 MiB written into 16 columns: "
          << flushed << " memtables flushed, " << wbm->memory_usage()
          << " bytes of memtables left for a budget of " << wbm->buffer_size());
  CHECK(wbm->memory_usage() <= wbm->buffer_size());
  for (int s = 0; s < 2; ++s) {
    for (int c = 0; c < 8; ++c)
      CHECK(get(*many.stores[s], many.columns[s][c], "key-79") == payload);
  }
}

TEST_CASE("rocksdb resources: writes flush the largest memtable, also one of an idle store") {
  TempDir dir;
  RocksDbOptions options = smallOptions(dir);
  options.write_buffer_size = 1 << 20;  // flushes for the budget start at 768 kB
  auto resources = makeResources(options);
  const auto& wbm = resources->writeBufferManager();
  ManyStores many(*resources, 2, 8);
  auto& idle = *many.stores[0];
  auto& busy = *many.stores[1];
  const std::string payload(1000, 'x');
  // 60 kB into each column of the first store, which then stops writing.
  for (int i = 0; i < 60; ++i) {
    for (int c = 0; c < 8; ++c)
      put(idle, many.columns[0][c], numbered("key-", i), payload);
  }
  const std::uint64_t idle_before = sumProperty(idle, "rocksdb.cur-size-active-mem-table");
  CHECK(resources->reliefFlushes() == 0);
  CHECK(numFiles(idle) == 0);
  // As much into the second store: together they pass 3/4 of the budget.
  for (int i = 0; i < 60; ++i) {
    for (int c = 0; c < 8; ++c)
      put(busy, many.columns[1][c], numbered("key-", i), payload);
  }
  const std::uint64_t idle_after = sumProperty(idle, "rocksdb.cur-size-active-mem-table");
  const std::uint64_t busy_after = sumProperty(busy, "rocksdb.cur-size-active-mem-table");
  MESSAGE("active memtables: idle store " << idle_before << " -> " << idle_after << ", busy store "
                                          << busy_after << "; " << resources->reliefFlushes()
                                          << " flushes");
  CHECK(resources->reliefFlushes() > 0);
  CHECK(idle_after < idle_before);  // the idle store's (larger) memtables went first
  CHECK(wbm->mutable_memtable_memory_usage() <= wbm->buffer_size() / 4 * 3 + 64 * 1024);
  for (auto& store : many.stores)
    REQUIRE(waitForFlushes(*store));
  CHECK(numFiles(idle) > 0);
  CHECK(wbm->memory_usage() <= wbm->buffer_size());
  for (int c = 0; c < 8; ++c) {
    CHECK(get(idle, many.columns[0][c], "key-59") == payload);
    CHECK(get(busy, many.columns[1][c], "key-59") == payload);
  }
}

// Under a write storm flushes queue behind the single flush thread, and memtables waiting for it
// count on top of the budget; what bounds memory then is the per-column limit of two memtables.
TEST_CASE("rocksdb resources: under a write storm memtables stay within the columns' limits") {
  TempDir dir;
  RocksDbOptions options = smallOptions(dir);
  options.write_buffer_size = 1 << 20;
  auto resources = makeResources(options);
  const auto& wbm = resources->writeBufferManager();
  ManyStores many(*resources, 4, 4);
  const std::string payload(1024, 'x');
  std::size_t peak = 0;
  for (int i = 0; i < 8 * 1024; ++i) {  // 8 MiB round-robin into 16 columns
    put(*many.stores[i % 4], many.columns[i % 4][(i / 4) % 4], numbered("key-", i), payload);
    peak = std::max(peak, wbm->memory_usage());
  }
  const auto sizing = RocksDbColumnSizing::forBudget(options.write_buffer_size);
  const std::size_t memtable = sizing.write_buffer_size + 2 * sizing.arena_block_size;
  for (auto& store : many.stores)
    REQUIRE(waitForFlushes(*store));
  MESSAGE("budget " << wbm->buffer_size() << ": peak memtable memory " << peak << " (limit "
                    << 16 * 2 * memtable << "), after the flushes " << wbm->memory_usage() << "; "
                    << resources->reliefFlushes() << " flushes for the budget");
  CHECK(peak <= 16 * 2 * memtable);
  CHECK(wbm->memory_usage() <= 16 * memtable);
}

TEST_CASE("rocksdb resources: task threads write, flush each other's memtables and close at once") {
  TempDir dir;
  RocksDbOptions options = smallOptions(dir);
  options.write_buffer_size = 1 << 20;
  auto resources = makeResources(options);
  constexpr int kThreads = 4;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Doctest's assertions are not thread-safe: collect failures, check them afterwards.
      auto opened = resources->openStore(numbered("job/parallel_", t));
      if (!opened.isOk()) {
        errors[t] = opened.status().message();
        return;
      }
      auto store = std::move(opened).value();
      const std::string payload(512, static_cast<char>('a' + t));
      for (int round = 0; round < 3 && errors[t].empty(); ++round) {
        int columns[4];
        for (int c = 0; c < 4; ++c) {
          if (Status s = store->openColumn(numbered("s", c), columns[c]); !s.isOk()) {
            errors[t] = s.message();
          }
        }
        for (int i = 0; i < 2000 && errors[t].empty(); ++i) {
          Status s = store->put(columns[i % 4], kv(numbered("k", i)), kv(payload));
          if (s.isOk()) s = store->append(columns[(i + 1) % 4], kv("list"), kv("x"));
          if (!s.isOk()) errors[t] = s.message();
        }
        std::string value;
        bool found = false;
        if (Status s = store->get(columns[3], kv("k1999"), value, found);
            errors[t].empty() && (!s.isOk() || !found || value != payload)) {
          errors[t] = "lost k1999: " + s.message();
        }
        if (Status s = store->get(columns[0], kv("list"), value, found);
            errors[t].empty() && (!s.isOk() || value != std::string(500, 'x'))) {
          errors[t] = "wrong list (" + std::to_string(value.size()) + " bytes): " + s.message();
        }
        // A new store under the same name, while the others keep writing.
        const std::string name = store->name();
        store.reset();
        auto again = resources->openStore(name);
        if (!again.isOk()) {
          errors[t] = again.status().message();
          return;
        }
        store = std::move(again).value();
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  for (int t = 0; t < kThreads; ++t)
    CHECK_MESSAGE(errors[t].empty(), errors[t]);
  MESSAGE(resources->reliefFlushes() << " flushes for the budget");
}

TEST_CASE("rocksdb column sizing follows the write buffer budget") {
  const auto dflt = RocksDbColumnSizing::forBudget(64 << 20);
  CHECK(dflt.write_buffer_size == (8u << 20));
  CHECK(dflt.max_write_buffer_number == 2);
  CHECK(dflt.arena_block_size == (128u << 10));
  const auto small = RocksDbColumnSizing::forBudget(1 << 20);
  CHECK(small.write_buffer_size == (128u << 10));
  CHECK(small.arena_block_size == (16u << 10));
  const auto large = RocksDbColumnSizing::forBudget(8ull << 30);
  CHECK(large.write_buffer_size == (64u << 20));
  CHECK(large.arena_block_size == (1u << 20));
}
