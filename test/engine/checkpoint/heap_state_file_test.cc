#include "checkpoint/heap_state_file.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "process_util.h"
#include "weir/key_groups.h"

namespace fs = std::filesystem;
using weir::Status;
using weir::engine::readHeapKeyedState;
using weir::engine::stateSize;
using weir::engine::writeHeapKeyedState;
using weir::testing::TempDir;

namespace {

using Strings = std::vector<std::string>;

// Key group kg's bytes: every third group is empty, others hold a few bytes (including NULs).
std::string groupBytes(int kg) {
  if (kg % 3 == 0) return "";
  return "kg" + std::to_string(kg) + std::string(static_cast<std::size_t>(kg % 5), '\0') + "!";
}

Strings groups(int start, int end) {
  Strings out;
  for (int kg = start; kg <= end; ++kg)
    out.push_back(groupBytes(kg));
  return out;
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void writeAll(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("heap state file: round trip") {
  TempDir tmp;
  const fs::path base = tmp.path();
  const Strings in = groups(10, 24);
  auto h = writeHeapKeyedState(base, "chk-3/agg-0.heap", 10, in);
  REQUIRE(h.isOk());
  CHECK(h->keyGroupStart == 10);
  CHECK(h->keyGroupEnd == 24);
  CHECK(h->kind == weir::thrift::KeyedStateKind::HEAP_FULL);
  REQUIRE(h->privateFiles.size() == 1);
  CHECK(h->sharedFiles.empty());
  const auto& f = h->privateFiles[0];
  CHECK(f.path == "chk-3/agg-0.heap");
  CHECK(f.size == static_cast<std::int64_t>(fs::file_size(base / f.path)));
  CHECK(f.sha256 == weir::engine::sha256Hex(readAll(base / f.path)));
  CHECK(readAll(base / f.path).substr(0, 8) == "WEIRHKS1");
  CHECK_FALSE(fs::exists(base / "chk-3/agg-0.heap.tmp"));
  CHECK(stateSize(*h) == f.size);

  auto out = readHeapKeyedState(base, {*h}, 10, 24);
  REQUIRE(out.isOk());
  CHECK(*out == in);
}

TEST_CASE("heap state file: partial range read") {
  TempDir tmp;
  const fs::path base = tmp.path();
  auto h = writeHeapKeyedState(base, "chk-1/a.heap", 0, groups(0, 63));
  REQUIRE(h.isOk());
  auto inner = readHeapKeyedState(base, {*h}, 20, 30);
  REQUIRE(inner.isOk());
  CHECK(*inner == groups(20, 30));
  auto single = readHeapKeyedState(base, {*h}, 63, 63);
  REQUIRE(single.isOk());
  CHECK(*single == Strings{groupBytes(63)});
  // Key groups beyond the handle are empty.
  auto beyond = readHeapKeyedState(base, {*h}, 60, 70);
  REQUIRE(beyond.isOk());
  Strings expected = groups(60, 63);
  expected.resize(11);
  CHECK(*beyond == expected);
  auto none = readHeapKeyedState(base, {*h}, 64, 127);
  REQUIRE(none.isOk());
  CHECK(*none == Strings(64));
}

TEST_CASE("heap state file: read across two handles when rescaling 2 to 1 and 2 to 3") {
  TempDir tmp;
  const fs::path base = tmp.path();
  std::vector<weir::thrift::KeyedStateHandle> handles;
  for (int i = 0; i < 2; ++i) {
    const auto r = weir::keyGroupRangeForSubtask(i, 2, 128);
    auto h = writeHeapKeyedState(base, "chk-5/agg-" + std::to_string(i) + ".heap", r.start,
                                 groups(r.start, r.end));
    REQUIRE(h.isOk());
    handles.push_back(*h);
  }
  auto all = readHeapKeyedState(base, handles, 0, 127);
  REQUIRE(all.isOk());
  CHECK(*all == groups(0, 127));
  const auto middle = weir::keyGroupRangeForSubtask(1, 3, 128);
  auto part = readHeapKeyedState(base, handles, middle.start, middle.end);
  REQUIRE(part.isOk());
  CHECK(*part == groups(middle.start, middle.end));
}

TEST_CASE("heap state file: empty key groups are stored compactly") {
  TempDir tmp;
  const fs::path base = tmp.path();
  auto h = writeHeapKeyedState(base, "empty.heap", 64, Strings(64));
  REQUIRE(h.isOk());
  CHECK(h->privateFiles[0].size == 8 + 4 + 4 + 4 + 64 * 16);
  auto out = readHeapKeyedState(base, {*h}, 64, 127);
  REQUIRE(out.isOk());
  CHECK(*out == Strings(64));
  auto bad = writeHeapKeyedState(base, "none.heap", 0, {});
  CHECK(bad.status().code() == Status::Code::kInvalidArgument);
  auto escaping = writeHeapKeyedState(base, "../out.heap", 0, {"x"});
  CHECK(escaping.status().code() == Status::Code::kInvalidArgument);
}

TEST_CASE("heap state file: truncated file and flipped byte are detected") {
  TempDir tmp;
  const fs::path base = tmp.path();
  auto h = writeHeapKeyedState(base, "chk-2/agg-0.heap", 0, groups(0, 63));
  REQUIRE(h.isOk());
  const fs::path file = base / "chk-2/agg-0.heap";
  const std::string original = readAll(file);

  SUBCASE("truncated") {
    writeAll(file, original.substr(0, original.size() - 1));
    auto out = readHeapKeyedState(base, {*h}, 0, 63);
    REQUIRE_FALSE(out.isOk());
    CHECK(out.status().code() == Status::Code::kCorruption);
    CHECK(out.status().message().find(file.string()) != std::string::npos);
  }
  SUBCASE("truncated with a matching recorded size") {
    writeAll(file, original.substr(0, original.size() - 5));
    auto handle = *h;
    handle.privateFiles[0].size = static_cast<std::int64_t>(original.size() - 5);
    auto out = readHeapKeyedState(base, {handle}, 0, 63);
    REQUIRE_FALSE(out.isOk());
    CHECK(out.status().code() == Status::Code::kCorruption);
    CHECK(out.status().message().find(file.string()) != std::string::npos);
  }
  SUBCASE("flipped byte outside the requested key groups") {
    std::string flipped = original;
    flipped[flipped.size() - 1] = static_cast<char>(flipped.back() ^ 0x01);
    writeAll(file, flipped);
    auto out = readHeapKeyedState(base, {*h}, 0, 3);
    REQUIRE_FALSE(out.isOk());
    CHECK(out.status().code() == Status::Code::kCorruption);
    CHECK(out.status().message().find("SHA-256") != std::string::npos);
    CHECK(out.status().message().find(file.string()) != std::string::npos);
  }
  SUBCASE("flipped byte in the header") {
    std::string flipped = original;
    flipped[0] = 'X';
    writeAll(file, flipped);
    auto out = readHeapKeyedState(base, {*h}, 0, 63);
    REQUIRE_FALSE(out.isOk());
    CHECK(out.status().code() == Status::Code::kCorruption);
  }
}

TEST_CASE("heap state file: a missing file is reported") {
  TempDir tmp;
  const fs::path base = tmp.path();
  auto h = writeHeapKeyedState(base, "chk-4/agg-1.heap", 64, groups(64, 127));
  REQUIRE(h.isOk());
  fs::remove(base / "chk-4/agg-1.heap");
  auto out = readHeapKeyedState(base, {*h}, 0, 127);
  REQUIRE_FALSE(out.isOk());
  CHECK(out.status().code() == Status::Code::kNotFound);
  CHECK(out.status().message().find("chk-4/agg-1.heap") != std::string::npos);
  // A handle that does not overlap the range is not read at all.
  auto skipped = readHeapKeyedState(base, {*h}, 0, 63);
  REQUIRE(skipped.isOk());
  CHECK(*skipped == Strings(64));
}

TEST_CASE("heap state file: foreign and overlapping handles are refused") {
  TempDir tmp;
  const fs::path base = tmp.path();
  auto a = writeHeapKeyedState(base, "a.heap", 0, groups(0, 63));
  auto b = writeHeapKeyedState(base, "b.heap", 60, groups(60, 127));
  REQUIRE(a.isOk());
  REQUIRE(b.isOk());
  auto overlap = readHeapKeyedState(base, {*a, *b}, 0, 127);
  CHECK(overlap.status().code() == Status::Code::kInvalidArgument);
  auto rocks = *a;
  rocks.kind = weir::thrift::KeyedStateKind::ROCKSDB_INCREMENTAL;
  auto foreign = readHeapKeyedState(base, {rocks}, 0, 63);
  CHECK(foreign.status().code() == Status::Code::kInvalidArgument);
}

TEST_CASE("heap state file: state size counts private and shared files") {
  weir::thrift::KeyedStateHandle h;
  weir::thrift::StateFile f;
  f.size = 10;
  h.privateFiles = {f, f};
  f.size = 7;
  h.sharedFiles = {f};
  CHECK(stateSize(h) == 27);
}
