// Job arguments: the `--arg key=value` pairs given at submission, visible to the job builder and to
// every operator through its RuntimeContext.
#pragma once

#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace weir {

class JobArgs {
 public:
  JobArgs() = default;
  explicit JobArgs(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  bool has(std::string_view key) const { return values_.find(std::string(key)) != values_.end(); }

  std::optional<std::string> get(std::string_view key) const {
    auto it = values_.find(std::string(key));
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

  std::string get(std::string_view key, std::string_view fallback) const {
    auto v = get(key);
    return v ? *v : std::string(fallback);
  }

  // Throws std::invalid_argument (inside the plugin, where it fails the builder or the operator
  // with the message) when the value is present but not an integer.
  std::int64_t getInt(std::string_view key, std::int64_t fallback) const {
    auto v = get(key);
    if (!v) return fallback;
    std::int64_t out = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
    if (ec != std::errc() || end != v->data() + v->size()) {
      throw std::invalid_argument("job argument '" + std::string(key) + "' is not an integer: '" +
                                  *v + "'");
    }
    return out;
  }

  const std::map<std::string, std::string>& all() const { return values_; }
  void set(std::string key, std::string value) { values_[std::move(key)] = std::move(value); }
  bool operator==(const JobArgs&) const = default;

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace weir
