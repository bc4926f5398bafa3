// The RocksDB state backend's storage: weir::KvStore over one RocksDB instance per subtask and
// operator, and the per-TaskManager resources every such instance shares.
//
// Memory: all stores of one TaskManager share one LRU cache and one write buffer manager, so block
// cache plus memtables stay near block_cache_size + write_buffer_size however many stores and
// columns exist. Memtable memory is charged to the cache (as in Flink's managed memory), whose
// capacity is the sum of both. Once the active memtables of all stores pass 3/4 of the write
// buffer budget, a write flushes the largest one, whichever store holds it (RocksDB alone would
// flush only the writing store's memtables, at 7/8, so idle stores would keep theirs). Both
// bounds are soft: memtables waiting for the single flush thread count on top of the budget (a
// column holds at most two), flushes happen only on writes (after a burst, every store idle, up to
// one memtable per column stays), and pinned blocks may overshoot the cache.
//
// Files: RocksDbResources owns a private working directory
// `<local_dir>/weir-rocksdb-XXXXXX`; each store lives in a sub-directory named after the store and
// deletes it when destroyed; the working directory goes when the resources and all their stores
// are gone.
//
// Durability: writes skip the write-ahead log. State survives failures through checkpoints, not
// through the local files, which are scratch space: RocksDbKvStore::checkpoint makes a local
// RocksDB checkpoint, uploadRocksDbCheckpoint copies it incrementally to checkpoint storage (as a
// thrift::KeyedStateHandle), RocksDbResources::openStoreFrom restores one or more such handles,
// rescaling key group ranges. Restore checks each state file's size; the recorded SHA-256 is not
// verified there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "checkpoint_types.h"
#include "weir/kv_store.h"
#include "weir/status.h"

namespace rocksdb {
class Cache;
class ColumnFamilyHandle;
class DB;
class WriteBufferManager;
}  // namespace rocksdb

namespace weir::engine {

struct RocksDbOptions {
  // Parent of the working directory; empty: the system temp directory.
  std::string local_dir;
  // Capacity of the LRU block cache shared by the TaskManager's stores.
  std::uint64_t block_cache_size = 64ull << 20;
  // Memtable budget shared by the TaskManager's stores.
  std::uint64_t write_buffer_size = 64ull << 20;
};

// Sizes derived from RocksDbOptions for every column family: a memtable is a fraction of the
// budget (so several columns can fill theirs before the budget forces flushes), and arena blocks
// are small (every written column holds at least one).
struct RocksDbColumnSizing {
  std::uint64_t write_buffer_size = 0;  // per memtable
  int max_write_buffer_number = 2;      // the active memtable plus one being flushed
  std::uint64_t arena_block_size = 0;
  static RocksDbColumnSizing forBudget(std::uint64_t write_buffer_budget);
};

class RocksDbKvStore;

// One file of a local RocksDB checkpoint (see RocksDbKvStore::checkpoint).
struct RocksDbCheckpointFile {
  std::string name;  // file name inside the checkpoint directory, e.g. "000012.sst", "CURRENT"
  std::uint64_t size = 0;
  bool sst = false;  // an immutable table file; everything else (MANIFEST, CURRENT, OPTIONS) not
};

// Incremental upload of a local checkpoint to checkpoint storage. `base` is the directory state
// file paths are relative to (the job's checkpoint root); SST files go to `base/shared_dir`, the
// others to `base/private_dir` (unique per checkpoint and subtask; created when missing).
//
// An SST file is stored as "<file number>-<sha256>.sst": named after its content, so files of
// different stores or runs never clash (an identical name means identical bytes), and the local
// name the MANIFEST expects is recovered from it on restore. An SST whose local name appears in
// `previous_shared` (the shared files of this store's last confirmed checkpoint, or of the handle
// it was restored from) with the same size is reused as is: SST files are immutable and their
// numbers never reused within one database. Only new SST files are copied and hashed.
//
// Returns a ROCKSDB_INCREMENTAL handle for key groups [key_group_start, key_group_end].
Result<thrift::KeyedStateHandle> uploadRocksDbCheckpoint(
    const std::filesystem::path& checkpoint_dir, const std::vector<RocksDbCheckpointFile>& files,
    const std::filesystem::path& base, const std::string& shared_dir,
    const std::string& private_dir, const std::vector<thrift::StateFile>& previous_shared,
    int key_group_start, int key_group_end);

// The local file name ("000012.sst") of an uploaded SST state file, or empty if `path` does not
// name one ("shared/000012-<sha256>.sst").
std::string rocksDbLocalSstName(const std::string& path);

// The store name of one subtask of one keyed operator: "<job>/<vertex uid>_<subtask>". `job` must
// tell apart runs on this TaskManager whose stores may coexist (the job id, plus the attempt if a
// restarted task may open its store while the failed one still closes): a name open twice is
// refused.
std::string rocksDbStoreName(const std::string& job, const std::string& vertex_uid, int subtask);

namespace rocksdb_detail {
struct SharedResources;
}

// Created once per TaskManager; hands out stores. Thread-safe: stores may be opened and destroyed
// from any thread.
class RocksDbResources {
 public:
  // Creates the cache, the write buffer manager and the working directory (and `local_dir` when
  // missing). Fails with a message naming the directory when it cannot be created.
  static Result<std::unique_ptr<RocksDbResources>> create(const RocksDbOptions& options);
  ~RocksDbResources();
  RocksDbResources(const RocksDbResources&) = delete;
  RocksDbResources& operator=(const RocksDbResources&) = delete;

  // Opens a new, empty store in the sub-directory `name` of the working directory. `name` is any
  // text, e.g. "<job>/<vertex uid>_<subtask>": each '/'-separated part becomes one directory
  // level, with bytes other than [A-Za-z0-9._-] escaped as %XX, so distinct names never share a
  // directory. A name already open is refused; leftovers of an earlier store of that name are
  // deleted first.
  Result<std::unique_ptr<RocksDbKvStore>> openStore(const std::string& name);

  // Opens store `name` (as openStore) with the state of `handles` (ROCKSDB_INCREMENTAL handles
  // made by uploadRocksDbCheckpoint, file paths relative to `base`) restricted to key groups
  // [key_group_start, key_group_end]; handles not overlapping that range are ignored, and without
  // any the store starts empty. The handle overlapping most is materialised in the store's
  // directory (files hard-linked, or copied across file systems) and opened with all its column
  // families; if its range differs, the key groups outside the new range are deleted in every
  // column. The in-range entries of every other overlapping handle are copied in, read from a
  // temporary read-only instance. A missing state file, or one of the wrong size, fails with a
  // message naming it.
  Result<std::unique_ptr<RocksDbKvStore>> openStoreFrom(
      const std::string& name, const std::filesystem::path& base,
      const std::vector<thrift::KeyedStateHandle>& handles, int key_group_start, int key_group_end);

  const RocksDbOptions& options() const;
  const std::string& workingDir() const;
  const std::shared_ptr<rocksdb::Cache>& blockCache() const;
  const std::shared_ptr<rocksdb::WriteBufferManager>& writeBufferManager() const;
  // Memtables flushed to keep within the write buffer budget (see the file comment).
  std::uint64_t reliefFlushes() const;

 private:
  explicit RocksDbResources(std::shared_ptr<rocksdb_detail::SharedResources> shared);
  std::shared_ptr<rocksdb_detail::SharedResources> shared_;
};

// The RocksDbResources of one TaskManager (or one embedded executor), created when the first store
// is opened: a TaskManager whose jobs all keep state on the heap makes no working directory.
// Thread-safe.
class LazyRocksDbResources {
 public:
  explicit LazyRocksDbResources(RocksDbOptions options) : options_(std::move(options)) {}
  // Creates the resources on first use (a failure is returned and retried on the next call).
  Result<std::unique_ptr<RocksDbKvStore>> openStore(const std::string& name);
  // RocksDbResources::openStoreFrom, creating the resources on first use.
  Result<std::unique_ptr<RocksDbKvStore>> openStoreFrom(
      const std::string& name, const std::filesystem::path& base,
      const std::vector<thrift::KeyedStateHandle>& handles, int key_group_start,
      int key_group_end);
  // Null until a store was opened.
  RocksDbResources* resources() const;
  const RocksDbOptions& options() const { return options_; }

 private:
  Result<RocksDbResources*> ensure();

  const RocksDbOptions options_;
  mutable std::mutex mu_;
  std::unique_ptr<RocksDbResources> resources_;  // guarded by mu_
};

// One RocksDB instance: columns are column families. Used by one task thread at a time (see
// weir::KvStore); destroying it closes the database and deletes its directory. Iterators must be
// destroyed before their store.
class RocksDbKvStore final : public weir::KvStore {
 public:
  ~RocksDbKvStore() override;
  RocksDbKvStore(const RocksDbKvStore&) = delete;
  RocksDbKvStore& operator=(const RocksDbKvStore&) = delete;

  Status openColumn(const std::string& name, int& column) noexcept override;
  Status get(int column, KvSlice key, std::string& value, bool& found) noexcept override;
  Status put(int column, KvSlice key, KvSlice value) noexcept override;
  Status append(int column, KvSlice key, KvSlice value) noexcept override;
  Status remove(int column, KvSlice key) noexcept override;
  Status scan(int column, KvSlice begin, KvSlice end,
              std::unique_ptr<KvIterator>& out) noexcept override;

  // Writes every column's memtables to SST files and waits (for checkpoints, and tests).
  Status flush() noexcept;

  // A RocksDB checkpoint of the whole store (every column family, memtables flushed first) in the
  // new local directory `dir` (must not exist; its parent must), as hard links where possible.
  // Returns its files sorted by name.
  Result<std::vector<RocksDbCheckpointFile>> checkpoint(const std::string& dir) noexcept;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  int numColumns() const { return static_cast<int>(columns_.size()); }
  // The database and a column's family, for checkpointing, metrics and tests.
  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* columnHandle(int column) const {
    return column >= 0 && column < numColumns() ? columns_[column].handle : nullptr;
  }
  // The block cache RocksDB actually uses for `column` (null if none or no such column).
  std::shared_ptr<rocksdb::Cache> blockCacheInUse(int column) const;

 private:
  friend class RocksDbResources;
  struct Column {
    std::string name;
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    bool owned = true;  // false for RocksDB's default column family
  };

  RocksDbKvStore(std::shared_ptr<rocksdb_detail::SharedResources> shared, std::string name,
                 std::string relative_path, std::string path);
  // Opens the database in path_; with `existing`, opens every column family it holds.
  Status open(bool existing = false) noexcept;
  // Deletes the entries outside key groups [first, last] in every column family.
  Status dropKeyGroupsOutside(int first, int last) noexcept;
  // Copies the entries of key groups [first, last] of every column family of `source` (opened
  // with all its families, `source_families` in ListColumnFamilies order).
  Status copyKeyGroupsFrom(rocksdb::DB* source,
                           const std::vector<rocksdb::ColumnFamilyHandle*>& source_families,
                           int first, int last) noexcept;
  // "RocksDB store '<name>' column '<column>': <op>", for error messages.
  std::string context(int column, const char* op) const;
  Status checkColumn(int column, const char* op) const;

  std::shared_ptr<rocksdb_detail::SharedResources> shared_;
  std::string name_;
  std::string relative_path_;  // below the working directory
  std::string path_;
  rocksdb::DB* db_ = nullptr;
  std::vector<Column> columns_;
  std::unordered_map<std::string, int> column_ids_;
};

}  // namespace weir::engine
