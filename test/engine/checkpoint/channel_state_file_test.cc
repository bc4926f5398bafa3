#include "checkpoint/channel_state_file.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "process_util.h"

using weir::Status;
using weir::engine::appendChannelBuffer;
using weir::engine::readChannelStateFile;
using weir::engine::writeChannelStateFile;
using weir::testing::TempDir;

namespace {

const std::uint8_t* bytes(const std::string& s) {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}

}  // namespace

TEST_CASE("channel state file: buffers come back in file order, damage is detected") {
  TempDir dir;
  std::string body;
  const std::vector<std::pair<int, std::string>> buffers = {
      {0, "first"}, {0, std::string(70000, 'x')}, {2, ""}, {1, std::string("a\0b", 3)}};
  for (const auto& [channel, data] : buffers)
    appendChannelBuffer(body, channel, bytes(data), data.size());
  auto file = writeChannelStateFile(dir.path(), "chk-3/head-0.channels", body);
  REQUIRE_MESSAGE(file.isOk(), file.status().message());
  CHECK(file->path == "chk-3/head-0.channels");
  CHECK(file->size == static_cast<std::int64_t>(8 + body.size()));
  CHECK(std::filesystem::file_size(std::filesystem::path(dir.path()) / file->path) ==
        static_cast<std::uintmax_t>(file->size));

  std::vector<std::pair<int, std::string>> read;
  auto collect = [&](int channel, const std::uint8_t* data, std::size_t size) {
    read.emplace_back(channel, std::string(reinterpret_cast<const char*>(data), size));
    return Status::ok();
  };
  Status s = readChannelStateFile(dir.path(), *file, collect);
  REQUIRE_MESSAGE(s.isOk(), s.message());
  CHECK(read == buffers);

  // A replay error stops the reading and is returned.
  int calls = 0;
  s = readChannelStateFile(dir.path(), *file, [&](int, const std::uint8_t*, std::size_t) {
    return ++calls == 2 ? Status::corruption("bad record") : Status::ok();
  });
  CHECK(s.message() == "bad record");
  CHECK(calls == 2);

  // A changed byte fails the checksum, a wrong size is reported as such.
  {
    std::fstream f(std::filesystem::path(dir.path()) / file->path,
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('!');
  }
  s = readChannelStateFile(dir.path(), *file, collect);
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK(s.message().find("SHA-256 mismatch") != std::string::npos);
  auto wrong_size = *file;
  wrong_size.size += 1;
  s = readChannelStateFile(dir.path(), wrong_size, collect);
  CHECK(s.message().find("expected") != std::string::npos);
  auto missing = *file;
  missing.path = "chk-3/none.channels";
  CHECK(readChannelStateFile(dir.path(), missing, collect).code() == Status::Code::kNotFound);
}
