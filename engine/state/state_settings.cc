#include "state/state_settings.h"

#include "common/config.h"

namespace weir::engine {

RocksDbOptions rocksDbOptionsFromConfig(const Configuration& config) {
  RocksDbOptions o;
  o.local_dir = config.getString("state.backend.rocksdb.localdir");
  o.block_cache_size = config.getMemorySize("state.backend.rocksdb.memory.block-cache-size");
  o.write_buffer_size = config.getMemorySize("state.backend.rocksdb.memory.write-buffer-size");
  return o;
}

StateSettings stateSettingsFromConfig(const Configuration& config) {
  StateSettings s;
  s.backend = config.getString("state.backend") == "rocksdb" ? StateBackendKind::kRocksDb
                                                             : StateBackendKind::kHeap;
  s.timers_in_kv_store =
      s.backend == StateBackendKind::kRocksDb &&
      config.getString("state.backend.rocksdb.timer-service.factory") == "rocksdb";
  s.auto_watermark_interval_ms = config.getDuration("pipeline.auto-watermark-interval").count();
  s.rocksdb = rocksDbOptionsFromConfig(config);
  return s;
}

}  // namespace weir::engine
