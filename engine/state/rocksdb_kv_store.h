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
// through the local files, which are scratch space.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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
  // Null until a store was opened.
  RocksDbResources* resources() const;
  const RocksDbOptions& options() const { return options_; }

 private:
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
  Status open() noexcept;
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
