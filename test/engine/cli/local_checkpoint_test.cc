// Checkpoints in `weir local`: --checkpoint-dir with a checkpoint interval runs the coordinator,
// barriers and snapshots of the embedded cluster; the exactly-once file sink then commits on
// completed checkpoints (the last one after the end of the input) and the retained checkpoints
// are left in the directory.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "process_util.h"

using weir::testing::TempDir;

namespace {

const std::string kWeir = WEIR_TEST_BIN_DIR "/weir";
const std::string kJob = WEIR_TEST_BAD_PLUGIN_DIR "/exactly_once_job.so";

}  // namespace

TEST_CASE("weir local: --checkpoint-dir takes checkpoints and the file sink commits exactly") {
  TempDir dir;
  const std::string out = dir.file("out");
  const std::string checkpoints = dir.file("checkpoints");
  auto r = weir::testing::run(
      {kWeir, "local", kJob, "-p", "2", "--checkpoint-dir", checkpoints, "--arg", "count=6000",
       "--arg", "keys=4", "--arg", "rate=6000", "--arg", "out=" + out, "--arg",
       "execution.checkpointing.interval=100 ms", "--arg", "state.checkpoints.num-retained=2"},
      dir.path());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);

  std::vector<std::string> lines;
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    CHECK_MESSAGE(name.rfind("part-", 0) == 0, name);  // nothing left in progress
    std::ifstream in(entry.path());
    for (std::string l; std::getline(in, l);)
      lines.push_back(l);
  }
  std::vector<std::string> expected;
  for (int k = 0; k < 4; ++k) {
    for (int c = 1; c <= 1500; ++c)
      expected.push_back(std::to_string(k) + "," + std::to_string(c));
  }
  std::sort(lines.begin(), lines.end());
  std::sort(expected.begin(), expected.end());
  CHECK(lines == expected);

  // One job directory with the two newest checkpoints, each complete.
  std::vector<std::filesystem::path> jobs;
  for (const auto& entry : std::filesystem::directory_iterator(checkpoints))
    jobs.push_back(entry.path());
  REQUIRE(jobs.size() == 1);
  int completed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(jobs[0])) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("chk-", 0) != 0) continue;
    CHECK(std::filesystem::exists(entry.path() / "_metadata"));
    ++completed;
  }
  CHECK(completed == 2);
}

TEST_CASE("weir local: checkpointing without a checkpoint directory is refused clearly") {
  TempDir dir;
  auto r = weir::testing::run({kWeir, "local", kJob, "--arg", "out=" + dir.file("out"), "--arg",
                               "execution.checkpointing.interval=100 ms"},
                              dir.path());
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("state.checkpoints.dir") != std::string::npos);
}
