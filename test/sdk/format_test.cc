#include "weir/format.h"

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace {
struct Reading {
  std::string sensor;
  double value = 0;
  WEIR_SERDE_FIELDS(sensor, value)
};
}  // namespace

TEST_CASE("format: records print like Flink's tuples") {
  CHECK(weir::formatted(42) == "42");
  CHECK(weir::formatted(-1.5) == "-1.5");
  CHECK(weir::formatted(true) == "true");
  CHECK(weir::formatted(std::string("hi")) == "hi");
  CHECK(weir::formatted(std::pair<std::string, long>("to", 13)) == "(to,13)");
  CHECK(weir::formatted(std::tuple<int, std::string, bool>(1, "a", false)) == "(1,a,false)");
  CHECK(weir::formatted(std::vector<int>{1, 2, 3}) == "[1, 2, 3]");
  CHECK(weir::formatted(std::optional<int>()) == "null");
  CHECK(weir::formatted(std::map<std::string, int>{{"a", 1}, {"b", 2}}) == "{a=1, b=2}");
  CHECK(weir::formatted(Reading{"t1", 20.5}) == "{t1, 20.5}");
}
