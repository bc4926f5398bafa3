// Keyed state and time settings of a TaskManager, read from its configuration: which backend keyed
// state uses, where RocksDB keeps timers, the periodic watermark interval, and the RocksDB
// resources' options. The task side copies them into each ChainSpec.
//
// A job may choose its own backend with the job argument `state.backend` (heap | rocksdb) and, for
// the RocksDB backend, where timers live with `state.backend.rocksdb.timer-service.factory`
// (rocksdb | heap): `weir submit --arg state.backend=rocksdb`. Job arguments override the
// TaskManager's configuration; the JobManager refuses a job whose values are not allowed.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "state/rocksdb_kv_store.h"
#include "weir/kv_store.h"
#include "weir/status.h"

namespace weir::engine {

class Configuration;

struct StateSettings {
  StateBackendKind backend = StateBackendKind::kHeap;  // state.backend
  // Timers kept in the KV store (true only for the RocksDB backend with
  // state.backend.rocksdb.timer-service.factory = rocksdb); on the heap otherwise.
  bool timers_in_kv_store = false;
  // state.backend.rocksdb.timer-service.factory = rocksdb, whatever the default backend (a job
  // choosing RocksDB gets its timers there).
  bool rocksdb_timers_in_kv_store = true;
  std::int64_t auto_watermark_interval_ms = 200;  // pipeline.auto-watermark-interval
  RocksDbOptions rocksdb;                         // state.backend.rocksdb.*
};

// The `state.backend.rocksdb.*` options of `config`.
RocksDbOptions rocksDbOptionsFromConfig(const Configuration& config);
// Every setting above from `config` (whose values were validated when it was loaded).
StateSettings stateSettingsFromConfig(const Configuration& config);

// Job arguments choosing the state backend and the RocksDB timer service.
inline constexpr const char* kStateBackendArg = "state.backend";
inline constexpr const char* kTimerServiceArg = "state.backend.rocksdb.timer-service.factory";

// Checks the job arguments above (values in any case, surrounding blanks ignored); the error
// names the argument, the allowed values and the value given.
Status validateJobStateArgs(const std::map<std::string, std::string>& job_args);

// Where one job keeps its keyed state and timers.
struct JobStateChoice {
  StateBackendKind backend = StateBackendKind::kHeap;
  bool timers_in_kv_store = false;  // only ever true with the RocksDB backend
};

// The job's arguments, or else the defaults (`default_backend`, and for a RocksDB job
// `rocksdb_timers_in_kv_store`). Fails like validateJobStateArgs.
Result<JobStateChoice> jobStateChoice(const std::map<std::string, std::string>& job_args,
                                      StateBackendKind default_backend,
                                      bool rocksdb_timers_in_kv_store);

}  // namespace weir::engine
