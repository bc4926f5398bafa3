#include "state/state_settings.h"

#include <algorithm>
#include <cctype>
#include <vector>

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
  s.rocksdb_timers_in_kv_store =
      config.getString("state.backend.rocksdb.timer-service.factory") == "rocksdb";
  s.timers_in_kv_store = s.backend == StateBackendKind::kRocksDb && s.rocksdb_timers_in_kv_store;
  s.auto_watermark_interval_ms = config.getDuration("pipeline.auto-watermark-interval").count();
  s.rocksdb = rocksDbOptionsFromConfig(config);
  return s;
}

namespace {

// Lower case, without surrounding blanks (as configuration values are matched).
std::string normalized(const std::string& value) {
  const auto blank = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  auto begin = std::find_if_not(value.begin(), value.end(), blank);
  auto end =
      std::find_if_not(value.rbegin(), std::string::const_reverse_iterator(begin), blank).base();
  std::string out;
  for (auto it = begin; it < end; ++it)
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(*it))));
  return out;
}

// The allowed value `value` matches (normalised), or an error naming the argument.
Result<std::string> pick(const std::map<std::string, std::string>& job_args, const char* key,
                         const std::vector<std::string>& allowed) {
  auto it = job_args.find(key);
  if (it == job_args.end()) return std::string();
  const std::string v = normalized(it->second);
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
  std::string one_of;
  for (const std::string& a : allowed)
    one_of += (one_of.empty() ? "" : ", ") + a;
  return Status::invalidArgument("invalid job argument '" + std::string(key) +
                                 "': expected one of " + one_of + ", got '" + it->second + "'");
}

}  // namespace

Result<JobStateChoice> jobStateChoice(const std::map<std::string, std::string>& job_args,
                                      StateBackendKind default_backend,
                                      bool rocksdb_timers_in_kv_store) {
  auto backend = pick(job_args, kStateBackendArg, {"heap", "rocksdb"});
  if (!backend.isOk()) return backend.status();
  auto timers = pick(job_args, kTimerServiceArg, {"rocksdb", "heap"});
  if (!timers.isOk()) return timers.status();
  JobStateChoice c;
  c.backend = backend->empty()        ? default_backend
              : *backend == "rocksdb" ? StateBackendKind::kRocksDb
                                      : StateBackendKind::kHeap;
  const bool in_store = timers->empty() ? rocksdb_timers_in_kv_store : *timers == "rocksdb";
  c.timers_in_kv_store = c.backend == StateBackendKind::kRocksDb && in_store;
  return c;
}

Status validateJobStateArgs(const std::map<std::string, std::string>& job_args) {
  return jobStateChoice(job_args, StateBackendKind::kHeap, true).status();
}

}  // namespace weir::engine
