#include "checkpoint/channel_state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

#include "common/sha256.h"

namespace weir::engine {

namespace fs = std::filesystem;

namespace {

void putU32(std::string& out, std::uint32_t v) {
  const char bytes[4] = {static_cast<char>(v), static_cast<char>(v >> 8),
                         static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
  out.append(bytes, 4);
}

std::uint32_t getU32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

Status writeAll(int fd, std::string_view bytes, const fs::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::ioError("cannot write " + path.string() + ": " + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::ok();
}

Status fsyncPath(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Status::ioError("cannot open " + path.string() + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return Status::ioError("cannot fsync " + path.string() + ": " + std::strerror(errno));
  return Status::ok();
}

}  // namespace

void appendChannelBuffer(std::string& out, int channel, const std::uint8_t* data,
                         std::size_t size) {
  putU32(out, static_cast<std::uint32_t>(channel));
  putU32(out, static_cast<std::uint32_t>(size));
  out.append(reinterpret_cast<const char*>(data), size);
}

Result<thrift::StateFile> writeChannelStateFile(const fs::path& base,
                                                const std::string& relative_path,
                                                std::string_view body) {
  const fs::path path = base / relative_path;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) {
    return Status::ioError("cannot create " + path.parent_path().string() + ": " + ec.message());
  }
  std::string content;
  content.reserve(kChannelStateFileMagic.size() + body.size());
  content.append(kChannelStateFileMagic);
  content.append(body);
  fs::path tmp = path;
  tmp += ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::ioError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  Status s = writeAll(fd, content, tmp);
  if (s.isOk() && ::fsync(fd) != 0) {
    s = Status::ioError("cannot fsync " + tmp.string() + ": " + std::strerror(errno));
  }
  ::close(fd);
  if (s.isOk()) {
    fs::rename(tmp, path, ec);
    if (ec) {
      s = Status::ioError("cannot rename " + tmp.string() + " to " + path.string() + ": " +
                          ec.message());
    }
  }
  if (!s.isOk()) {
    fs::remove(tmp, ec);
    return s;
  }
  if (Status d = fsyncPath(path.parent_path(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); !d.isOk()) {
    return d;
  }
  thrift::StateFile file;
  file.path = relative_path;
  file.size = static_cast<std::int64_t>(content.size());
  file.sha256 = sha256Hex(content);
  return file;
}

Status readChannelStateFile(
    const fs::path& base, const thrift::StateFile& handle,
    const std::function<Status(int channel, const std::uint8_t* data, std::size_t size)>& replay) {
  const fs::path path = base / handle.path;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::notFound("cannot open channel state file " + path.string());
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (static_cast<std::int64_t>(content.size()) != handle.size) {
    return Status::corruption("channel state file " + path.string() + " has " +
                              std::to_string(content.size()) + " bytes, expected " +
                              std::to_string(handle.size));
  }
  if (sha256Hex(content) != handle.sha256) {
    return Status::corruption("channel state file " + path.string() + ": SHA-256 mismatch");
  }
  if (content.compare(0, kChannelStateFileMagic.size(), kChannelStateFileMagic) != 0) {
    return Status::corruption("channel state file " + path.string() + ": bad magic");
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(content.data());
  std::size_t at = kChannelStateFileMagic.size();
  while (at < content.size()) {
    if (content.size() - at < 8) {
      return Status::corruption("channel state file " + path.string() + ": truncated entry");
    }
    const std::uint32_t channel = getU32(p + at);
    const std::uint32_t size = getU32(p + at + 4);
    at += 8;
    if (size > content.size() - at) {
      return Status::corruption("channel state file " + path.string() + ": buffer of " +
                                std::to_string(size) + " bytes overruns the file");
    }
    if (Status s = replay(static_cast<int>(channel), p + at, size); !s.isOk()) return s;
    at += size;
  }
  return Status::ok();
}

}  // namespace weir::engine
