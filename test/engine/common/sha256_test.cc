#include "common/sha256.h"

#include <doctest/doctest.h>

#include <fstream>
#include <random>

#include "process_util.h"
#include "test_data.h"

using weir::Status;
using weir::engine::isSha256Hex;
using weir::engine::Sha256;
using weir::engine::sha256File;
using weir::engine::sha256Hex;
using weir::testing::randomBytes;
using weir::testing::TempDir;

namespace {

constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

}  // namespace

TEST_CASE("sha256: known vectors") {
  CHECK(sha256Hex("") == kEmpty);
  CHECK(sha256Hex("abc") == kAbc);
  // FIPS 180-2's two-block message.
  CHECK(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("sha256: incremental updates equal one update") {
  const std::string data = randomBytes(100000, 1);
  Sha256 h;
  for (std::size_t off = 0; off < data.size(); off += 777) {
    const std::size_t n = std::min<std::size_t>(777, data.size() - off);
    h.update(data.data() + off, n);
  }
  CHECK(h.finishHex() == sha256Hex(data));
  Sha256 nothing;
  CHECK(nothing.finishHex() == kEmpty);
}

TEST_CASE("sha256: a file hashes like its content, across 1 MiB blocks") {
  TempDir dir;
  for (std::size_t size :
       {std::size_t{0}, std::size_t{3}, std::size_t{1} << 20, (std::size_t{3} << 20) + 12345}) {
    CAPTURE(size);
    const std::string data = randomBytes(size, static_cast<unsigned>(size));
    const std::string file = dir.file(std::to_string(size) + ".bin");
    std::ofstream(file, std::ios::binary) << data;
    auto h = sha256File(file);
    REQUIRE(h.isOk());
    CHECK(*h == sha256Hex(data));
  }
  auto missing = sha256File(dir.file("missing"));
  REQUIRE_FALSE(missing.isOk());
  CHECK(missing.status().code() == Status::Code::kIoError);
  CHECK(missing.status().message().find("missing") != std::string::npos);
}

TEST_CASE("sha256: only 64 lowercase hex digits are a SHA-256") {
  CHECK(isSha256Hex(kEmpty));
  CHECK(isSha256Hex(std::string(64, '0')));
  CHECK_FALSE(isSha256Hex(""));
  CHECK_FALSE(isSha256Hex(std::string(63, 'a')));
  CHECK_FALSE(isSha256Hex(std::string(65, 'a')));
  CHECK_FALSE(isSha256Hex(std::string(64, 'A')));  // uppercase
  CHECK_FALSE(isSha256Hex(std::string(63, 'a') + "g"));
  std::string escape = "../";
  escape.append(61, 'a');  // 64 characters, not all hex
  CHECK_FALSE(isSha256Hex(escape));
}
