// Identifiers and wall-clock time shared by the cluster processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

namespace weir::engine {

// Milliseconds since the Unix epoch (for timestamps shown to people).
inline std::int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// 16 * `words` random lowercase hex digits: a JobManager id (1 word), a job id (2, as Flink's).
inline std::string randomHexId(int words) {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  std::string out;
  for (int i = 0; i < words; ++i) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dist(rd)));
    out += buf;
  }
  return out;
}

}  // namespace weir::engine
