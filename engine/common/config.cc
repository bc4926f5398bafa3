#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace weir::engine {

namespace {

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Splits "123 unit" into the number and the (lower-case) unit.
bool splitNumber(const std::string& text, std::int64_t& number, std::string& unit) {
  const std::string t = trim(text);
  std::size_t i = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i])))
    ++i;
  if (i == 0) return false;
  auto [end, ec] = std::from_chars(t.data(), t.data() + i, number);
  if (ec != std::errc() || end != t.data() + i) return false;
  unit = lower(trim(t.substr(i)));
  return true;
}

const char* typeName(OptionType t) {
  switch (t) {
    case OptionType::kString:
      return "a string";
    case OptionType::kInt:
      return "an integer";
    case OptionType::kBool:
      return "true or false";
    case OptionType::kDuration:
      return "a duration (e.g. 500 ms, 10 s, 1 min)";
    case OptionType::kMemorySize:
      return "a memory size (e.g. 32 kb, 64 mb)";
    case OptionType::kDouble:
      return "a number";
  }
  return "a value";
}

void flatten(const YAML::Node& node, const std::string& prefix,
             std::vector<std::pair<std::string, YAML::Node>>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? key : prefix + "." + key, out);
    }
  } else {
    out.emplace_back(prefix, node);
  }
}

}  // namespace

Result<std::chrono::milliseconds> parseDuration(const std::string& text) {
  std::int64_t n = 0;
  std::string unit;
  if (!splitNumber(text, n, unit)) return Status::invalidArgument("not a duration");
  static const std::map<std::string, std::int64_t> kUnits = {
      {"", 1},          {"ms", 1},          {"milli", 1},
      {"millis", 1},    {"millisecond", 1}, {"milliseconds", 1},
      {"s", 1000},      {"sec", 1000},      {"secs", 1000},
      {"second", 1000}, {"seconds", 1000},  {"min", 60000},
      {"mins", 60000},  {"minute", 60000},  {"minutes", 60000},
      {"h", 3600000},   {"hour", 3600000},  {"hours", 3600000}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return Status::invalidArgument("unknown time unit '" + unit + "'");
  return std::chrono::milliseconds(n * it->second);
}

Result<std::uint64_t> parseMemorySize(const std::string& text) {
  std::int64_t n = 0;
  std::string unit;
  if (!splitNumber(text, n, unit)) return Status::invalidArgument("not a memory size");
  static const std::map<std::string, std::uint64_t> kUnits = {
      {"", 1},           {"b", 1},           {"bytes", 1},
      {"k", 1ull << 10}, {"kb", 1ull << 10}, {"kib", 1ull << 10},
      {"m", 1ull << 20}, {"mb", 1ull << 20}, {"mib", 1ull << 20},
      {"g", 1ull << 30}, {"gb", 1ull << 30}, {"gib", 1ull << 30}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return Status::invalidArgument("unknown memory unit '" + unit + "'");
  return static_cast<std::uint64_t>(n) * it->second;
}

const std::vector<OptionSpec>& allOptions() {
  using T = OptionType;
  static const std::vector<OptionSpec> kOptions = {
      {"jobmanager.rpc.address", T::kString, "127.0.0.1",
       "host of the JobManager (TaskManagers and the CLI connect here)"},
      {"jobmanager.rpc.port", T::kInt, "6123",
       "port of the JobManager's control service for TaskManagers (0: any free port)", 0, 65535},
      {"jobmanager.admin.port", T::kInt, "6124",
       "port of the JobManager's admin service for the weir CLI (0: any free port)", 0, 65535},
      {"jobmanager.bind-host", T::kString, "127.0.0.1", "address the JobManager listens on"},
      {"taskmanager.host", T::kString, "127.0.0.1",
       "address this TaskManager listens on and advertises"},
      {"taskmanager.rpc.port", T::kInt, "0",
       "port of the TaskManager's control service (0: any free port)", 0, 65535},
      {"taskmanager.numberOfTaskSlots", T::kInt, "1", "task slots this TaskManager offers", 1,
       1024},
      {"taskmanager.registration.retry-interval", T::kDuration, "500 ms",
       "pause between attempts to register with the JobManager", 1, 3600000},
      {"heartbeat.interval", T::kDuration, "1 s", "time between heartbeats", 1, 3600000},
      {"heartbeat.timeout", T::kDuration, "10 s",
       "silence after which a TaskManager or the JobManager is considered lost", 1, 86400000},
      {"rpc.timeout", T::kDuration, "10 s", "timeout of one control call", 1, 3600000},
      {"taskmanager.data.port", T::kInt, "0",
       "port of the TaskManager's data plane for other TaskManagers (0: any free port)", 0, 65535},
      {"taskmanager.memory.segment-size", T::kMemorySize, "32 kb", "size of one network buffer",
       4096, 64 << 20},
      {"taskmanager.memory.network.max", T::kMemorySize, "512 mb",
       "network memory of a TaskManager: every network buffer of its tasks comes out of it",
       1 << 20, INT64_MAX},
      {"taskmanager.network.buffers-per-channel", T::kInt, "4",
       "buffers (and so credits) per output and input channel", 1, 1024},
      {"taskmanager.network.extra-buffers-per-output", T::kInt, "8",
       "floating buffers per task output, shared by its channels", 0, 65536},
      {"taskmanager.network.overdraft-buffers-per-output", T::kInt, "5",
       "buffers a task output may take beyond its bound for a record already under way, rather "
       "than block in it (part of the network memory a job reserves)",
       0, 1024},
      {"taskmanager.plugin-cache.dir", T::kString, "",
       "where fetched plugins are cached (empty: a folder under the system temp directory)"},
      {"execution.buffer-timeout", T::kDuration, "10 ms",
       "longest time a partly filled network buffer waits before it is sent", 0, 3600000},
      {"jobmanager.blob.dir", T::kString, "",
       "where the JobManager stores uploaded plugins (empty: a folder under the system temp "
       "directory)"},
      {"slot.request.timeout", T::kDuration, "5 min",
       "how long a submitted job waits for enough free slots before it fails", 1, 86400000},
      {"pipeline.auto-watermark-interval", T::kDuration, "200 ms",
       "how often sources emit periodic watermarks (0: no periodic watermarks)", 0, 3600000},
      {.key = "state.backend",
       .type = T::kString,
       .default_value = "heap",
       .description = "where keyed state lives: heap (typed objects in memory) or rocksdb (bytes "
                      "in one RocksDB instance per subtask and operator, on local disk); the "
                      "default of jobs without a state.backend argument",
       .allowed = {"heap", "rocksdb"}},
      {"state.backend.rocksdb.localdir", T::kString, "",
       "parent of the TaskManager's RocksDB working directory (empty: the system temp "
       "directory)"},
      {"state.backend.rocksdb.memory.block-cache-size", T::kMemorySize, "64 mb",
       "block cache shared by all RocksDB stores of a TaskManager", 1 << 20, INT64_MAX},
      {"state.backend.rocksdb.memory.write-buffer-size", T::kMemorySize, "64 mb",
       "memtable budget shared by all RocksDB stores of a TaskManager", 1 << 20, INT64_MAX},
      {.key = "state.backend.rocksdb.timer-service.factory",
       .type = T::kString,
       .default_value = "rocksdb",
       .description = "where the RocksDB backend keeps timers: rocksdb (in the store) or heap",
       .allowed = {"rocksdb", "heap"}},
      {"state.backend.incremental", T::kBool, "true",
       "whether RocksDB checkpoints upload only the files new since the last one (a job may "
       "choose with --arg)"},
      // Checkpoints, savepoints and restarts: cluster defaults a job may override with
      // `--arg key=value` (see jobmanager/job_settings.h).
      {"state.checkpoints.dir", T::kString, "",
       "where completed checkpoints are written (empty: none configured)"},
      {"state.checkpoints.num-retained", T::kInt, "1", "how many completed checkpoints are kept", 1,
       INT32_MAX},
      {"state.savepoints.dir", T::kString, "",
       "default target directory of savepoints (empty: the command must name one)"},
      {"execution.checkpointing.interval", T::kDuration, "0 ms",
       "time between the starts of periodic checkpoints (0: no periodic checkpoints)", 0,
       INT64_MAX},
      {"execution.checkpointing.timeout", T::kDuration, "10 min",
       "how long a checkpoint may take before it is abandoned", 1, INT64_MAX},
      {"execution.checkpointing.min-pause", T::kDuration, "0 ms",
       "least time between the end of one checkpoint and the start of the next", 0, INT64_MAX},
      {"execution.checkpointing.tolerable-failed-checkpoints", T::kInt, "0",
       "consecutive failed checkpoints tolerated before the job fails", 0, INT32_MAX},
      {"execution.checkpointing.max-concurrent-checkpoints", T::kInt, "1",
       "checkpoints that may be in progress at once", 1, INT32_MAX},
      {"execution.checkpointing.unaligned", T::kBool, "false",
       "whether barriers overtake buffered records (unaligned checkpoints)"},
      {"execution.checkpointing.aligned-checkpoint-timeout", T::kDuration, "0 ms",
       "with unaligned checkpoints: how long a checkpoint stays aligned before it switches to "
       "unaligned (0: unaligned from the start)",
       0, INT64_MAX},
      {.key = "restart-strategy.type",
       .type = T::kString,
       .default_value = "",
       .description = "what happens when a job fails: none (it fails), fixed-delay, "
                      "exponential-delay or failure-rate; unset: exponential-delay for a job "
                      "that takes checkpoints, none otherwise",
       .allowed = {"none", "fixed-delay", "exponential-delay", "failure-rate"}},
      {"restart-strategy.fixed-delay.attempts", T::kInt, "3",
       "fixed-delay: restarts before the job fails", 0, INT32_MAX},
      {"restart-strategy.fixed-delay.delay", T::kDuration, "1 s",
       "fixed-delay: pause before each restart", 0, INT64_MAX},
      {"restart-strategy.exponential-delay.initial-backoff", T::kDuration, "1 s",
       "exponential-delay: pause before the first restart", 0, INT64_MAX},
      {"restart-strategy.exponential-delay.max-backoff", T::kDuration, "1 min",
       "exponential-delay: longest pause before a restart", 0, INT64_MAX},
      {"restart-strategy.exponential-delay.backoff-multiplier", T::kDouble, "2.0",
       "exponential-delay: factor the pause grows by on each failure", 1, 1000},
      {"restart-strategy.exponential-delay.reset-backoff-threshold", T::kDuration, "1 h",
       "exponential-delay: a run this long since the last restart resets the pause", 1, INT64_MAX},
      {"restart-strategy.failure-rate.max-failures-per-interval", T::kInt, "1",
       "failure-rate: failures within one interval that still restart the job", 1, INT32_MAX},
      {"restart-strategy.failure-rate.failure-rate-interval", T::kDuration, "1 min",
       "failure-rate: the interval failures are counted over", 1, INT64_MAX},
      {"restart-strategy.failure-rate.delay", T::kDuration, "1 s",
       "failure-rate: pause before each restart", 0, INT64_MAX},
  };
  return kOptions;
}

Result<Configuration> Configuration::load(const std::string& yaml_path,
                                          const std::vector<std::string>& overrides) {
  return load(yaml_path, overrides, allOptions());
}

Result<Configuration> Configuration::load(const std::string& yaml_path,
                                          const std::vector<std::string>& overrides,
                                          const std::vector<OptionSpec>& specs) {
  Configuration c;
  c.specs_ = specs;
  if (!yaml_path.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(yaml_path, ec)) {
      return Status::notFound("configuration file '" + yaml_path + "' does not exist");
    }
    YAML::Node root;
    try {
      root = YAML::LoadFile(yaml_path);
    } catch (const YAML::Exception& e) {
      return Status::invalidArgument("configuration file '" + yaml_path +
                                     "' is not valid YAML: " + e.what());
    }
    if (!root.IsNull() && !root.IsMap()) {
      return Status::invalidArgument("configuration file '" + yaml_path +
                                     "' must hold a map of options");
    }
    std::vector<std::pair<std::string, YAML::Node>> entries;
    if (root.IsMap()) flatten(root, "", entries);
    const std::string origin = "in '" + yaml_path + "'";
    for (const auto& [key, node] : entries) {
      if (!node.IsScalar()) {
        return Status::invalidArgument("configuration key '" + key + "' " + origin +
                                       ": expected a single value");
      }
      Status s = c.setFrom(key, node.as<std::string>(), origin);
      if (!s.isOk()) return s;
    }
  }
  for (const std::string& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::invalidArgument("configuration override expects key=value, got '" + o + "'");
    }
    Status s = c.setFrom(trim(o.substr(0, eq)), trim(o.substr(eq + 1)), "on the command line");
    if (!s.isOk()) return s;
  }
  return c;
}

Status Configuration::set(const std::string& key, const std::string& value) {
  return setFrom(key, value, "set programmatically");
}

Result<std::string> checkOptionValue(const OptionSpec& spec, const std::string& value) {
  auto bad = [&](const std::string& why) {
    return Status::invalidArgument("expected " + std::string(typeName(spec.type)) + why +
                                   ", got '" + value + "'");
  };
  auto range = [&](std::int64_t v, const char* unit) -> Status {
    if (v < spec.min || v > spec.max) {
      std::string why = " in [" + std::to_string(spec.min) + ", " +
                        (spec.max == INT64_MAX ? std::string("...") : std::to_string(spec.max)) +
                        "]" + unit;
      return bad(why);
    }
    return Status::ok();
  };
  switch (spec.type) {
    case OptionType::kString:
      if (!spec.allowed.empty()) {
        const std::string v = lower(trim(value));
        if (v.empty() && spec.default_value.empty()) return v;  // unset, as by default
        auto match = std::find_if(spec.allowed.begin(), spec.allowed.end(),
                                  [&](const std::string& a) { return lower(a) == v; });
        if (match == spec.allowed.end()) {
          std::string one_of;
          for (const std::string& a : spec.allowed)
            one_of += (one_of.empty() ? "" : ", ") + a;
          return Status::invalidArgument("expected one of " + one_of + ", got '" + value + "'");
        }
        return *match;
      }
      break;
    case OptionType::kInt: {
      std::int64_t v = 0;
      const std::string t = trim(value);
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || ec != std::errc() || end != t.data() + t.size()) return bad("");
      Status s = range(v, "");
      if (!s.isOk()) return s;
      break;
    }
    case OptionType::kBool: {
      const std::string v = lower(trim(value));
      if (v != "true" && v != "false") return bad("");
      break;
    }
    case OptionType::kDuration: {
      auto d = parseDuration(value);
      if (!d.isOk()) return bad("");
      Status s = range(d->count(), " ms");
      if (!s.isOk()) return s;
      break;
    }
    case OptionType::kMemorySize: {
      auto m = parseMemorySize(value);
      if (!m.isOk() || *m > static_cast<std::uint64_t>(INT64_MAX)) return bad("");
      Status s = range(static_cast<std::int64_t>(*m), " bytes");
      if (!s.isOk()) return s;
      break;
    }
    case OptionType::kDouble: {
      double v = 0;
      const std::string t = trim(value);
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v)) {
        return bad("");
      }
      if (v < static_cast<double>(spec.min) || v > static_cast<double>(spec.max)) {
        return bad(" in [" + std::to_string(spec.min) + ", " +
                   (spec.max == INT64_MAX ? std::string("...") : std::to_string(spec.max)) + "]");
      }
      break;
    }
  }
  return trim(value);
}

const OptionSpec* findOption(const std::string& key) {
  const auto& options = allOptions();
  auto it = std::find_if(options.begin(), options.end(),
                         [&](const OptionSpec& s) { return s.key == key; });
  return it == options.end() ? nullptr : &*it;
}

Status Configuration::setFrom(const std::string& key, const std::string& value,
                              const std::string& origin) {
  auto it =
      std::find_if(specs_.begin(), specs_.end(), [&](const OptionSpec& s) { return s.key == key; });
  if (it == specs_.end()) {
    return Status::invalidArgument("unknown configuration key '" + key + "' " + origin);
  }
  auto checked = checkOptionValue(*it, value);
  if (!checked.isOk()) {
    return Status::invalidArgument("configuration key '" + key + "' " + origin + ": " +
                                   checked.status().message());
  }
  values_[key] = *checked;
  return Status::ok();
}

const OptionSpec& Configuration::spec(const std::string& key) const {
  for (const auto& s : specs_) {
    if (s.key == key) return s;
  }
  throw std::out_of_range("unknown configuration key '" + key + "'");
}

std::string Configuration::getString(const std::string& key) const {
  const OptionSpec& s = spec(key);
  auto it = values_.find(key);
  return it == values_.end() ? s.default_value : it->second;
}

std::int64_t Configuration::getInt(const std::string& key) const {
  return std::stoll(getString(key));
}

bool Configuration::getBool(const std::string& key) const {
  return lower(getString(key)) == "true";
}

std::chrono::milliseconds Configuration::getDuration(const std::string& key) const {
  return parseDuration(getString(key)).value();
}

std::uint64_t Configuration::getMemorySize(const std::string& key) const {
  return parseMemorySize(getString(key)).value();
}

double Configuration::getDouble(const std::string& key) const {
  const std::string v = getString(key);
  double d = 0;
  std::from_chars(v.data(), v.data() + v.size(), d);
  return d;
}

std::map<std::string, std::string> Configuration::effective() const {
  std::map<std::string, std::string> out;
  for (const auto& s : specs_)
    out[s.key] = getString(s.key);
  return out;
}

}  // namespace weir::engine
