// The output of the exactly-once counting job (test/plugins/exactly_once_job.cc) as the cluster
// tests check it: the committed part files of its sink, against the lines it must commit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace weir::testing {

inline const std::string kExactlyOnceJob = WEIR_TEST_BAD_PLUGIN_DIR "/exactly_once_job.so";

// Every whole line of the committed part files, sorted (in-progress files are hidden:
// ".part-...").
inline std::vector<std::string> committedLines(const std::filesystem::path& dir) {
  std::vector<std::string> lines;
  if (!std::filesystem::exists(dir)) return lines;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("part-", 0) != 0) continue;
    std::ifstream in(entry.path());
    for (std::string l; std::getline(in, l);)
      lines.push_back(l);
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

// "k,c" for each key k and c = 1..(numbers below `count` with that key), sorted.
inline std::vector<std::string> expectedLines(std::int64_t count, std::int64_t keys) {
  std::vector<std::string> lines;
  for (std::int64_t k = 0; k < keys; ++k) {
    const std::int64_t n = count / keys + (k < count % keys ? 1 : 0);
    for (std::int64_t c = 1; c <= n; ++c)
      lines.push_back(std::to_string(k) + "," + std::to_string(c));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace weir::testing
