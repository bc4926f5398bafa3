#include "state/rocksdb_kv_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <set>

#include "common/sha256.h"

namespace weir::engine {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kKiB = 1ull << 10;
constexpr std::uint64_t kMiB = 1ull << 20;

// Appends concatenate bytes: list state writes self-delimiting elements, so the concatenation of
// appended values is the list. Associative, so operands combine before a base value is known.
class ConcatMergeOperator final : public rocksdb::MergeOperator {
 public:
  // Persisted in the OPTIONS file of every store: never rename.
  const char* Name() const override { return "weir.Concat"; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    if (in.existing_value == nullptr && in.operand_list.size() == 1) {
      out->existing_operand = in.operand_list.front();
      return true;
    }
    std::size_t size = in.existing_value != nullptr ? in.existing_value->size() : 0;
    for (const rocksdb::Slice& op : in.operand_list)
      size += op.size();
    out->new_value.clear();
    out->new_value.reserve(size);
    if (in.existing_value != nullptr) {
      out->new_value.append(in.existing_value->data(), in.existing_value->size());
    }
    for (const rocksdb::Slice& op : in.operand_list)
      out->new_value.append(op.data(), op.size());
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice& /*key*/, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger* /*logger*/) const override {
    std::size_t size = 0;
    for (const rocksdb::Slice& op : operands)
      size += op.size();
    new_value->reserve(size);
    for (const rocksdb::Slice& op : operands)
      new_value->append(op.data(), op.size());
    return true;
  }
};

rocksdb::Slice toSlice(KvSlice s) {
  return {reinterpret_cast<const char*>(s.data), s.size};
}

KvSlice fromSlice(const rocksdb::Slice& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Status toStatus(const rocksdb::Status& s, const std::string& context) {
  std::string message = context + " failed: " + s.ToString();
  switch (s.code()) {
    case rocksdb::Status::kOk:
      return Status::ok();
    case rocksdb::Status::kNotFound:
      return Status::notFound(std::move(message));
    case rocksdb::Status::kCorruption:
      return Status::corruption(std::move(message));
    case rocksdb::Status::kInvalidArgument:
    case rocksdb::Status::kNotSupported:
      return Status::invalidArgument(std::move(message));
    case rocksdb::Status::kIOError:
      return Status::ioError(std::move(message));
    default:
      return Status::internal(std::move(message));
  }
}

// Runs `f`, turning an escaping exception (bad_alloc, in practice) into a Status.
template <class F>
auto guarded(const char* what, F&& f) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::internal(std::string(what) + ": " + e.what());
  } catch (...) {
    return Status::internal(std::string(what) + ": unknown exception");
  }
}

bool plainByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

// One path component: unsafe bytes as %XX ("." and ".." escaped too); a long one is cut and made
// unique again with a hash of the whole ('~' never appears in an escaped name).
std::string escapeComponent(const std::string& part) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  const bool dots = part == "." || part == "..";
  for (unsigned char c : part) {
    if (plainByte(c) && !(dots && c == '.')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  constexpr std::size_t kMaxComponent = 200;  // file names are limited to 255 bytes
  if (out.size() > kMaxComponent) {
    std::uint64_t h = 14695981039346656037ull;  // FNV-1a of the unescaped part
    for (unsigned char c : part)
      h = (h ^ c) * 1099511628211ull;
    std::size_t cut = kMaxComponent - 17;
    // Do not split an escape sequence.
    for (std::size_t back = 1; back <= 2 && cut >= back; ++back) {
      if (out[cut - back] == '%') cut -= back;
    }
    out.resize(cut);
    out.push_back('~');
    for (int shift = 60; shift >= 0; shift -= 4)
      out.push_back(kHex[(h >> shift) & 15]);
  }
  return out;
}

Result<std::string> storeDirName(const std::string& name) {
  if (name.empty()) return Status::invalidArgument("a RocksDB store needs a name");
  std::string out;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = name.find('/', start);
    const std::string part =
        name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty()) {
      return Status::invalidArgument("RocksDB store name '" + name +
                                     "' has an empty part between slashes");
    }
    if (!out.empty()) out.push_back('/');
    out += escapeComponent(part);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

std::uint64_t clampTo(std::uint64_t v, std::uint64_t lo, std::uint64_t hi) {
  return std::min(std::max(v, lo), hi);
}

}  // namespace

std::string rocksDbStoreName(const std::string& job, const std::string& vertex_uid, int subtask) {
  return job + "/" + vertex_uid + "_" + std::to_string(subtask);
}

RocksDbColumnSizing RocksDbColumnSizing::forBudget(std::uint64_t write_buffer_budget) {
  RocksDbColumnSizing s;
  s.write_buffer_size = clampTo(write_buffer_budget / 8, 64 * kKiB, 64 * kMiB);
  s.max_write_buffer_number = 2;
  s.arena_block_size = clampTo(s.write_buffer_size / 64, 16 * kKiB, kMiB) / (4 * kKiB) * (4 * kKiB);
  return s;
}

namespace rocksdb_detail {

// What the resources object and its stores share; the working directory goes with the last of
// them.
struct SharedResources {
  RocksDbOptions options;
  std::string working_dir;
  std::shared_ptr<rocksdb::Cache> cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffer_manager;
  rocksdb::Options db_options;  // every store's DB and column family options

  std::mutex mutex;                 // guards directory changes and open_dirs
  std::set<std::string> open_dirs;  // relative paths of the stores alive

  // Every open column of every store, for maybeRelieve(). Written by the stores' task threads.
  struct OpenColumn {
    rocksdb::DB* db;
    rocksdb::ColumnFamilyHandle* handle;
  };
  std::mutex columns_mutex;
  std::vector<OpenColumn> columns;
  std::uint64_t relief_threshold = 0;  // of mutable memtable memory
  std::uint64_t relief_min_size = 0;   // of a memtable flushed for the budget
  std::atomic<std::uint64_t> relief_flushes{0};
  // After a scan found nothing to flush, writes skip the scan until then (steady clock, ns).
  std::atomic<std::int64_t> relief_pause_until{0};

  ~SharedResources() {
    std::error_code ec;
    fs::remove_all(working_dir, ec);
    if (ec) {
      spdlog::warn("cannot remove the RocksDB working directory {}: {}", working_dir, ec.message());
    }
  }

  // Called after writes. RocksDB's write buffer manager reacts to the budget only in the store
  // that writes, by flushing that store's oldest memtable: memtables of stores that stopped
  // writing would keep their memory, and a busy store would flush ever smaller memtables. So
  // before it steps in (at 7/8 of the budget), the largest active memtable of the whole
  // TaskManager is flushed instead, once mutable memtables pass 3/4 of the budget.
  void maybeRelieve() noexcept {
    if (write_buffer_manager->mutable_memtable_memory_usage() <= relief_threshold) return;
    const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    if (now < relief_pause_until.load(std::memory_order_relaxed)) return;
    try {
      std::unique_lock<std::mutex> lock(columns_mutex, std::try_to_lock);
      if (!lock.owns_lock()) return;  // another thread is at it
      if (write_buffer_manager->mutable_memtable_memory_usage() <= relief_threshold) return;
      const OpenColumn* largest = nullptr;
      std::uint64_t largest_size = relief_min_size;  // smaller ones are not worth a file
      for (const OpenColumn& c : columns) {
        std::uint64_t immutable = 0;
        std::uint64_t size = 0;
        // A column still flushing is skipped: a second immutable memtable would stall its writes.
        if (!c.db->GetIntProperty(c.handle, "rocksdb.num-immutable-mem-table", &immutable) ||
            immutable != 0 ||
            !c.db->GetIntProperty(c.handle, "rocksdb.cur-size-active-mem-table", &size)) {
          continue;
        }
        if (size > largest_size) {
          largest = &c;
          largest_size = size;
        }
      }
      rocksdb::Status s = rocksdb::Status::Incomplete();
      if (largest != nullptr) {
        rocksdb::FlushOptions flush;
        flush.wait = false;              // switch the memtable now, write it in the background
        flush.allow_write_stall = true;  // do not wait for other flushes first
        s = largest->db->Flush(flush, largest->handle);
      }
      if (s.ok()) {
        relief_flushes.fetch_add(1, std::memory_order_relaxed);
      } else {
        // Nothing worth flushing, or its store stopped writes until its flushes finish (and
        // cannot switch memtables): the memory is on its way out; look again a little later.
        constexpr std::int64_t kPause =
            std::chrono::nanoseconds(std::chrono::milliseconds(1)).count();
        relief_pause_until.store(now + kPause, std::memory_order_relaxed);
      }
    } catch (...) {
      // Relief is an optimisation; RocksDB's own flush still bounds memory.
    }
  }
};

}  // namespace rocksdb_detail

using rocksdb_detail::SharedResources;

namespace {

rocksdb::Options makeDbOptions(const SharedResources& shared) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.write_buffer_manager = shared.write_buffer_manager;
  // Background work runs on RocksDB's process-wide thread pools; with 2 jobs they hold one flush
  // and one compaction thread, whatever the number of stores.
  o.max_background_jobs = 2;
  o.max_subcompactions = 1;
  o.max_file_opening_threads = 1;
  o.stats_dump_period_sec = 0;
  o.stats_persist_period_sec = 0;
  // Closing a store deletes it: flushing first would be wasted work.
  o.avoid_flush_during_shutdown = true;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.keep_log_file_num = 2;
  o.max_log_file_size = 4 * kMiB;

  const RocksDbColumnSizing sizing =
      RocksDbColumnSizing::forBudget(shared.options.write_buffer_size);
  o.write_buffer_size = sizing.write_buffer_size;
  o.max_write_buffer_number = sizing.max_write_buffer_number;
  o.arena_block_size = sizing.arena_block_size;
  o.level_compaction_dynamic_level_bytes = true;
  o.merge_operator = std::make_shared<ConcatMergeOperator>();

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = shared.cache;
  // Index and filter blocks live in (and are bounded by) the shared cache too.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));  // point reads of absent keys
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// RocksDbResources

RocksDbResources::RocksDbResources(std::shared_ptr<SharedResources> shared)
    : shared_(std::move(shared)) {}

RocksDbResources::~RocksDbResources() = default;

Result<std::unique_ptr<RocksDbResources>> RocksDbResources::create(const RocksDbOptions& options) {
  std::error_code ec;
  fs::path base = options.local_dir;
  if (base.empty()) {
    base = fs::temp_directory_path(ec);
    if (ec) {
      return Status::ioError("no system temp directory for RocksDB state: " + ec.message());
    }
  }
  fs::create_directories(base, ec);
  if (ec || !fs::is_directory(base)) {
    return Status::ioError("RocksDB local directory '" + base.string() + "' cannot be created: " +
                           (ec ? ec.message() : std::string("not a directory")));
  }
  if (fs::path absolute = fs::absolute(base, ec); !ec) base = absolute;
  std::string tmpl = (base / "weir-rocksdb-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Status::ioError("cannot create a RocksDB working directory in '" + base.string() +
                           "': " + std::strerror(errno));
  }

  return guarded("RocksDB resources", [&]() -> Result<std::unique_ptr<RocksDbResources>> {
    auto shared = std::make_shared<SharedResources>();
    shared->options = options;
    shared->working_dir = tmpl;  // removed again by ~SharedResources if anything below fails
    // Memtables are charged to the cache, so its capacity covers both budgets.
    shared->cache = rocksdb::NewLRUCache(
        static_cast<std::size_t>(options.block_cache_size + options.write_buffer_size));
    shared->write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
        static_cast<std::size_t>(options.write_buffer_size), shared->cache, /*allow_stall=*/false);
    shared->relief_threshold = options.write_buffer_size / 4 * 3;
    shared->relief_min_size =
        RocksDbColumnSizing::forBudget(options.write_buffer_size).write_buffer_size / 8;
    shared->db_options = makeDbOptions(*shared);
    return std::unique_ptr<RocksDbResources>(new RocksDbResources(std::move(shared)));
  });
}

const RocksDbOptions& RocksDbResources::options() const {
  return shared_->options;
}
const std::string& RocksDbResources::workingDir() const {
  return shared_->working_dir;
}
const std::shared_ptr<rocksdb::Cache>& RocksDbResources::blockCache() const {
  return shared_->cache;
}
const std::shared_ptr<rocksdb::WriteBufferManager>& RocksDbResources::writeBufferManager() const {
  return shared_->write_buffer_manager;
}
std::uint64_t RocksDbResources::reliefFlushes() const {
  return shared_->relief_flushes.load(std::memory_order_relaxed);
}

Result<std::unique_ptr<RocksDbKvStore>> RocksDbResources::openStore(const std::string& name) {
  auto relative = storeDirName(name);
  if (!relative.isOk()) return relative.status();
  const std::string path = shared_->working_dir + "/" + *relative;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->open_dirs.count(*relative) != 0) {
      return Status::invalidArgument("RocksDB store '" + name + "' is already open");
    }
    std::error_code ec;
    fs::remove_all(path, ec);  // leftovers of an earlier store of this name
    fs::create_directories(path, ec);
    if (ec) {
      return Status::ioError("RocksDB store '" + name + "': cannot create directory '" + path +
                             "': " + ec.message());
    }
    shared_->open_dirs.insert(*relative);
  }
  // From here on the store's destructor releases the name and the directory.
  std::unique_ptr<RocksDbKvStore> store(new RocksDbKvStore(shared_, name, *relative, path));
  Status s = store->open();
  if (!s.isOk()) return s;
  return store;
}

// ---------------------------------------------------------------------------------------------
// LazyRocksDbResources

Result<RocksDbResources*> LazyRocksDbResources::ensure() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!resources_) {
    auto created = RocksDbResources::create(options_);
    if (!created.isOk()) return created.status();
    resources_ = std::move(*created);
    spdlog::info("RocksDB state: working directory {}", resources_->workingDir());
  }
  return resources_.get();
}

Result<std::unique_ptr<RocksDbKvStore>> LazyRocksDbResources::openStore(const std::string& name) {
  auto resources = ensure();
  if (!resources.isOk()) return resources.status();
  return (*resources)->openStore(name);
}

Result<std::unique_ptr<RocksDbKvStore>> LazyRocksDbResources::openStoreFrom(
    const std::string& name, const std::filesystem::path& base,
    const std::vector<thrift::KeyedStateHandle>& handles, int key_group_start,
    int key_group_end) {
  auto resources = ensure();
  if (!resources.isOk()) return resources.status();
  return (*resources)->openStoreFrom(name, base, handles, key_group_start, key_group_end);
}

RocksDbResources* LazyRocksDbResources::resources() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resources_.get();
}

// ---------------------------------------------------------------------------------------------
// RocksDbKvStore

namespace {

class RocksDbIterator final : public KvIterator {
 public:
  // The bounds are copied here: RocksDB reads them for the iterator's whole life.
  RocksDbIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, KvSlice begin, KvSlice end,
                  std::string context)
      : begin_(begin.view()),
        end_(end.view()),
        lower_(begin_),
        upper_(end_),
        context_(std::move(context)) {
    rocksdb::ReadOptions ro;
    if (!begin_.empty()) ro.iterate_lower_bound = &lower_;
    if (!end_.empty()) ro.iterate_upper_bound = &upper_;
    it_.reset(db->NewIterator(ro, cf));
    if (begin_.empty()) {
      it_->SeekToFirst();
    } else {
      it_->Seek(lower_);
    }
  }

  bool valid() const noexcept override { return it_->Valid(); }
  void next() noexcept override { it_->Next(); }
  KvSlice key() const noexcept override { return fromSlice(it_->key()); }
  KvSlice value() const noexcept override { return fromSlice(it_->value()); }
  Status status() const noexcept override {
    const rocksdb::Status s = it_->status();
    if (s.ok()) return Status::ok();
    return guarded(context_.c_str(), [&] { return toStatus(s, context_); });
  }

 private:
  // Declared before it_, so they outlive it.
  const std::string begin_;
  const std::string end_;
  const rocksdb::Slice lower_;
  const rocksdb::Slice upper_;
  const std::string context_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace

RocksDbKvStore::RocksDbKvStore(std::shared_ptr<SharedResources> shared, std::string name,
                               std::string relative_path, std::string path)
    : shared_(std::move(shared)),
      name_(std::move(name)),
      relative_path_(std::move(relative_path)),
      path_(std::move(path)) {}

Status RocksDbKvStore::open(bool existing) noexcept {
  return guarded("RocksDB store", [&] {
    rocksdb::DB* db = nullptr;
    const std::string context = "RocksDB store '" + name_ + "': opening '" + path_ + "'";
    if (!existing) {
      const rocksdb::Status s = rocksdb::DB::Open(shared_->db_options, path_, &db);
      if (!s.ok()) return toStatus(s, context);
      db_ = db;
      return Status::ok();
    }
    std::vector<std::string> names;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(shared_->db_options, path_, &names);
    if (!s.ok()) return toStatus(s, context);
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& n : names)
      families.emplace_back(n, rocksdb::ColumnFamilyOptions(shared_->db_options));
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    s = rocksdb::DB::Open(shared_->db_options, path_, families, &handles, &db);
    if (!s.ok()) return toStatus(s, context);
    db_ = db;
    // Every restored family becomes a column, so openColumn finds it by name. The default family
    // stays unregistered (as in a new store) until opened by name.
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i] == rocksdb::kDefaultColumnFamilyName) {
        if (handles[i] != db_->DefaultColumnFamily()) {
          db_->DestroyColumnFamilyHandle(handles[i]).PermitUncheckedError();
        }
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(shared_->columns_mutex);
        shared_->columns.push_back({db_, handles[i]});
      }
      columns_.push_back(Column{names[i], handles[i], true});
      column_ids_.emplace(names[i], numColumns() - 1);
    }
    return Status::ok();
  });
}

RocksDbKvStore::~RocksDbKvStore() {
  if (db_ != nullptr) {
    {
      std::lock_guard<std::mutex> lock(shared_->columns_mutex);
      auto& all = shared_->columns;
      all.erase(std::remove_if(all.begin(), all.end(),
                               [&](const SharedResources::OpenColumn& c) { return c.db == db_; }),
                all.end());
    }
    rocksdb::CancelAllBackgroundWork(db_, /*wait=*/true);
    for (const Column& c : columns_) {
      if (c.owned) db_->DestroyColumnFamilyHandle(c.handle).PermitUncheckedError();
    }
    const rocksdb::Status closed = db_->Close();
    if (!closed.ok()) {
      spdlog::warn("RocksDB store '{}': closing failed: {}", name_, closed.ToString());
    }
    delete db_;
    db_ = nullptr;
    rocksdb::DestroyDB(path_, shared_->db_options).PermitUncheckedError();
  }
  std::lock_guard<std::mutex> lock(shared_->mutex);
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) spdlog::warn("RocksDB store '{}': cannot remove {}: {}", name_, path_, ec.message());
  // Parents the name created ("<job>/"), once no other store uses them.
  const fs::path root = shared_->working_dir;
  for (fs::path dir = fs::path(path_).parent_path(); dir != root && dir.has_relative_path();
       dir = dir.parent_path()) {
    if (!fs::remove(dir, ec)) break;  // not empty (or gone): stop
  }
  shared_->open_dirs.erase(relative_path_);
}

std::string RocksDbKvStore::context(int column, const char* op) const {
  std::string s = "RocksDB store '" + name_ + "'";
  if (column >= 0 && column < numColumns()) s += " column '" + columns_[column].name + "'";
  return s + ": " + op;
}

Status RocksDbKvStore::checkColumn(int column, const char* op) const {
  if (column >= 0 && column < numColumns()) return Status::ok();
  return Status::invalidArgument("RocksDB store '" + name_ + "': " + op + " on column " +
                                 std::to_string(column) + ", which was not opened (" +
                                 std::to_string(numColumns()) + " open)");
}

Status RocksDbKvStore::openColumn(const std::string& name, int& column) noexcept {
  return guarded("RocksDB store openColumn", [&] {
    if (auto it = column_ids_.find(name); it != column_ids_.end()) {
      column = it->second;
      return Status::ok();
    }
    if (name.empty()) {
      return Status::invalidArgument("RocksDB store '" + name_ + "': a column needs a name");
    }
    Column c;
    c.name = name;
    if (name == rocksdb::kDefaultColumnFamilyName) {
      c.handle = db_->DefaultColumnFamily();
      c.owned = false;
    } else {
      const rocksdb::Status s = db_->CreateColumnFamily(
          rocksdb::ColumnFamilyOptions(shared_->db_options), name, &c.handle);
      if (!s.ok()) {
        return toStatus(s, "RocksDB store '" + name_ + "': creating column '" + name + "'");
      }
    }
    {
      std::lock_guard<std::mutex> lock(shared_->columns_mutex);
      shared_->columns.push_back({db_, c.handle});
    }
    columns_.push_back(std::move(c));
    column = numColumns() - 1;
    column_ids_.emplace(name, column);
    return Status::ok();
  });
}

Status RocksDbKvStore::get(int column, KvSlice key, std::string& value, bool& found) noexcept {
  found = false;
  if (Status s = checkColumn(column, "get"); !s.isOk()) return s;
  return guarded("RocksDB store get", [&] {
    // The std::string overload reads through a PinnableSlice into `value`, reusing its capacity.
    const rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), columns_[column].handle, toSlice(key), &value);
    if (s.ok()) {
      found = true;
      return Status::ok();
    }
    value.clear();
    if (s.IsNotFound()) return Status::ok();
    return toStatus(s, context(column, "get"));
  });
}

namespace {

const rocksdb::WriteOptions& writeOptions() {
  static const rocksdb::WriteOptions kOptions = [] {
    rocksdb::WriteOptions w;
    w.disableWAL = true;  // durability comes from checkpoints
    return w;
  }();
  return kOptions;
}

}  // namespace

Status RocksDbKvStore::put(int column, KvSlice key, KvSlice value) noexcept {
  if (Status s = checkColumn(column, "put"); !s.isOk()) return s;
  return guarded("RocksDB store put", [&] {
    const rocksdb::Status s =
        db_->Put(writeOptions(), columns_[column].handle, toSlice(key), toSlice(value));
    if (!s.ok()) return toStatus(s, context(column, "put"));
    shared_->maybeRelieve();
    return Status::ok();
  });
}

Status RocksDbKvStore::append(int column, KvSlice key, KvSlice value) noexcept {
  if (Status s = checkColumn(column, "append"); !s.isOk()) return s;
  return guarded("RocksDB store append", [&] {
    const rocksdb::Status s =
        db_->Merge(writeOptions(), columns_[column].handle, toSlice(key), toSlice(value));
    if (!s.ok()) return toStatus(s, context(column, "append"));
    shared_->maybeRelieve();
    return Status::ok();
  });
}

Status RocksDbKvStore::remove(int column, KvSlice key) noexcept {
  if (Status s = checkColumn(column, "remove"); !s.isOk()) return s;
  return guarded("RocksDB store remove", [&] {
    const rocksdb::Status s = db_->Delete(writeOptions(), columns_[column].handle, toSlice(key));
    return s.ok() ? Status::ok() : toStatus(s, context(column, "remove"));
  });
}

Status RocksDbKvStore::scan(int column, KvSlice begin, KvSlice end,
                            std::unique_ptr<KvIterator>& out) noexcept {
  out.reset();
  if (Status s = checkColumn(column, "scan"); !s.isOk()) return s;
  return guarded("RocksDB store scan", [&] {
    auto it = std::make_unique<RocksDbIterator>(db_, columns_[column].handle, begin, end,
                                                context(column, "scan"));
    Status s = it->status();
    if (!s.isOk()) return s;
    out = std::move(it);
    return Status::ok();
  });
}

Status RocksDbKvStore::flush() noexcept {
  return guarded("RocksDB store flush", [&] {
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    for (const Column& c : columns_)
      handles.push_back(c.handle);
    if (handles.empty()) return Status::ok();
    rocksdb::FlushOptions fo;
    fo.wait = true;
    const rocksdb::Status s = db_->Flush(fo, handles);
    return s.ok() ? Status::ok() : toStatus(s, "RocksDB store '" + name_ + "': flush");
  });
}

std::shared_ptr<rocksdb::Cache> RocksDbKvStore::blockCacheInUse(int column) const {
  if (column < 0 || column >= numColumns()) return nullptr;
  const rocksdb::Options o = db_->GetOptions(columns_[column].handle);
  if (o.table_factory == nullptr) return nullptr;
  const auto* table = o.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>();
  return table != nullptr ? table->block_cache : nullptr;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and restore

namespace {

// The first key of key group `kg` in every column (keys start with it as a big-endian u16).
std::string keyGroupBound(int kg) {
  std::string k;
  k.push_back(static_cast<char>((kg >> 8) & 0xff));
  k.push_back(static_cast<char>(kg & 0xff));
  return k;
}

constexpr int kMaxKeyGroup = 0xffff;

// Hard-links `from` to `to` (when `link`), copying when linking fails (another file system, say).
// Only immutable files may be linked: a write through the link would change the checkpoint.
Status linkOrCopy(const fs::path& from, const fs::path& to, bool link) {
  std::error_code ec;
  if (link) {
    fs::create_hard_link(from, to, ec);
    if (!ec) return Status::ok();
    ec.clear();
  }
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return Status::ioError("cannot copy " + from.string() + " to " + to.string() + ": " +
                           ec.message());
  }
  return Status::ok();
}

// Checks that `base/file.path` exists with the recorded size.
Status checkStateFile(const fs::path& base, const thrift::StateFile& file) {
  if (file.path.empty() || fs::path(file.path).is_absolute() ||
      file.path.find("..") != std::string::npos) {
    return Status::corruption("RocksDB state file path '" + file.path + "' leaves " +
                              base.string());
  }
  const fs::path p = base / file.path;
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) {
    return Status::notFound("RocksDB state file " + p.string() + " is missing: " + ec.message());
  }
  if (static_cast<std::int64_t>(size) != file.size) {
    return Status::corruption("RocksDB state file " + p.string() + " has " + std::to_string(size) +
                              " bytes, the checkpoint records " + std::to_string(file.size));
  }
  return Status::ok();
}

// Places the files of `handle` in the (empty, existing) directory `dir` under their local names:
// SST files hard-linked (immutable, RocksDB only ever unlinks them), the others copied.
Status materialize(const fs::path& base, const thrift::KeyedStateHandle& handle,
                   const fs::path& dir) {
  if (handle.kind != thrift::KeyedStateKind::ROCKSDB_INCREMENTAL) {
    return Status::invalidArgument("a RocksDB store cannot restore a keyed state handle of kind " +
                                   std::to_string(static_cast<int>(handle.kind)));
  }
  for (const thrift::StateFile& f : handle.sharedFiles) {
    if (Status s = checkStateFile(base, f); !s.isOk()) return s;
  }
  for (const thrift::StateFile& f : handle.privateFiles) {
    if (Status s = checkStateFile(base, f); !s.isOk()) return s;
  }
  for (const thrift::StateFile& f : handle.sharedFiles) {
    const std::string local = rocksDbLocalSstName(f.path);
    if (local.empty()) {
      return Status::corruption("RocksDB shared state file '" + f.path +
                                "' is not named <number>-<sha256>.sst");
    }
    if (Status s = linkOrCopy(base / f.path, dir / local, true); !s.isOk()) return s;
  }
  for (const thrift::StateFile& f : handle.privateFiles) {
    const fs::path name = fs::path(f.path).filename();
    // MANIFEST and the others may be written to once open: copied.
    if (Status s = linkOrCopy(base / f.path, dir / name, false); !s.isOk()) return s;
  }
  return Status::ok();
}

int overlap(const thrift::KeyedStateHandle& h, int first, int last) {
  return std::max(0, std::min(last, h.keyGroupEnd) - std::max(first, h.keyGroupStart) + 1);
}

}  // namespace

std::string rocksDbLocalSstName(const std::string& path) {
  const std::string file = fs::path(path).filename().string();
  const std::size_t dash = file.find('-');
  if (dash == std::string::npos || dash == 0 || !file.ends_with(".sst")) return {};
  for (std::size_t i = 0; i < dash; ++i) {
    if (file[i] < '0' || file[i] > '9') return {};
  }
  return file.substr(0, dash) + ".sst";
}

Result<std::vector<RocksDbCheckpointFile>> RocksDbKvStore::checkpoint(
    const std::string& dir) noexcept {
  return guarded("RocksDB store checkpoint", [&]() -> Result<std::vector<RocksDbCheckpointFile>> {
    const std::string context = "RocksDB store '" + name_ + "': checkpoint into '" + dir + "'";
    rocksdb::Checkpoint* raw = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(db_, &raw);
    if (!s.ok()) return toStatus(s, context);
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    // log_size_for_flush 0: always flush the memtables (writes skip the WAL, so it is empty).
    s = cp->CreateCheckpoint(dir, /*log_size_for_flush=*/0);
    if (!s.ok()) return toStatus(s, context);
    std::vector<RocksDbCheckpointFile> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      RocksDbCheckpointFile f;
      f.name = it->path().filename().string();
      f.size = it->file_size(ec);
      if (ec) break;
      f.sst = f.name.ends_with(".sst");
      files.push_back(std::move(f));
    }
    if (ec) return Status::ioError(context + ": cannot list it: " + ec.message());
    std::sort(files.begin(), files.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    return files;
  });
}

Result<thrift::KeyedStateHandle> uploadRocksDbCheckpoint(
    const fs::path& checkpoint_dir, const std::vector<RocksDbCheckpointFile>& files,
    const fs::path& base, const std::string& shared_dir, const std::string& private_dir,
    const std::vector<thrift::StateFile>& previous_shared, int key_group_start, int key_group_end) {
  try {
    thrift::KeyedStateHandle handle;
    handle.keyGroupStart = key_group_start;
    handle.keyGroupEnd = key_group_end;
    handle.kind = thrift::KeyedStateKind::ROCKSDB_INCREMENTAL;
    std::unordered_map<std::string, const thrift::StateFile*> previous;
    for (const thrift::StateFile& f : previous_shared) {
      if (std::string local = rocksDbLocalSstName(f.path); !local.empty()) previous[local] = &f;
    }
    std::error_code ec;
    for (const std::string& d : {shared_dir, private_dir}) {
      fs::create_directories(base / d, ec);
      if (ec) {
        return Status::ioError("cannot create checkpoint directory " + (base / d).string() + ": " +
                               ec.message());
      }
    }
    for (const RocksDbCheckpointFile& f : files) {
      const fs::path source = checkpoint_dir / f.name;
      if (f.sst) {
        if (auto it = previous.find(f.name);
            it != previous.end() && it->second->size == static_cast<std::int64_t>(f.size)) {
          handle.sharedFiles.push_back(*it->second);
          continue;
        }
      }
      auto hash = sha256File(source);
      if (!hash.isOk()) return hash.status();
      thrift::StateFile out;
      out.size = static_cast<std::int64_t>(f.size);
      out.sha256 = *hash;
      if (f.sst) {
        const std::string stem = f.name.substr(0, f.name.size() - 4);
        out.path = (fs::path(shared_dir) / (stem + "-" + *hash + ".sst")).string();
      } else {
        out.path = (fs::path(private_dir) / f.name).string();
      }
      const fs::path target = base / out.path;
      // A shared file of that name has the same content: keep it. Otherwise write beside it and
      // rename, so a reader never sees a partial file under the final name.
      if (!(f.sst && fs::exists(target, ec) && fs::file_size(target, ec) == f.size && !ec)) {
        const fs::path tmp = target.string() + ".tmp";
        fs::copy_file(source, tmp, fs::copy_options::overwrite_existing, ec);
        if (!ec) fs::rename(tmp, target, ec);
        if (ec) {
          fs::remove(tmp, ec);
          return Status::ioError("cannot upload " + source.string() + " to " + target.string() +
                                 ": " + ec.message());
        }
      }
      (f.sst ? handle.sharedFiles : handle.privateFiles).push_back(std::move(out));
    }
    return handle;
  } catch (const std::exception& e) {
    return Status::internal(std::string("RocksDB checkpoint upload: ") + e.what());
  }
}

Status RocksDbKvStore::dropKeyGroupsOutside(int first, int last) noexcept {
  return guarded("RocksDB store restore", [&] {
    std::vector<rocksdb::ColumnFamilyHandle*> families{db_->DefaultColumnFamily()};
    for (const Column& c : columns_)
      if (c.owned) families.push_back(c.handle);
    for (rocksdb::ColumnFamilyHandle* cf : families) {
      const std::string context =
          "RocksDB store '" + name_ + "' column '" + cf->GetName() + "': dropping key groups";
      if (first > 0) {
        const rocksdb::Status s =
            db_->DeleteRange(writeOptions(), cf, keyGroupBound(0), keyGroupBound(first));
        if (!s.ok()) return toStatus(s, context);
      }
      if (last < kMaxKeyGroup) {
        rocksdb::Status s = db_->DeleteRange(writeOptions(), cf, keyGroupBound(last + 1),
                                             keyGroupBound(kMaxKeyGroup));
        if (!s.ok()) return toStatus(s, context);
        // Key group 0xffff has no upper bound key: delete its entries one by one.
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
        for (it->Seek(keyGroupBound(kMaxKeyGroup)); it->Valid(); it->Next()) {
          s = db_->Delete(writeOptions(), cf, it->key());
          if (!s.ok()) return toStatus(s, context);
        }
        if (!it->status().ok()) return toStatus(it->status(), context);
      }
    }
    return Status::ok();
  });
}

Status RocksDbKvStore::copyKeyGroupsFrom(
    rocksdb::DB* source, const std::vector<rocksdb::ColumnFamilyHandle*>& source_families,
    int first, int last) noexcept {
  return guarded("RocksDB store restore", [&] {
    const std::string lower = keyGroupBound(first);
    const std::string upper = keyGroupBound(last + 1);
    for (rocksdb::ColumnFamilyHandle* from : source_families) {
      const std::string& name = from->GetName();
      int column = -1;
      if (Status s = openColumn(name, column); !s.isOk()) return s;
      rocksdb::ColumnFamilyHandle* to = columns_[column].handle;
      rocksdb::ReadOptions ro;
      const rocksdb::Slice lower_slice(lower);
      const rocksdb::Slice upper_slice(upper);
      ro.iterate_lower_bound = &lower_slice;
      if (last < kMaxKeyGroup) ro.iterate_upper_bound = &upper_slice;
      ro.fill_cache = false;
      std::unique_ptr<rocksdb::Iterator> it(source->NewIterator(ro, from));
      rocksdb::WriteBatch batch;
      const std::string context =
          "RocksDB store '" + name_ + "' column '" + name + "': copying restored key groups";
      for (it->Seek(lower_slice); it->Valid(); it->Next()) {
        rocksdb::Status s = batch.Put(to, it->key(), it->value());
        if (s.ok() && batch.GetDataSize() >= kMiB) {
          s = db_->Write(writeOptions(), &batch);
          batch.Clear();
        }
        if (!s.ok()) return toStatus(s, context);
      }
      if (!it->status().ok()) return toStatus(it->status(), context);
      if (batch.Count() > 0) {
        const rocksdb::Status s = db_->Write(writeOptions(), &batch);
        if (!s.ok()) return toStatus(s, context);
      }
    }
    return Status::ok();
  });
}

Result<std::unique_ptr<RocksDbKvStore>> RocksDbResources::openStoreFrom(
    const std::string& name, const fs::path& base,
    const std::vector<thrift::KeyedStateHandle>& handles, int key_group_start, int key_group_end) {
  if (key_group_start < 0 || key_group_end > kMaxKeyGroup || key_group_start > key_group_end) {
    return Status::invalidArgument("RocksDB store '" + name + "': invalid key group range [" +
                                   std::to_string(key_group_start) + ", " +
                                   std::to_string(key_group_end) + "]");
  }
  std::vector<const thrift::KeyedStateHandle*> overlapping;
  for (const thrift::KeyedStateHandle& h : handles) {
    if (overlap(h, key_group_start, key_group_end) > 0) overlapping.push_back(&h);
  }
  if (overlapping.empty()) return openStore(name);
  // The handle sharing most key groups becomes the store; the others are copied in.
  std::stable_sort(overlapping.begin(), overlapping.end(), [&](const auto* a, const auto* b) {
    return overlap(*a, key_group_start, key_group_end) >
           overlap(*b, key_group_start, key_group_end);
  });
  const std::string context = "RocksDB store '" + name + "': restore";
  auto relative = storeDirName(name);
  if (!relative.isOk()) return relative.status();
  const std::string path = shared_->working_dir + "/" + *relative;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->open_dirs.count(*relative) != 0) {
      return Status::invalidArgument("RocksDB store '" + name + "' is already open");
    }
    std::error_code ec;
    fs::remove_all(path, ec);
    fs::create_directories(path, ec);
    if (ec) {
      return Status::ioError(context + ": cannot create directory '" + path + "': " + ec.message());
    }
    shared_->open_dirs.insert(*relative);
  }
  std::unique_ptr<RocksDbKvStore> store(new RocksDbKvStore(shared_, name, *relative, path));
  const thrift::KeyedStateHandle& main = *overlapping.front();
  if (Status s = materialize(base, main, path); !s.isOk()) {
    return s.withContext(context);
  }
  if (Status s = store->open(/*existing=*/true); !s.isOk()) return s;
  if (main.keyGroupStart < key_group_start || main.keyGroupEnd > key_group_end) {
    if (Status s = store->dropKeyGroupsOutside(key_group_start, key_group_end); !s.isOk()) {
      return s;
    }
  }
  for (std::size_t i = 1; i < overlapping.size(); ++i) {
    const thrift::KeyedStateHandle& h = *overlapping[i];
    std::string tmpl = shared_->working_dir + "/#restore-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return Status::ioError(context + ": cannot create a temporary directory in '" +
                             shared_->working_dir + "': " + std::strerror(errno));
    }
    struct RemoveDir {
      std::string dir;
      ~RemoveDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    } remove_dir{tmpl};
    if (Status s = materialize(base, h, tmpl); !s.isOk()) {
      return s.withContext(context);
    }
    Status copied = guarded("RocksDB store restore", [&] {
      std::vector<std::string> names;
      rocksdb::Status rs = rocksdb::DB::ListColumnFamilies(shared_->db_options, tmpl, &names);
      if (!rs.ok()) return toStatus(rs, context + ": reading '" + tmpl + "'");
      std::vector<rocksdb::ColumnFamilyDescriptor> families;
      for (const std::string& n : names)
        families.emplace_back(n, rocksdb::ColumnFamilyOptions(shared_->db_options));
      std::vector<rocksdb::ColumnFamilyHandle*> family_handles;
      rocksdb::DB* raw = nullptr;
      rs = rocksdb::DB::OpenForReadOnly(shared_->db_options, tmpl, families, &family_handles, &raw);
      if (!rs.ok()) return toStatus(rs, context + ": opening '" + tmpl + "'");
      std::unique_ptr<rocksdb::DB> source(raw);
      std::vector<rocksdb::ColumnFamilyHandle*> used;
      for (std::size_t f = 0; f < names.size(); ++f) {
        // The default family only if it holds something (a new store never registers it).
        if (names[f] == rocksdb::kDefaultColumnFamilyName) {
          std::unique_ptr<rocksdb::Iterator> it(
              source->NewIterator(rocksdb::ReadOptions(), family_handles[f]));
          it->SeekToFirst();
          if (!it->Valid()) continue;
        }
        used.push_back(family_handles[f]);
      }
      Status s =
          store->copyKeyGroupsFrom(source.get(), used, std::max(key_group_start, h.keyGroupStart),
                                   std::min(key_group_end, h.keyGroupEnd));
      for (rocksdb::ColumnFamilyHandle* fh : family_handles)
        source->DestroyColumnFamilyHandle(fh).PermitUncheckedError();
      source->Close().PermitUncheckedError();
      return s;
    });
    if (!copied.isOk()) return copied;
  }
  return store;
}

}  // namespace weir::engine
