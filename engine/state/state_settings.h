// Keyed state and time settings of a TaskManager, read from its configuration: which backend keyed
// state uses, where RocksDB keeps timers, the periodic watermark interval, and the RocksDB
// resources' options. The task side copies them into each ChainSpec.
#pragma once

#include <cstdint>

#include "state/rocksdb_kv_store.h"
#include "weir/kv_store.h"

namespace weir::engine {

class Configuration;

struct StateSettings {
  StateBackendKind backend = StateBackendKind::kHeap;  // state.backend
  // Timers kept in the KV store (true only for the RocksDB backend with
  // state.backend.rocksdb.timer-service.factory = rocksdb); on the heap otherwise.
  bool timers_in_kv_store = false;
  std::int64_t auto_watermark_interval_ms = 200;  // pipeline.auto-watermark-interval
  RocksDbOptions rocksdb;                         // state.backend.rocksdb.*
};

// The `state.backend.rocksdb.*` options of `config`.
RocksDbOptions rocksDbOptionsFromConfig(const Configuration& config);
// Every setting above from `config` (whose values were validated when it was loaded).
StateSettings stateSettingsFromConfig(const Configuration& config);

}  // namespace weir::engine
