// The window examples end to end through `weir local`: the YSB-like job's per-campaign window
// counts against the same events counted in the test, and the session example's accounting.
#include <doctest/doctest.h>

#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "../plugins/examples/ysb.h"
#include "process_util.h"

using weir::testing::CommandResult;
using weir::testing::TempDir;

namespace {

const std::string kWeir = WEIR_TEST_BIN_DIR "/weir";
const std::string kYsb = WEIR_TEST_PLUGIN_DIR "/ysb.so";
const std::string kSessions = WEIR_TEST_PLUGIN_DIR "/sessions.so";

CommandResult runWeir(std::vector<std::string> args, const TempDir& dir) {
  args.insert(args.begin(), kWeir);
  return weir::testing::run(args, dir.path());
}

// (campaign, window end) -> views, parsed from "campaign C window-end E views N" lines.
std::map<std::pair<int, long>, long> parseYsb(const std::string& out) {
  std::map<std::pair<int, long>, long> counts;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    // At parallelism > 1 the print sink prefixes its subtask: "2> ...".
    if (const auto prefix = line.find("> "); prefix != std::string::npos && prefix < 4) {
      line.erase(0, prefix + 2);
    }
    std::istringstream words(line);
    std::string campaign_word, end_word, views_word;
    int campaign = 0;
    long end = 0;
    long views = 0;
    words >> campaign_word >> campaign >> end_word >> end >> views_word >> views;
    REQUIRE_MESSAGE(campaign_word == "campaign", line);
    REQUIRE_MESSAGE(counts.emplace(std::pair(campaign, end), views).second, line);
  }
  return counts;
}

std::map<std::pair<int, long>, long> expectedYsb(const ysb::Params& p, std::uint64_t events) {
  ysb::AdToCampaign table(p);
  table.buildTable();
  const ysb::Generator gen{p};
  std::map<std::pair<int, long>, long> counts;
  for (std::uint64_t i = 0; i < events; ++i) {
    const ysb::AdEvent e = gen(i);
    if (e.event_type != ysb::kView) continue;
    const ysb::CampaignView v = table.map(e);
    ++counts[{v.campaign_id, (v.event_time / p.window_ms + 1) * p.window_ms}];
  }
  return counts;
}

}  // namespace

TEST_CASE("weir local: the YSB-like job counts every campaign's views per window exactly") {
  TempDir dir;
  ysb::Params p;
  p.campaigns = 7;
  p.events_per_second = 20'000;
  const std::uint64_t events = 300'000;  // 15 s of event time: two windows
  const auto expected = expectedYsb(p, events);
  for (const std::string backend : {"heap", "rocksdb"}) {
    for (const std::string parallelism : {"1", "3"}) {
      CAPTURE(backend);
      CAPTURE(parallelism);
      const CommandResult r =
          runWeir({"local", kYsb, "--parallelism", parallelism, "--arg", "events=300000", "--arg",
                   "campaigns=7", "--arg", "rate=20000", "--arg", "state.backend=" + backend},
                  dir);
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      const auto got = parseYsb(r.out);
      CHECK(got.size() == 14);
      CHECK(got == expected);
    }
  }
}

TEST_CASE("weir local: the session example accounts for every click once") {
  TempDir dir;
  for (const std::string backend : {"heap", "rocksdb"}) {
    CAPTURE(backend);
    const CommandResult r = runWeir({"local", kSessions, "--arg", "users=4", "--arg", "clicks=400",
                                     "--arg", "state.backend=" + backend},
                                    dir);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    long clicks = 0;
    int sessions = 0;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string first;
      words >> first;
      if (first == "late") {
        ++clicks;
        continue;
      }
      REQUIRE_MESSAGE(first == "user", line);
      const auto at = line.find(" clicks ");
      REQUIRE_MESSAGE(at != std::string::npos, line);
      const long n = std::stol(line.substr(at + 8));
      CHECK(n >= 1);
      clicks += n;
      ++sessions;
    }
    CHECK(clicks == 400);
    // 100 clicks per user in bursts of 8, two minutes apart: at least 13 sessions per user.
    CHECK(sessions >= 4 * 13);
  }
}
