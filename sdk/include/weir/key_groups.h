// Keys, key groups and their assignment to parallel subtasks.
//
// A key is hashed (XXH3, identical on every host and in every process) into one of `maxParallelism`
// key groups; key groups are the unit of state ownership and of rescaling. A contiguous range of
// key groups is owned by each of the `parallelism` subtasks of a keyed operator:
//   keyGroup(key)            = xxh3(key) mod maxParallelism
//   subtaskFor(keyGroup)     = keyGroup * parallelism / maxParallelism
//   rangeFor(subtask)        = [ceil(subtask * maxP / p), ceil((subtask + 1) * maxP / p) - 1]
// The two last formulas agree: every key group in rangeFor(i) maps to subtask i.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "weir/serde.h"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace weir {

inline constexpr int kDefaultMaxParallelism = 128;
// Upper bound on max parallelism (key groups are addressed with 15 bits, as in Flink).
inline constexpr int kUpperBoundMaxParallelism = 1 << 15;

struct KeyGroupRange {
  int start = 0;  // inclusive
  int end = -1;   // inclusive; empty when end < start
  int size() const { return end >= start ? end - start + 1 : 0; }
  bool contains(int kg) const { return kg >= start && kg <= end; }
  bool operator==(const KeyGroupRange&) const = default;
};

inline int keyGroupForHash(std::uint64_t hash, int max_parallelism) {
  const auto mp = static_cast<std::uint64_t>(max_parallelism);
  if ((mp & (mp - 1)) == 0) return static_cast<int>(hash & (mp - 1));  // same result, no division
  return static_cast<int>(hash % mp);
}

inline int subtaskForKeyGroup(int key_group, int parallelism, int max_parallelism) {
  return static_cast<int>(static_cast<std::int64_t>(key_group) * parallelism / max_parallelism);
}

inline KeyGroupRange keyGroupRangeForSubtask(int subtask, int parallelism, int max_parallelism) {
  const std::int64_t mp = max_parallelism;
  const std::int64_t p = parallelism;
  const auto start = static_cast<int>((subtask * mp + p - 1) / p);
  const auto end = static_cast<int>(((subtask + 1) * mp - 1) / p);
  return {start, end};
}

namespace key_detail {

template <class K>
concept StringLike = std::is_convertible_v<const K&, std::string_view>;

}  // namespace key_detail

// Hashes keys deterministically. Integral, enum and string keys hash their value directly; other
// keys hash their Serde encoding (so a struct key needs WEIR_SERDE_FIELDS or a Serde
// specialisation, never raw padding bytes). The object keeps a scratch buffer so hashing never
// allocates after warm-up; it is not thread-safe: use one per task.
template <class K>
class KeyHasher {
 public:
  std::uint64_t operator()(const K& key) {
    if constexpr (std::is_integral_v<K> || std::is_enum_v<K>) {
      return XXH3_64bits(&key, sizeof(K));
    } else if constexpr (std::is_floating_point_v<K>) {
      K normalized = key == K(0) ? K(0) : key;  // -0.0 and 0.0 are one key
      return XXH3_64bits(&normalized, sizeof(K));
    } else if constexpr (key_detail::StringLike<K>) {
      const std::string_view s = key;
      return XXH3_64bits(s.data(), s.size());
    } else {
      static_assert(!(std::is_trivially_copyable_v<K> && !serde_detail::HasFields<K> &&
                      !std::has_unique_object_representations_v<K> &&
                      !serde_detail::IsStdContainer<K>::value),
                    "this key type may contain padding bytes; declare its fields with "
                    "WEIR_SERDE_FIELDS(...) so that equal keys hash equally");
      const std::size_t n = Serde<K>::size(key);
      if (scratch_.size() < n) scratch_.resize(n);
      Serde<K>::write(key, scratch_.data());
      return XXH3_64bits(scratch_.data(), n);
    }
  }

 private:
  std::vector<std::uint8_t> scratch_;
};

template <class K>
int keyGroupOf(const K& key, int max_parallelism) {
  KeyHasher<K> h;
  return keyGroupForHash(h(key), max_parallelism);
}

}  // namespace weir
