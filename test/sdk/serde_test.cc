#include "weir/serde.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

struct Click {
  std::string user;
  std::int64_t ts = 0;
  std::vector<int> path;
  bool operator==(const Click&) const = default;
  WEIR_SERDE_FIELDS(user, ts, path)
};

struct Point {  // trivially copyable: copied byte for byte
  double x;
  double y;
  bool operator==(const Point&) const = default;
};

template <class T>
T roundTrip(const T& v) {
  const auto bytes = weir::serialize(v);
  CHECK(bytes.size() == weir::Serde<T>::size(v));
  T out{};
  REQUIRE(weir::deserialize(bytes, out));
  return out;
}

// Every strict prefix of a valid encoding must be refused, never read past its end.
template <class T>
void checkTruncationsRefused(const T& v) {
  const auto bytes = weir::serialize(v);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::vector<std::uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(n));
    T out{};
    CHECK_FALSE(weir::deserialize(prefix, out));
  }
}

}  // namespace

TEST_CASE("serde: arithmetic values round trip, including extremes") {
  CHECK(roundTrip<std::int64_t>(std::numeric_limits<std::int64_t>::min()) ==
        std::numeric_limits<std::int64_t>::min());
  CHECK(roundTrip<std::uint64_t>(std::numeric_limits<std::uint64_t>::max()) ==
        std::numeric_limits<std::uint64_t>::max());
  CHECK(roundTrip<std::int8_t>(-1) == -1);
  CHECK(roundTrip<bool>(true));
  CHECK(roundTrip<char>('\0') == '\0');
  CHECK(roundTrip<double>(-0.0) == 0.0);
  CHECK(std::signbit(roundTrip<double>(-0.0)));
  CHECK(std::isnan(roundTrip<double>(std::numeric_limits<double>::quiet_NaN())));
  CHECK(roundTrip<float>(std::numeric_limits<float>::infinity()) ==
        std::numeric_limits<float>::infinity());
  CHECK(weir::Serde<std::int32_t>::size(5) == 4);
}

TEST_CASE("serde: strings, including empty, embedded NULs and large") {
  CHECK(roundTrip(std::string()) == "");
  CHECK(weir::serialize(std::string()).size() == 1);
  const std::string with_nul("a\0b\0", 4);
  CHECK(roundTrip(with_nul) == with_nul);
  const std::string big(200000, 'x');
  CHECK(roundTrip(big) == big);
  // 127 and 128 bytes straddle the one-byte varint length boundary.
  CHECK(weir::serialize(std::string(127, 'a')).size() == 128);
  CHECK(weir::serialize(std::string(128, 'a')).size() == 130);
  CHECK(roundTrip(std::string(128, 'a')) == std::string(128, 'a'));
  checkTruncationsRefused(std::string("hello"));
}

TEST_CASE("serde: reading into a used value replaces it") {
  std::string out = "previous content that is longer";
  const auto bytes = weir::serialize(std::string("new"));
  REQUIRE(weir::deserialize(bytes, out));
  CHECK(out == "new");
  std::vector<int> v = {9, 9, 9, 9};
  REQUIRE(weir::deserialize(weir::serialize(std::vector<int>{1}), v));
  CHECK(v == std::vector<int>{1});
  std::optional<int> o = 5;
  REQUIRE(weir::deserialize(weir::serialize(std::optional<int>()), o));
  CHECK_FALSE(o.has_value());
}

TEST_CASE("serde: containers") {
  CHECK(roundTrip(std::vector<int>{}).empty());
  std::vector<std::int64_t> many(10000);
  for (std::size_t i = 0; i < many.size(); ++i)
    many[i] = static_cast<std::int64_t>(i * i);
  CHECK(roundTrip(many) == many);
  CHECK(roundTrip(std::vector<bool>{true, false, true}) == std::vector<bool>{true, false, true});
  const std::vector<std::string> words = {"", "a", std::string(300, 'z')};
  CHECK(roundTrip(words) == words);
  CHECK(roundTrip(std::optional<std::string>("x")) == std::optional<std::string>("x"));
  CHECK(roundTrip(std::optional<std::string>()) == std::nullopt);
  const std::pair<std::string, std::int64_t> wc("word", 42);
  CHECK(roundTrip(wc) == wc);
  const std::tuple<int, std::string, double> t(1, "two", 3.0);
  CHECK(roundTrip(t) == t);
  CHECK(roundTrip(std::tuple<>()) == std::tuple<>());
  const std::array<std::string, 2> arr = {"l", "r"};
  CHECK(roundTrip(arr) == arr);
  const std::map<std::string, int> m = {{"a", 1}, {"b", 2}};
  CHECK(roundTrip(m) == m);
  const std::unordered_map<int, std::string> um = {{1, "x"}, {2, "y"}};
  CHECK(roundTrip(um) == um);
  const std::vector<std::pair<std::string, std::vector<int>>> nested = {{"k", {1, 2}}, {"", {}}};
  CHECK(roundTrip(nested) == nested);
  checkTruncationsRefused(nested);
  checkTruncationsRefused(m);
}

TEST_CASE("serde: user structs with WEIR_SERDE_FIELDS and trivially copyable structs") {
  const Click c{"alice", 1700000000000, {1, 2, 3}};
  CHECK(roundTrip(c) == c);
  CHECK(weir::Serde<Click>::size(c) == (1 + 5) + 8 + (1 + 12));
  checkTruncationsRefused(c);
  const Point p{1.5, -2.5};
  CHECK(roundTrip(p) == p);
  CHECK(weir::Serde<Point>::size(p) == sizeof(Point));
}

TEST_CASE("serde: malformed input is refused without over-reading or huge allocation") {
  std::string s;
  // A varint that never terminates.
  std::vector<std::uint8_t> endless(12, 0xFF);
  CHECK_FALSE(weir::deserialize(endless, s));
  // A varint longer than 64 bits.
  std::vector<std::uint8_t> overlong = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
  CHECK_FALSE(weir::deserialize(overlong, s));
  // A length of 2^40 with 3 bytes behind it: refused before any allocation of that size.
  std::vector<std::uint8_t> huge = {0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 'a', 'b', 'c'};
  CHECK_FALSE(weir::deserialize(huge, s));
  std::vector<std::int64_t> v;
  CHECK_FALSE(weir::deserialize(huge, v));
  std::map<std::string, std::string> m;
  CHECK_FALSE(weir::deserialize(huge, m));
  // Trailing bytes after a complete value.
  auto bytes = weir::serialize(std::int32_t{7});
  bytes.push_back(0);
  std::int32_t i = 0;
  CHECK_FALSE(weir::deserialize(bytes, i));
  // An optional whose presence byte is neither 0 nor 1.
  std::optional<int> o;
  CHECK_FALSE(weir::deserialize(std::vector<std::uint8_t>{2, 0, 0, 0, 0}, o));
}

TEST_CASE("serde: the Serializable concept accepts supported types only") {
  static_assert(weir::Serializable<int>);
  static_assert(weir::Serializable<std::string>);
  static_assert(weir::Serializable<Click>);
  static_assert(weir::Serializable<std::vector<std::pair<std::string, Click>>>);
  static_assert(!weir::Serializable<int*>);
  CHECK(true);
}
