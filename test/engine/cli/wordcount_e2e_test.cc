// The weir binary end to end: `weir local` on the example plugins, exact output, and every CLI
// error path of this command.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "process_util.h"
#include "test_data.h"
#include "weir/key_groups.h"

using weir::testing::CommandResult;
using weir::testing::TempDir;

using weir::testing::tokenize;

namespace {

const std::string kWeir = WEIR_TEST_BIN_DIR "/weir";
const std::string kWordCount = WEIR_TEST_PLUGIN_DIR "/wordcount.so";
const std::string kPartitioners = WEIR_TEST_PLUGIN_DIR "/partitioners.so";

CommandResult runWeir(std::vector<std::string> args, const TempDir& dir) {
  args.insert(args.begin(), kWeir);
  return weir::testing::run(args, dir.path());
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

std::string writeInput(const TempDir& dir) {
  std::string text;
  for (int i = 0; i < 300; ++i) {
    text += "Line " + std::to_string(i % 7) + ": the Quick brown fox jumps over the lazy dog\n";
    text += "dog-eat-dog, fox eats nothing; THE end " + std::to_string(i % 13) + "\n";
    if (i % 50 == 0) text += "\n";
  }
  const std::string path = dir.file("input.txt");
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("weir local: word count at parallelism 1 prints every running count in input order") {
  TempDir dir;
  const std::string input = writeInput(dir);
  const CommandResult r = runWeir({"local", kWordCount, "--arg", "input=" + input}, dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::map<std::string, int> counts;
  std::vector<std::string> expected;
  std::ifstream in(input);
  for (std::string line; std::getline(in, line);) {
    for (const auto& w : tokenize(line)) {
      expected.push_back("(" + w + "," + std::to_string(++counts[w]) + ")");
    }
  }
  CHECK(lines(r.out) == expected);
}

TEST_CASE("weir local: word count at parallelism 4 routes each word to its key group's subtask") {
  TempDir dir;
  const std::string input = writeInput(dir);
  const CommandResult r =
      runWeir({"local", kWordCount, "--parallelism", "4", "--arg", "input=" + input}, dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);

  std::map<std::string, int> totals;
  std::ifstream in(input);
  for (std::string line; std::getline(in, line);) {
    for (const auto& w : tokenize(line))
      ++totals[w];
  }
  std::vector<std::string> expected;
  for (const auto& [w, n] : totals) {
    const int subtask = weir::subtaskForKeyGroup(weir::keyGroupOf(w, 128), 4, 128);
    for (int k = 1; k <= n; ++k) {
      expected.push_back(std::to_string(subtask + 1) + "> (" + w + "," + std::to_string(k) + ")");
    }
  }
  auto got = lines(r.out);
  // Per word, the counts appear in increasing order on stdout.
  std::map<std::string, int> last;
  for (const auto& l : got) {
    const auto open = l.find('(');
    const auto comma = l.rfind(',');
    REQUIRE(open != std::string::npos);
    const std::string w = l.substr(open + 1, comma - open - 1);
    const int k = std::stoi(l.substr(comma + 1));
    CHECK(k == last[w] + 1);
    last[w] = k;
  }
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  CHECK(got == expected);
}

TEST_CASE("weir local: the README demo runs word count on its built-in text") {
  TempDir dir;
  const CommandResult r = runWeir({"local", kWordCount}, dir);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto out = lines(r.out);
  REQUIRE(out.size() == 88);
  CHECK(out.front() == "(to,1)");
  CHECK(out.back() == "(rub,1)");
  CHECK(std::count(out.begin(), out.end(), "(to,13)") == 1);
  CHECK(r.err.find("finished") != std::string::npos);
}

TEST_CASE("weir local: the partitioner example runs at several parallelisms") {
  TempDir dir;
  for (const char* p : {"1", "2", "3"}) {
    const CommandResult r = runWeir({"local", kPartitioners, "-p", p, "--arg", "count=40"}, dir);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    // 40 forward + 40 rebalance + 40 x 2 broadcast + 40 hash.
    CHECK(lines(r.out).size() == 200);
  }
}

TEST_CASE("weir local: errors are one clear line with a non-zero exit code") {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  const std::string missing_input = dir.file("missing.txt");
  const std::vector<Case> cases = {
      {{"local", dir.file("nope.so")}, 1, "no such file"},
      {{"local", WEIR_SOURCE_DIR "/CMakeLists.txt"}, 1, "not a loadable shared library"},
      {{"local", kWordCount, "--arg", "novalue"}, 2, "--arg expects key=value, got 'novalue'"},
      {{"local", kWordCount, "--arg", "=x"}, 2, "--arg expects key=value"},
      {{"local", kWordCount, "--parallelism", "0"}, 2, "parallelism"},
      {{"local", kWordCount, "--parallelism", "many"}, 2, "parallelism"},
      {{"local", kWordCount, "--bogus"}, 2, "--bogus"},
      {{"local"}, 2, "plugin is required"},
      {{}, 2, "subcommand"},
      {{"local", kWordCount, "--parallelism", "200"}, 1, "exceeds max parallelism 128"},
      {{"local", kWordCount, "--arg", "input=" + missing_input},
       1,
       "cannot open input file '" + missing_input + "'"},
      {{"local", kPartitioners, "--arg", "count=lots"},
       1,
       "job argument 'count' is not an integer"},
  };
  for (const Case& c : cases) {
    const CommandResult r = runWeir(c.args, dir);
    CAPTURE(r.err);
    CHECK(r.exit_code == c.code);
    // The last line is the error (log lines may precede it).
    const auto last = lines(r.err).back();
    CHECK(last.find("weir: ") == 0);
    CHECK(last.find(c.message) != std::string::npos);
  }
}

TEST_CASE("weir local: Ctrl-C cancels an unbounded job gracefully") {
  TempDir dir;
  weir::testing::Process p({kWeir, "local", kPartitioners, "-p", "2", "--arg", "count=unbounded"},
                           dir.path());
  // Running once output flows.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (p.outSize() < 10000 && std::chrono::steady_clock::now() < deadline) {
    REQUIRE_FALSE(p.wait(std::chrono::milliseconds(5)).has_value());
  }
  REQUIRE(p.outSize() >= 10000);
  p.signal(SIGINT);
  const auto code = p.wait(std::chrono::seconds(30));
  REQUIRE(code.has_value());
  CHECK(*code == 130);
  CHECK(p.err().find("cancelled") != std::string::npos);
}
