#include "state/state_settings.h"

#include <doctest/doctest.h>

#include "common/config.h"

using weir::StateBackendKind;
using weir::engine::Configuration;
using weir::engine::stateSettingsFromConfig;

namespace {

Configuration load(const std::vector<std::string>& overrides) {
  auto c = Configuration::load("", overrides);
  REQUIRE_MESSAGE(c.isOk(), c.status().message());
  return std::move(c).value();
}

std::string loadError(const std::vector<std::string>& overrides) {
  auto c = Configuration::load("", overrides);
  return c.isOk() ? std::string() : c.status().message();
}

}  // namespace

TEST_CASE("state config: defaults") {
  const Configuration config = load({});
  CHECK(config.getString("state.backend") == "heap");
  CHECK(config.getString("state.backend.rocksdb.timer-service.factory") == "rocksdb");
  const auto s = stateSettingsFromConfig(config);
  CHECK(s.backend == StateBackendKind::kHeap);
  CHECK_FALSE(s.timers_in_kv_store);  // timers are on the heap with the heap backend
  CHECK(s.auto_watermark_interval_ms == 200);
  CHECK(s.rocksdb.local_dir.empty());
  CHECK(s.rocksdb.block_cache_size == (64u << 20));
  CHECK(s.rocksdb.write_buffer_size == (64u << 20));
}

TEST_CASE("state config: the RocksDB backend and its options") {
  const auto s = stateSettingsFromConfig(
      load({"state.backend=rocksdb", "state.backend.rocksdb.localdir=/data/weir",
            "state.backend.rocksdb.memory.block-cache-size=256 mb",
            "state.backend.rocksdb.memory.write-buffer-size=32mb",
            "pipeline.auto-watermark-interval=0"}));
  CHECK(s.backend == StateBackendKind::kRocksDb);
  CHECK(s.timers_in_kv_store);
  CHECK(s.auto_watermark_interval_ms == 0);
  CHECK(s.rocksdb.local_dir == "/data/weir");
  CHECK(s.rocksdb.block_cache_size == (256u << 20));
  CHECK(s.rocksdb.write_buffer_size == (32u << 20));

  const auto heap_timers = stateSettingsFromConfig(
      load({"state.backend=rocksdb", "state.backend.rocksdb.timer-service.factory=heap"}));
  CHECK_FALSE(heap_timers.timers_in_kv_store);
  // Enumerated values are matched in any case and stored as documented.
  const Configuration mixed = load({"state.backend= RocksDB "});
  CHECK(mixed.getString("state.backend") == "rocksdb");
  CHECK(stateSettingsFromConfig(mixed).backend == StateBackendKind::kRocksDb);
}

TEST_CASE("state config: bad values are refused with what is allowed") {
  CHECK(loadError({"state.backend=leveldb"}) ==
        "configuration key 'state.backend' on the command line: expected one of heap, rocksdb, "
        "got 'leveldb'");
  CHECK(loadError({"state.backend="}) ==
        "configuration key 'state.backend' on the command line: expected one of heap, rocksdb, "
        "got ''");
  CHECK(loadError({"state.backend.rocksdb.timer-service.factory=disk"}) ==
        "configuration key 'state.backend.rocksdb.timer-service.factory' on the command line: "
        "expected one of rocksdb, heap, got 'disk'");
  CHECK(loadError({"state.backend.rocksdb.memory.block-cache-size=lots"})
            .find("expected a memory size") != std::string::npos);
  CHECK(loadError({"state.backend.rocksdb.memory.write-buffer-size=1 kb"})
            .find("in [1048576, ...] bytes") != std::string::npos);
  CHECK(loadError({"pipeline.auto-watermark-interval=soon"}).find("expected a duration") !=
        std::string::npos);
  // Setting a value after loading is checked the same way.
  Configuration config = load({});
  CHECK(config.set("state.backend", "memory").message() ==
        "configuration key 'state.backend' set programmatically: expected one of heap, rocksdb, "
        "got 'memory'");
  CHECK(config.getString("state.backend") == "heap");
}

TEST_CASE("state config: a job's arguments choose its backend and timers over the defaults") {
  using weir::engine::jobStateChoice;
  using Args = std::map<std::string, std::string>;
  const auto heap_default = [](const Args& args) {
    auto c = jobStateChoice(args, StateBackendKind::kHeap, true);
    REQUIRE_MESSAGE(c.isOk(), c.status().message());
    return *c;
  };
  CHECK(heap_default({}).backend == StateBackendKind::kHeap);
  CHECK_FALSE(heap_default({}).timers_in_kv_store);
  CHECK(heap_default({{"state.backend", "rocksdb"}}).backend == StateBackendKind::kRocksDb);
  CHECK(heap_default({{"state.backend", "rocksdb"}}).timers_in_kv_store);
  CHECK(heap_default({{"state.backend", " RocksDB "}}).backend == StateBackendKind::kRocksDb);
  CHECK_FALSE(heap_default({{"state.backend", "rocksdb"},
                            {"state.backend.rocksdb.timer-service.factory", "heap"}})
                  .timers_in_kv_store);
  // The timer service alone changes nothing for a heap job.
  CHECK_FALSE(heap_default({{"state.backend.rocksdb.timer-service.factory", "rocksdb"}})
                  .timers_in_kv_store);
  // A RocksDB TaskManager default, with heap timers configured, and a job going back to the heap.
  auto rocks = jobStateChoice({}, StateBackendKind::kRocksDb, false);
  CHECK(rocks->backend == StateBackendKind::kRocksDb);
  CHECK_FALSE(rocks->timers_in_kv_store);
  CHECK(jobStateChoice({{"state.backend", "heap"}}, StateBackendKind::kRocksDb, true)->backend ==
        StateBackendKind::kHeap);
  // Other arguments are the job's own business.
  CHECK(weir::engine::validateJobStateArgs({{"state.ttl", "anything"}, {"input", "x"}}).isOk());
  CHECK(weir::engine::validateJobStateArgs({{"state.backend", "memory"}}).message() ==
        "invalid job argument 'state.backend': expected one of heap, rocksdb, got 'memory'");
  CHECK(weir::engine::validateJobStateArgs({{"state.backend", ""}}).message() ==
        "invalid job argument 'state.backend': expected one of heap, rocksdb, got ''");
}
