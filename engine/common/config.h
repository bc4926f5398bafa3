// Cluster configuration: a YAML file in the shape of Flink's config.yaml (nested maps or dotted
// keys, both flatten to dotted keys) plus command-line overrides (`-D key=value`), checked against
// one table of known options. An unknown key or a value of the wrong type is an error at start-up
// that names the key, the value, what was expected and where it came from.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "weir/status.h"

namespace weir::engine {

enum class OptionType { kString, kInt, kBool, kDuration, kMemorySize, kDouble };

struct OptionSpec {
  std::string key;
  OptionType type = OptionType::kString;
  std::string default_value;
  std::string description;
  std::int64_t min = 0;  // for ints, doubles, durations (ms) and memory sizes (bytes)
  std::int64_t max = INT64_MAX;
  // For strings: the values accepted (any case; stored as spelled here). Empty: any string.
  std::vector<std::string> allowed = {};
};

// Every option Weir's processes understand.
const std::vector<OptionSpec>& allOptions();

class Configuration {
 public:
  // Loads `yaml_path` (none when empty), then applies `overrides` ("key=value"). `specs` defaults
  // to allOptions().
  static Result<Configuration> load(const std::string& yaml_path,
                                    const std::vector<std::string>& overrides);
  static Result<Configuration> load(const std::string& yaml_path,
                                    const std::vector<std::string>& overrides,
                                    const std::vector<OptionSpec>& specs);

  // Typed getters for known keys (their values were validated at load). Unknown keys are a
  // programming error and throw std::out_of_range.
  std::string getString(const std::string& key) const;
  std::int64_t getInt(const std::string& key) const;
  bool getBool(const std::string& key) const;
  std::chrono::milliseconds getDuration(const std::string& key) const;
  std::uint64_t getMemorySize(const std::string& key) const;
  double getDouble(const std::string& key) const;

  // Overrides one value after loading (validated like the others).
  Status set(const std::string& key, const std::string& value);

  // Every option with its effective value, for logging at start-up.
  std::map<std::string, std::string> effective() const;

 private:
  const OptionSpec& spec(const std::string& key) const;
  Status setFrom(const std::string& key, const std::string& value, const std::string& origin);

  std::vector<OptionSpec> specs_;
  std::map<std::string, std::string> values_;  // only the ones set explicitly
};

// Checks `value` against `spec`: the value to store (an allowed string as spelled in the spec,
// others without surrounding blanks), or an error "expected <what>, got '<value>'".
Result<std::string> checkOptionValue(const OptionSpec& spec, const std::string& value);
// The spec of `key` among allOptions(), or null.
const OptionSpec* findOption(const std::string& key);

// Parsers shared with tests: "10 ms", "2s", "1 min", "500" (milliseconds); "32kb", "64 MB", "1g",
// "4096" (bytes). Nullopt-like failure is reported as a non-OK Status.
Result<std::chrono::milliseconds> parseDuration(const std::string& text);
Result<std::uint64_t> parseMemorySize(const std::string& text);

}  // namespace weir::engine
