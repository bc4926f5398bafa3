#include "weir/key_groups.h"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

struct UserKey {
  std::string region;
  int shard = 0;
  bool operator==(const UserKey&) const = default;
  WEIR_SERDE_FIELDS(region, shard)
};

}  // namespace

TEST_CASE("key groups: ranges of all subtasks partition all key groups") {
  for (int max_p : {1, 2, 7, 128, 1000, 32768}) {
    for (int p : {1, 2, 3, 4, 5, 7, 16, 127, 128}) {
      if (p > max_p) continue;
      int next = 0;
      for (int s = 0; s < p; ++s) {
        const weir::KeyGroupRange r = weir::keyGroupRangeForSubtask(s, p, max_p);
        CHECK(r.start == next);
        CHECK(r.size() >= max_p / p);
        CHECK(r.size() <= max_p / p + 1);
        next = r.end + 1;
      }
      CHECK(next == max_p);
    }
  }
}

TEST_CASE("key groups: a key group maps to the subtask whose range contains it") {
  for (int max_p : {1, 10, 128, 4096}) {
    for (int p : {1, 3, 4, 10}) {
      if (p > max_p) continue;
      for (int kg = 0; kg < max_p; ++kg) {
        const int s = weir::subtaskForKeyGroup(kg, p, max_p);
        REQUIRE(s >= 0);
        REQUIRE(s < p);
        CHECK(weir::keyGroupRangeForSubtask(s, p, max_p).contains(kg));
      }
    }
  }
}

TEST_CASE("key groups: known boundaries") {
  // 128 key groups over 3 subtasks: 43 + 43 + 42.
  CHECK(weir::keyGroupRangeForSubtask(0, 3, 128) == weir::KeyGroupRange{0, 42});
  CHECK(weir::keyGroupRangeForSubtask(1, 3, 128) == weir::KeyGroupRange{43, 85});
  CHECK(weir::keyGroupRangeForSubtask(2, 3, 128) == weir::KeyGroupRange{86, 127});
  CHECK(weir::subtaskForKeyGroup(127, 3, 128) == 2);
  CHECK(weir::keyGroupRangeForSubtask(0, 1, 128) == weir::KeyGroupRange{0, 127});
  CHECK(weir::keyGroupRangeForSubtask(127, 128, 128) == weir::KeyGroupRange{127, 127});
}

TEST_CASE("key hashing is deterministic and independent of the process") {
  // Pinned values: a change here would move every key to another key group and break restored
  // state, so it must be deliberate.
  weir::KeyHasher<std::string> hs;
  weir::KeyHasher<std::int64_t> hi;
  CHECK(hs("") == XXH3_64bits("", 0));
  const std::int64_t forty_two = 42;
  CHECK(hi(42) == XXH3_64bits(&forty_two, sizeof forty_two));
  CHECK(weir::keyGroupOf(std::string("hello"), 128) == weir::keyGroupOf(std::string("hello"), 128));
  // std::string, const char* and string_view of the same text are the same key.
  weir::KeyHasher<std::string_view> hv;
  CHECK(hs("word") == hv("word"));
  // 0.0 and -0.0 compare equal, so they must hash equally.
  weir::KeyHasher<double> hd;
  CHECK(hd(0.0) == hd(-0.0));
  // Struct keys hash their fields' encoding.
  weir::KeyHasher<UserKey> hu;
  CHECK(hu(UserKey{"eu", 1}) == hu(UserKey{"eu", 1}));
  CHECK(hu(UserKey{"eu", 1}) != hu(UserKey{"eu", 2}));
  weir::KeyHasher<std::pair<std::string, int>> hp;
  CHECK(hp({"a", 1}) == hp({"a", 1}));
}

TEST_CASE("key hashing spreads keys evenly over key groups") {
  constexpr int kMaxP = 128;
  constexpr int kKeys = 128000;
  std::vector<int> counts(kMaxP, 0);
  weir::KeyHasher<std::string> h;
  for (int i = 0; i < kKeys; ++i) {
    ++counts[static_cast<std::size_t>(weir::keyGroupForHash(h("key-" + std::to_string(i)), kMaxP))];
  }
  // Expected 1000 per group; a good hash stays well within +-20%.
  for (int c : counts) {
    CHECK(c > 800);
    CHECK(c < 1200);
  }
  // Sequential integers too.
  std::vector<int> int_counts(kMaxP, 0);
  weir::KeyHasher<std::int64_t> hi;
  for (std::int64_t i = 0; i < kKeys; ++i) {
    ++int_counts[static_cast<std::size_t>(weir::keyGroupForHash(hi(i), kMaxP))];
  }
  for (int c : int_counts) {
    CHECK(c > 800);
    CHECK(c < 1200);
  }
}
