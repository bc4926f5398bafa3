#include <doctest/doctest.h>

#include <fstream>

#include "common/config.h"
#include "process_util.h"

using weir::engine::Configuration;
using weir::testing::TempDir;

namespace {

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.file(name);
  std::ofstream(path) << text;
  return path;
}

std::string loadError(const std::string& file, const std::vector<std::string>& overrides) {
  auto c = Configuration::load(file, overrides);
  return c.isOk() ? std::string() : c.status().message();
}

}  // namespace

TEST_CASE("config: defaults, nested and dotted YAML keys, and command-line overrides") {
  TempDir dir;
  const std::string file = write(dir, "config.yaml",
                                 "jobmanager:\n"
                                 "  rpc:\n"
                                 "    address: 10.0.0.7\n"
                                 "    port: 7000\n"
                                 "taskmanager.numberOfTaskSlots: 4\n"
                                 "heartbeat.interval: 250 ms\n");
  auto c = Configuration::load(file, {"heartbeat.timeout=3s", "taskmanager.numberOfTaskSlots = 8"});
  REQUIRE_MESSAGE(c.isOk(), c.status().message());
  CHECK(c->getString("jobmanager.rpc.address") == "10.0.0.7");
  CHECK(c->getInt("jobmanager.rpc.port") == 7000);
  CHECK(c->getInt("taskmanager.numberOfTaskSlots") == 8);  // the command line wins
  CHECK(c->getDuration("heartbeat.interval") == std::chrono::milliseconds(250));
  CHECK(c->getDuration("heartbeat.timeout") == std::chrono::seconds(3));
  CHECK(c->getInt("jobmanager.admin.port") == 6124);  // default
  CHECK(c->effective().at("taskmanager.registration.retry-interval") == "500 ms");
  auto empty = Configuration::load("", {});
  REQUIRE(empty.isOk());
  CHECK(empty->getString("taskmanager.host") == "127.0.0.1");
}

TEST_CASE("config: unknown keys and bad values are refused with where they came from") {
  TempDir dir;
  CHECK(loadError(write(dir, "a.yaml", "taskmanager.numberOfSlots: 2\n"), {}) ==
        "unknown configuration key 'taskmanager.numberOfSlots' in '" + dir.file("a.yaml") + "'");
  CHECK(loadError("", {"jobmanager.rpc.prot=1"}) ==
        "unknown configuration key 'jobmanager.rpc.prot' on the command line");
  CHECK(loadError("", {"taskmanager.numberOfTaskSlots=two"}) ==
        "configuration key 'taskmanager.numberOfTaskSlots' on the command line: expected an "
        "integer, got 'two'");
  CHECK(loadError("", {"taskmanager.numberOfTaskSlots=0"}).find("in [1, 1024]") !=
        std::string::npos);
  CHECK(loadError("", {"jobmanager.rpc.port=70000"}).find("in [0, 65535]") != std::string::npos);
  CHECK(loadError("", {"heartbeat.timeout=soon"}).find("expected a duration") != std::string::npos);
  CHECK(loadError("", {"heartbeat.timeout=5 fortnights"}).find("expected a duration") !=
        std::string::npos);
  CHECK(loadError("", {"noequals"}) ==
        "configuration override expects key=value, got 'noequals'");
  CHECK(loadError(dir.file("missing.yaml"), {}).find("does not exist") != std::string::npos);
  CHECK(loadError(write(dir, "bad.yaml", "jobmanager: [unclosed\n"), {})
            .find("is not valid YAML") != std::string::npos);
  CHECK(loadError(write(dir, "list.yaml", "taskmanager.host: [a, b]\n"), {})
            .find("expected a single value") != std::string::npos);
  CHECK(loadError(write(dir, "scalar.yaml", "just a string\n"), {})
            .find("must hold a map") != std::string::npos);
}

TEST_CASE("config: durations and memory sizes") {
  using weir::engine::parseDuration;
  using weir::engine::parseMemorySize;
  CHECK(*parseDuration("500") == std::chrono::milliseconds(500));
  CHECK(*parseDuration("10 ms") == std::chrono::milliseconds(10));
  CHECK(*parseDuration("2s") == std::chrono::seconds(2));
  CHECK(*parseDuration("1 min") == std::chrono::minutes(1));
  CHECK(*parseDuration("3 Hours") == std::chrono::hours(3));
  CHECK_FALSE(parseDuration("-1 s").isOk());
  CHECK_FALSE(parseDuration("s").isOk());
  CHECK(*parseMemorySize("4096") == 4096);
  CHECK(*parseMemorySize("32kb") == 32 * 1024);
  CHECK(*parseMemorySize("64 MB") == 64ull << 20);
  CHECK(*parseMemorySize("1g") == 1ull << 30);
  CHECK_FALSE(parseMemorySize("lots").isOk());
}

TEST_CASE("config: ops/config.yaml loads and sets every option to its default") {
  auto config = weir::engine::Configuration::load(WEIR_SOURCE_DIR "/ops/config.yaml", {});
  REQUIRE_MESSAGE(config.isOk(), config.status().message());
  auto defaults = weir::engine::Configuration::load("", {});
  REQUIRE(defaults.isOk());
  const auto documented = config->effective();
  const auto built_in = defaults->effective();
  CHECK(documented == built_in);
  // Every option appears in the file (not just by default).
  const std::string text = weir::testing::readFile(WEIR_SOURCE_DIR "/ops/config.yaml");
  for (const auto& spec : weir::engine::allOptions()) {
    const std::string leaf = spec.key.substr(spec.key.rfind('.') + 1);
    CHECK_MESSAGE(text.find(leaf + ":") != std::string::npos, spec.key);
  }
}
