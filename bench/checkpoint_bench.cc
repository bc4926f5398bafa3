// weir_checkpoint_bench: checkpoints of RocksDB keyed state, next to plain file copies of the same
// bytes in the same process.
//
//   weir_checkpoint_bench [--size-mb M]... [--value-bytes B] [--change-percent P] [--dir DIR]
//
// For each state size M (default 100; repeat the flag for more, e.g. --size-mb 100 --size-mb 1000)
// one RocksDbKvStore (the keyed backends' store, one column) is filled with M MB of keys and
// pseudo-random, incompressible values laid out as the SDK lays out keyed state (key group, u16
// big endian, then the key), and left to finish its compactions. Then:
//
// full         RocksDbKvStore::checkpoint (flush + local RocksDB checkpoint of hard links) and
//              uploadRocksDbCheckpoint of every file into a fresh checkpoint directory (shared SST
//              files, private MANIFEST/CURRENT/OPTIONS), as the first checkpoint of a job does.
//              Baseline: std::filesystem::copy of the local checkpoint directory.
// incremental  After overwriting P % of the keys (default 1) with new values: the same, with
//              previous_shared = the full upload's shared files, so only new SST files are copied.
//              Baseline: copying exactly the newly uploaded files.
// restore      RocksDbResources::openStoreFrom of the incremental checkpoint's handle (key groups
//              0..127) in fresh resources, as a restarted task does. Baseline:
//              std::filesystem::copy of the whole checkpointed state (the incremental checkpoint's
//              local directory). Afterwards a sample of keys is read back and checked against the
//              expected values.
//
// Every timed step starts after sync(), so no earlier step's dirty pages are written back during
// it; the files it reads were just written and come from the page cache, for both sides.
// Ratios are baseline time / weir time (above 1: faster than copying). Everything happens under
// DIR (default: the system temp directory) in a private directory removed at the end.
#include <rocksdb/db.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "state/rocksdb_kv_store.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using weir::KvSlice;
using weir::Status;
using weir::engine::RocksDbCheckpointFile;
using weir::engine::RocksDbKvStore;
using weir::engine::RocksDbOptions;
using weir::engine::RocksDbResources;
namespace thrift = weir::thrift;

constexpr int kMaxParallelism = 128;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_checkpoint_bench: FAILED: %s\n", msg.c_str());
  std::exit(1);
}

void check(const Status& s, const std::string& what) {
  if (!s.isOk()) die(what + ": " + s.message());
}

template <class T>
T take(weir::Result<T> r, const std::string& what) {
  if (!r.isOk()) die(what + ": " + r.status().message());
  return std::move(r).value();
}

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Key i: its key group (u16 big endian), then i as 8 bytes big endian.
std::string makeKey(std::uint64_t i) {
  const auto key_group = static_cast<int>(splitmix(i) % kMaxParallelism);
  std::string k(10, '\0');
  k[0] = static_cast<char>((key_group >> 8) & 0xff);
  k[1] = static_cast<char>(key_group & 0xff);
  for (int b = 0; b < 8; ++b)
    k[2 + b] = static_cast<char>((i >> (56 - 8 * b)) & 0xff);
  return k;
}

// The value of key i in version `version`: pseudo-random bytes (incompressible).
void makeValue(std::uint64_t i, std::uint64_t version, std::size_t bytes, std::string& out) {
  out.resize(bytes);
  std::uint64_t x = splitmix(i * 0x100000001b3ull + version);
  for (std::size_t p = 0; p < bytes; p += 8) {
    x = splitmix(x);
    const std::size_t n = std::min<std::size_t>(8, bytes - p);
    for (std::size_t b = 0; b < n; ++b)
      out[p + b] = static_cast<char>((x >> (8 * b)) & 0xff);
  }
}

std::uint64_t dirBytes(const fs::path& dir) {
  std::uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

// Waits until the store has no compaction running or pending.
void awaitCompactions(RocksDbKvStore& store) {
  for (;;) {
    std::uint64_t running = 0;
    std::uint64_t pending = 0;
    store.db()->GetIntProperty(rocksdb::DB::Properties::kNumRunningCompactions, &running);
    store.db()->GetIntProperty(rocksdb::DB::Properties::kCompactionPending, &pending);
    if (running == 0 && pending == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

struct Upload {
  double local_seconds = 0;                  // RocksDbKvStore::checkpoint
  double upload_seconds = 0;                 // uploadRocksDbCheckpoint
  std::uint64_t bytes = 0;                   // newly written to checkpoint storage
  std::uint64_t files = 0;                   // newly written files
  std::vector<std::string> new_local_names;  // local file names of the newly written files
  thrift::KeyedStateHandle handle;
  double total() const { return local_seconds + upload_seconds; }
};

Upload checkpointAndUpload(RocksDbKvStore& store, const fs::path& local_dir, const fs::path& base,
                           const std::string& private_dir,
                           const std::vector<thrift::StateFile>& previous_shared) {
  Upload u;
  ::sync();
  auto start = Clock::now();
  const auto files = take(store.checkpoint(local_dir.string()), "local checkpoint");
  u.local_seconds = secondsSince(start);
  start = Clock::now();
  u.handle =
      take(weir::engine::uploadRocksDbCheckpoint(local_dir, files, base, "shared", private_dir,
                                                 previous_shared, 0, kMaxParallelism - 1),
           "upload");
  u.upload_seconds = secondsSince(start);
  std::set<std::string> previous;
  for (const auto& f : previous_shared)
    previous.insert(f.path);
  for (const auto& f : u.handle.sharedFiles) {
    if (previous.count(f.path) != 0) continue;
    u.bytes += static_cast<std::uint64_t>(f.size);
    ++u.files;
    u.new_local_names.push_back(weir::engine::rocksDbLocalSstName(f.path));
  }
  for (const auto& f : u.handle.privateFiles) {
    u.bytes += static_cast<std::uint64_t>(f.size);
    ++u.files;
    u.new_local_names.push_back(fs::path(f.path).filename().string());
  }
  return u;
}

// Copies the named files of `from` into the new directory `to`; returns the seconds taken.
double copyFiles(const fs::path& from, const std::vector<std::string>& names, const fs::path& to) {
  ::sync();
  const auto start = Clock::now();
  fs::create_directories(to);
  for (const auto& n : names)
    fs::copy_file(from / n, to / n);
  return secondsSince(start);
}

double copyDir(const fs::path& from, const fs::path& to) {
  ::sync();
  const auto start = Clock::now();
  fs::copy(from, to, fs::copy_options::recursive);
  return secondsSince(start);
}

struct Options {
  std::vector<std::uint64_t> sizes_mb;
  std::size_t value_bytes = 200;
  double change_percent = 1.0;
  std::string dir;
};

std::string mb(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

void printRow(const char* what, double seconds, std::uint64_t bytes, double baseline,
              const std::string& detail) {
  std::printf("  %-12s %9.3f s %11s %9.0f MB/s | copy %8.3f s %9.0f MB/s | ratio %5.2f  %s\n", what,
              seconds, mb(bytes).c_str(), static_cast<double>(bytes) / 1e6 / seconds, baseline,
              static_cast<double>(bytes) / 1e6 / baseline, baseline / seconds, detail.c_str());
}

// "(local checkpoint X s + upload Y s, upload alone ratio R; N new files)": that ratio is the
// copy's time over the upload's alone.
std::string describe(const Upload& u, double copy_seconds) {
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "(local checkpoint %.3f s + upload %.3f s, upload alone ratio %.2f; %llu new files",
                u.local_seconds, u.upload_seconds, copy_seconds / u.upload_seconds,
                static_cast<unsigned long long>(u.files));
  return buf;
}

void runSize(std::uint64_t size_mb, const Options& o, const fs::path& root) {
  const fs::path work = root / ("state-" + std::to_string(size_mb) + "mb");
  fs::create_directories(work);
  const std::uint64_t entry_bytes = o.value_bytes + 10;
  const std::uint64_t keys = size_mb * 1000000 / entry_bytes;
  std::printf("\nstate %llu MB: %llu keys x (10-byte key + %zu-byte value)\n",
              static_cast<unsigned long long>(size_mb), static_cast<unsigned long long>(keys),
              o.value_bytes);

  RocksDbOptions ro;
  ro.local_dir = (work / "local").string();
  auto resources = take(RocksDbResources::create(ro), "resources");
  auto store = take(resources->openStore("bench/state_0"), "open store");
  int column = -1;
  check(store->openColumn("values", column), "open column");

  auto start = Clock::now();
  std::string value;
  for (std::uint64_t i = 0; i < keys; ++i) {
    makeValue(i, 0, o.value_bytes, value);
    check(store->put(column, KvSlice(makeKey(i)), KvSlice(value)), "put");
  }
  check(store->flush(), "flush");
  const double load_seconds = secondsSince(start);
  start = Clock::now();
  awaitCompactions(*store);
  std::printf("  loaded in %.2f s, compactions settled %.2f s later; store directory %s\n",
              load_seconds, secondsSince(start), mb(dirBytes(store->path())).c_str());

  const fs::path base = work / "checkpoints";
  fs::create_directories(base);

  // (a) The first checkpoint: everything is uploaded.
  const Upload full = checkpointAndUpload(*store, work / "local-chk-1", base, "chk-1/private", {});
  const double full_copy = copyDir(work / "local-chk-1", work / "copy-1");
  fs::remove_all(work / "copy-1");

  // (b) Overwrite change_percent % of the keys, then an incremental checkpoint.
  const auto changes =
      static_cast<std::uint64_t>(static_cast<double>(keys) * o.change_percent / 100.0);
  std::vector<bool> changed(keys, false);
  std::uint64_t x = 12345;
  for (std::uint64_t c = 0; c < changes;) {
    x = splitmix(x);
    const std::uint64_t i = x % keys;
    if (changed[i]) continue;
    changed[i] = true;
    ++c;
    makeValue(i, 1, o.value_bytes, value);
    check(store->put(column, KvSlice(makeKey(i)), KvSlice(value)), "put");
  }
  const Upload incremental = checkpointAndUpload(*store, work / "local-chk-2", base,
                                                 "chk-2/private", full.handle.sharedFiles);
  const double incremental_copy =
      copyFiles(work / "local-chk-2", incremental.new_local_names, work / "copy-2");
  fs::remove_all(work / "copy-2");
  std::uint64_t state_bytes = 0;
  for (const auto& f : incremental.handle.sharedFiles)
    state_bytes += static_cast<std::uint64_t>(f.size);
  for (const auto& f : incremental.handle.privateFiles)
    state_bytes += static_cast<std::uint64_t>(f.size);

  // (c) Restore the incremental checkpoint in fresh resources, as a restarted task would.
  store.reset();
  resources.reset();
  RocksDbOptions restore_options;
  restore_options.local_dir = (work / "restore-local").string();
  auto restore_resources = take(RocksDbResources::create(restore_options), "resources");
  ::sync();
  start = Clock::now();
  auto restored = take(restore_resources->openStoreFrom("bench/state_0", base, {incremental.handle},
                                                        0, kMaxParallelism - 1),
                       "restore");
  const double restore_seconds = secondsSince(start);
  const double restore_copy = copyDir(work / "local-chk-2", work / "copy-3");
  fs::remove_all(work / "copy-3");

  // A sample of keys (changed and unchanged) must read back as written.
  check(restored->openColumn("values", column), "open column after restore");
  std::string got;
  std::uint64_t checked = 0;
  for (std::uint64_t i = 0; i < keys; i += std::max<std::uint64_t>(1, keys / 20000)) {
    bool found = false;
    check(restored->get(column, KvSlice(makeKey(i)), got, found), "get after restore");
    makeValue(i, changed[i] ? 1 : 0, o.value_bytes, value);
    if (!found || got != value) die("key " + std::to_string(i) + " differs after restore");
    ++checked;
  }

  printRow("full", full.total(), full.bytes, full_copy, describe(full, full_copy) + ")");
  printRow("incremental", incremental.total(), incremental.bytes, incremental_copy,
           describe(incremental, incremental_copy) + "; " + std::to_string(changes) +
               " keys changed, state " + mb(state_bytes) + ")");
  printRow("restore", restore_seconds, state_bytes, restore_copy,
           "(openStoreFrom of " +
               std::to_string(incremental.handle.sharedFiles.size() +
                              incremental.handle.privateFiles.size()) +
               " files; " + std::to_string(checked) + " sampled keys checked)");
  std::fflush(stdout);
  restored.reset();
  restore_resources.reset();
  fs::remove_all(work);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--size-mb" && i + 1 < argc) {
      o.sizes_mb.push_back(static_cast<std::uint64_t>(std::stod(argv[++i])));
    } else if (a == "--value-bytes" && i + 1 < argc) {
      o.value_bytes = static_cast<std::size_t>(std::stoul(argv[++i]));
    } else if (a == "--change-percent" && i + 1 < argc) {
      o.change_percent = std::stod(argv[++i]);
    } else if (a == "--dir" && i + 1 < argc) {
      o.dir = argv[++i];
    } else if (a == "--help") {
      std::printf(
          "usage: weir_checkpoint_bench [--size-mb M (repeatable, default 100)] [--value-bytes B "
          "(200)] [--change-percent P (1)] [--dir DIR (temp)]\n");
      return 0;
    } else {
      die("unknown argument '" + a + "' (see --help)");
    }
  }
  if (o.sizes_mb.empty()) o.sizes_mb.push_back(100);
  if (o.value_bytes == 0 || o.change_percent <= 0 || o.change_percent > 100) {
    die("--value-bytes must be positive and --change-percent in (0, 100]");
  }
  const fs::path parent = o.dir.empty() ? fs::temp_directory_path() : fs::path(o.dir);
  std::string tmpl = (parent / "weir-checkpoint-bench-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) die("cannot create a directory under " + parent.string());
  const fs::path root = tmpl;
  const auto space = fs::space(root);
  std::printf("working directory %s (%.1f GB free)\n", root.c_str(),
              static_cast<double>(space.available) / 1e9);
  std::printf("ratio = copy time / weir time (above 1: faster than copying the same bytes)\n");
  for (const std::uint64_t size : o.sizes_mb) {
    // The store, the upload and one copy exist at once, plus compaction's temporary files.
    if (space.available < size * 1000000 * 4) {
      std::printf("\nstate %llu MB: skipped, needs about %llu MB free\n",
                  static_cast<unsigned long long>(size), static_cast<unsigned long long>(size * 4));
      continue;
    }
    runSize(size, o, root);
  }
  fs::remove_all(root);
  return 0;
}
