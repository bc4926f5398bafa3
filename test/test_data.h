// Test inputs shared by several tests: random bytes and an independent word tokenizer.
#pragma once

#include <cctype>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace weir::testing {

// `n` pseudo-random bytes, the same for the same seed.
inline std::string randomBytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

// Maximal runs of ASCII letters and digits, lower-cased: what the word-count example should find,
// computed without its code.
inline std::vector<std::string> tokenize(const std::string& text) {
  std::vector<std::string> words;
  std::string w;
  for (char c : text + "\n") {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      words.push_back(w);
      w.clear();
    }
  }
  return words;
}

}  // namespace weir::testing
