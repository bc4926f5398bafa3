// Drives one SDK operator instance on the test's thread, as a task would: records with timestamps,
// watermarks, watermark statuses and a manual processing-time clock; collects what it emits on its
// main output and side outputs. Keyed state lives on the heap or, with HarnessOptions::backend =
// kRocksDb, in real RocksDB stores (the engine's) in a temporary directory removed afterwards.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "state/rocksdb_kv_store.h"
#include "weir/weir.h"

namespace weir::test {

// What a consumer saw, in order: records (with timestamps) and watermarks.
template <class T>
class Recorder final : public BatchConsumer<T> {
 public:
  void consume(const RecordBatch<T>& batch) override {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      records.push_back(batch[i]);
      timestamps.push_back(batch.timestamp(i));
    }
  }
  void consumeWatermark(std::int64_t w) override { watermarks.push_back(w); }
  void consumeWatermarkStatus(bool idle) override { statuses.push_back(idle); }
  void clear() {
    records.clear();
    timestamps.clear();
    watermarks.clear();
    statuses.clear();
  }

  std::vector<T> records;
  std::vector<std::int64_t> timestamps;
  std::vector<std::int64_t> watermarks;
  std::vector<bool> statuses;
};

// A KvStore that forwards to another and counts the calls; with `fail` set every call fails (as a
// broken disk would).
class CountingKvStore final : public KvStore {
 public:
  explicit CountingKvStore(std::unique_ptr<KvStore> inner) : inner_(std::move(inner)) {}
  Status openColumn(const std::string& name, int& column) noexcept override {
    if (fail) return injected("openColumn");
    return inner_->openColumn(name, column);
  }
  Status get(int column, KvSlice key, std::string& value, bool& found) noexcept override {
    ++gets;
    if (fail) return injected("get");
    return inner_->get(column, key, value, found);
  }
  Status put(int column, KvSlice key, KvSlice value) noexcept override {
    ++puts;
    if (fail) return injected("put");
    return inner_->put(column, key, value);
  }
  Status append(int column, KvSlice key, KvSlice value) noexcept override {
    ++appends;
    if (fail) return injected("append");
    return inner_->append(column, key, value);
  }
  Status remove(int column, KvSlice key) noexcept override {
    ++removes;
    if (fail) return injected("remove");
    return inner_->remove(column, key);
  }
  Status scan(int column, KvSlice begin, KvSlice end,
              std::unique_ptr<KvIterator>& out) noexcept override {
    ++scans;
    if (fail) return injected("scan");
    return inner_->scan(column, begin, end, out);
  }
  void resetCounts() { gets = puts = appends = removes = scans = 0; }
  KvStore& inner() { return *inner_; }

  bool fail = false;
  int gets = 0;
  int puts = 0;
  int appends = 0;
  int removes = 0;
  int scans = 0;

 private:
  static Status injected(const char* op) {
    return Status::ioError(std::string("injected I/O error in ") + op);
  }
  std::unique_ptr<KvStore> inner_;
};

// RocksDB resources in a fresh temporary directory, removed (with every store) when destroyed.
class TempRocksDb {
 public:
  TempRocksDb() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "weir-test-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    engine::RocksDbOptions options;
    options.local_dir = dir_;
    options.block_cache_size = 8u << 20;
    options.write_buffer_size = 8u << 20;
    auto r = engine::RocksDbResources::create(options);
    REQUIRE_MESSAGE(r.isOk(), r.status().message());
    resources_ = std::move(*r);
  }
  ~TempRocksDb() {
    resources_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempRocksDb(const TempRocksDb&) = delete;
  TempRocksDb& operator=(const TempRocksDb&) = delete;

  std::unique_ptr<CountingKvStore> open(const std::string& name) {
    auto s = resources_->openStore(name);
    REQUIRE_MESSAGE(s.isOk(), s.status().message());
    return std::make_unique<CountingKvStore>(std::move(*s));
  }
  engine::RocksDbResources& resources() { return *resources_; }

 private:
  std::string dir_;
  std::unique_ptr<engine::RocksDbResources> resources_;
};

// A task environment with a manual clock and no network outputs; with enableRocksDb(), it opens
// RocksDB stores (one per vertex id) as a task does.
class ManualEnvironment final : public TaskEnvironment {
 public:
  const JobArgs& args() const noexcept override { return args_; }
  OutputGate& outputGate(std::size_t) noexcept override { std::abort(); }
  std::int64_t currentProcessingTime() const noexcept override { return now; }
  Status openKvStore(int vertex_id, KvStore*& out) noexcept override {
    out = nullptr;
    if (!rocksdb_) return Status::invalidArgument("no KV store in this harness");
    auto& store = stores_[vertex_id];
    if (!store) store = rocksdb_->open("test job/op_" + std::to_string(vertex_id));
    out = store.get();
    return Status::ok();
  }
  void enableRocksDb() {
    if (!rocksdb_) rocksdb_ = std::make_unique<TempRocksDb>();
  }
  // The store of `vertex_id`, once opened (null before).
  CountingKvStore* store(int vertex_id) {
    auto it = stores_.find(vertex_id);
    return it == stores_.end() ? nullptr : it->second.get();
  }
  ~ManualEnvironment() override {
    stores_.clear();  // before their resources
  }

  std::int64_t now = 0;

 private:
  JobArgs args_;
  std::unique_ptr<TempRocksDb> rocksdb_;
  std::map<int, std::unique_ptr<CountingKvStore>> stores_;
};

inline constexpr int kHarnessVertex = 7;

struct HarnessOptions {
  int subtask = 0;
  int parallelism = 1;
  int max_parallelism = 128;
  StateBackendKind backend = StateBackendKind::kHeap;
  bool timers_in_kv_store = true;  // with the RocksDB backend
  std::int64_t auto_watermark_interval_ms = 200;
  std::int64_t start_time = 1'000'000;  // processing time at open
};

template <class In, class Out>
class Harness {
 public:
  explicit Harness(std::unique_ptr<detail::OperatorInstance> op, HarnessOptions options = {})
      : op_(std::move(op)) {
    op_->name = "op under test";
    env_.now = options.start_time;
    ctx_ = RuntimeContext("test job", "op under test", options.subtask, options.parallelism,
                          options.max_parallelism, &env_.args());
    RuntimeContext::Internals internals;
    internals.env = &env_;
    internals.vertex_id = kHarnessVertex;
    internals.auto_watermark_interval_ms = options.auto_watermark_interval_ms;
    internals.state_backend = options.backend;
    internals.timers_in_kv_store =
        options.backend == StateBackendKind::kRocksDb && options.timers_in_kv_store;
    ctx_.setInternals(internals);
    ctx_.setOperatorStateStore(&operator_state_);
    if (options.backend == StateBackendKind::kRocksDb) env_.enableRocksDb();
    op_->addOutput(&main_);
  }
  ~Harness() {
    if (opened_) op_->close();
    op_.reset();  // before the environment and its stores
  }

  // Connects a recorder of side output `tag` (before open()).
  template <class X>
  Recorder<X>& sideOutput(const OutputTag<X>& tag) {
    auto rec = std::make_shared<Recorder<X>>();
    op_->addSideOutput(std::make_unique<detail::SideOutput<X>>(tag.id(), rec.get()));
    side_.push_back(rec);
    return *rec;
  }

  void open() {
    op_->finishWiring();
    op_->open(ctx_);
    opened_ = true;
  }

  void push(const In& value, std::int64_t ts = kNoTimestamp) {
    RecordBatch<In> batch;
    batch.nextSlot() = value;
    batch.commit(ts);
    input().consume(batch);
  }
  void pushAll(const std::vector<std::pair<In, std::int64_t>>& values) {
    RecordBatch<In> batch;
    for (const auto& [v, ts] : values) {
      if (batch.full()) {
        input().consume(batch);
        batch.clear();
      }
      batch.nextSlot() = v;
      batch.commit(ts);
    }
    input().consume(batch);
  }
  void watermark(std::int64_t w) { input().consumeWatermark(w); }
  void watermarkStatus(bool idle) { input().consumeWatermarkStatus(idle); }
  // Moves the clock to `t`, firing what is due on the way (in order, as a task would).
  void advanceProcessingTime(std::int64_t t) {
    for (;;) {
      const std::int64_t due = op_->nextProcessingTime();
      if (due > t || due == kNoDeadline) break;
      env_.now = std::max(env_.now, due);
      op_->onProcessingTime(env_.now);
    }
    env_.now = t;
  }
  void endInput() {
    watermark(kMaxWatermark);
    op_->endInput();
  }

  Recorder<Out>& output() { return main_; }
  detail::OperatorInstance& op() { return *op_; }
  ManualEnvironment& env() { return env_; }
  detail::OperatorStateStore& operatorState() { return operator_state_; }
  // The operator's RocksDB store (after open(), RocksDB backend only).
  CountingKvStore* store() { return env_.store(kHarnessVertex); }

 private:
  BatchConsumer<In>& input() { return *static_cast<BatchConsumer<In>*>(op_->inputPort()); }

  std::unique_ptr<detail::OperatorInstance> op_;
  ManualEnvironment env_;
  detail::OperatorStateStore operator_state_;
  RuntimeContext ctx_;
  Recorder<Out> main_;
  std::vector<std::shared_ptr<void>> side_;
  bool opened_ = false;
};

}  // namespace weir::test
