#include "checkpoint/heap_state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include "common/sha256.h"

namespace weir::engine {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kHeaderSize = 8 + 4 + 4 + 4;
constexpr std::size_t kIndexEntrySize = 8 + 8;
constexpr std::size_t kIoBlock = 1 << 20;
constexpr std::string_view kTmpSuffix = ".tmp";

Status errnoStatus(const std::string& what, const fs::path& path) {
  return Status::ioError(what + " " + path.string() + ": " + std::strerror(errno));
}

void putU32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void putU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t getLe(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

bool isContainedRelativePath(const std::string& p) {
  if (p.empty()) return false;
  const fs::path path(p);
  if (path.is_absolute() || !path.has_filename()) return false;
  return std::none_of(path.begin(), path.end(), [](const fs::path& c) { return c == ".."; });
}

// Buffers writes to a file descriptor and hashes everything written.
class HashingWriter {
 public:
  HashingWriter(int fd, const fs::path& path) : fd_(fd), path_(path) {}

  Status append(std::string_view bytes) {
    sha_.update(bytes.data(), bytes.size());
    size_ += bytes.size();
    if (buffer_.size() + bytes.size() > kIoBlock) {
      if (Status s = flush(); !s.isOk()) return s;
      if (bytes.size() >= kIoBlock) return writeAll(bytes);
    }
    buffer_.append(bytes);
    return Status::ok();
  }

  Status flush() {
    Status s = writeAll(buffer_);
    buffer_.clear();
    return s;
  }

  std::uint64_t size() const { return size_; }
  std::string finishHex() { return sha_.finishHex(); }

 private:
  Status writeAll(std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errnoStatus("cannot write", path_);
      }
      done += static_cast<std::size_t>(n);
    }
    return Status::ok();
  }

  int fd_;
  const fs::path& path_;
  Sha256 sha_;
  std::string buffer_;
  std::uint64_t size_ = 0;
};

Status fsyncDirectory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("cannot open for fsync", dir);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) return errnoStatus("cannot fsync", dir);
  return Status::ok();
}

// Writes the file at `tmp`; returns its size and SHA-256 through the writer.
Status writeFile(const fs::path& tmp, int key_group_start,
                 const std::vector<std::string>& key_groups, std::int64_t& size,
                 std::string& sha256) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errnoStatus("cannot create", tmp);
  HashingWriter writer(fd, tmp);
  std::string head;
  head.reserve(kHeaderSize + kIndexEntrySize * key_groups.size());
  head.append(kHeapStateFileMagic);
  putU32(head, kHeapStateFileVersion);
  putU32(head, static_cast<std::uint32_t>(key_group_start));
  putU32(head, static_cast<std::uint32_t>(key_groups.size()));
  std::uint64_t offset = 0;
  for (const auto& kg : key_groups) {
    putU64(head, kg.empty() ? 0 : offset);
    putU64(head, kg.size());
    offset += kg.size();
  }
  Status s = writer.append(head);
  for (std::size_t i = 0; s.isOk() && i < key_groups.size(); ++i)
    s = writer.append(key_groups[i]);
  if (s.isOk()) s = writer.flush();
  if (s.isOk() && ::fsync(fd) != 0) s = errnoStatus("cannot fsync", tmp);
  if (::close(fd) != 0 && s.isOk()) s = errnoStatus("cannot close", tmp);
  if (!s.isOk()) return s;
  size = static_cast<std::int64_t>(writer.size());
  sha256 = writer.finishHex();
  return Status::ok();
}

// What one file contributes to a read: key groups [first, last] of the request, which the file
// holds starting at its index entry `first - file_start`.
struct FilePart {
  const thrift::StateFile* file = nullptr;
  int file_start = 0;
  int file_end = 0;
  int first = 0;
  int last = 0;
};

// Streams `part.file` (hashing all of it) and stores its key groups [first, last] into
// out[kg - start].
Status readPart(const fs::path& base, const FilePart& part, int start,
                std::vector<std::string>& out) {
  const fs::path path = base / part.file->path;
  const std::string name = "heap keyed state file " + path.string();
  std::error_code ec;
  const auto actual_size = fs::file_size(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return Status::notFound(name + " is missing");
    return Status::ioError("cannot stat " + name + ": " + ec.message());
  }
  if (part.file->size < 0 || actual_size != static_cast<std::uintmax_t>(part.file->size)) {
    return Status::corruption(name + " has " + std::to_string(actual_size) +
                              " bytes, the checkpoint records " + std::to_string(part.file->size) +
                              " (truncated or overwritten)");
  }
  const std::uint64_t file_size = actual_size;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::notFound(name + " is missing");
    return errnoStatus("cannot open", path);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  Sha256 sha;
  std::uint64_t consumed = 0;  // bytes of the file read and hashed so far
  auto readExactly = [&](char* dst, std::size_t n) -> Status {
    std::size_t done = 0;
    while (done < n) {
      const ssize_t r = ::read(fd, dst + done, n - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        return errnoStatus("cannot read", path);
      }
      if (r == 0) return Status::corruption(name + " ends early (changed while read)");
      done += static_cast<std::size_t>(r);
    }
    sha.update(dst, n);
    consumed += n;
    return Status::ok();
  };

  if (file_size < kHeaderSize) {
    return Status::corruption(name + " is truncated (" + std::to_string(file_size) +
                              " bytes, shorter than its header)");
  }
  char header[kHeaderSize];
  if (Status s = readExactly(header, kHeaderSize); !s.isOk()) return s;
  if (std::string_view(header, 8) != kHeapStateFileMagic) {
    return Status::corruption(name + " is not a heap keyed state file (bad magic)");
  }
  const auto version = static_cast<std::uint32_t>(getLe(header + 8, 4));
  if (version != kHeapStateFileVersion) {
    return Status::corruption(name + " has format version " + std::to_string(version) +
                              ", expected " + std::to_string(kHeapStateFileVersion));
  }
  const auto kg_start = getLe(header + 12, 4);
  const auto count = getLe(header + 16, 4);
  const auto expected_count = static_cast<std::uint64_t>(part.file_end - part.file_start + 1);
  if (kg_start != static_cast<std::uint64_t>(part.file_start) || count != expected_count) {
    return Status::corruption(name + " holds key groups from " + std::to_string(kg_start) + " (" +
                              std::to_string(count) + " of them), its handle records [" +
                              std::to_string(part.file_start) + ", " +
                              std::to_string(part.file_end) + "]");
  }
  const std::uint64_t data_begin = kHeaderSize + count * kIndexEntrySize;
  if (data_begin > file_size) {
    return Status::corruption(name + " is truncated (its index does not fit)");
  }
  std::string index(count * kIndexEntrySize, '\0');
  if (Status s = readExactly(index.data(), index.size()); !s.isOk()) return s;
  const std::uint64_t data_size = file_size - data_begin;
  std::uint64_t expected_offset = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> entries(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t offset = getLe(index.data() + i * kIndexEntrySize, 8);
    const std::uint64_t length = getLe(index.data() + i * kIndexEntrySize + 8, 8);
    if ((length != 0 && offset != expected_offset) || (length == 0 && offset != 0) ||
        length > data_size - expected_offset) {
      return Status::corruption(name + " has a malformed index entry for key group " +
                                std::to_string(kg_start + i));
    }
    entries[i] = {offset, length};
    expected_offset += length;
  }
  if (expected_offset != data_size) {
    return Status::corruption(name + " has " + std::to_string(data_size) +
                              " data bytes, its index describes " +
                              std::to_string(expected_offset));
  }

  // The requested key groups are one contiguous span [want_begin, want_end) of the data section.
  const auto first_i = static_cast<std::size_t>(part.first - part.file_start);
  const auto last_i = static_cast<std::size_t>(part.last - part.file_start);
  std::uint64_t want_begin = 0;
  for (std::size_t i = 0; i < first_i; ++i)
    want_begin += entries[i].second;
  std::uint64_t want_end = want_begin;
  for (std::size_t i = first_i; i <= last_i; ++i)
    want_end += entries[i].second;
  std::string wanted;
  wanted.reserve(want_end - want_begin);

  std::string block(static_cast<std::size_t>(std::min<std::uint64_t>(kIoBlock, data_size)), '\0');
  std::uint64_t pos = 0;  // within the data section
  while (pos < data_size) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), data_size - pos));
    if (Status s = readExactly(block.data(), n); !s.isOk()) return s;
    const std::uint64_t lo = std::max(pos, want_begin);
    const std::uint64_t hi = std::min(pos + n, want_end);
    if (lo < hi) wanted.append(block.data() + (lo - pos), static_cast<std::size_t>(hi - lo));
    pos += n;
  }
  char extra;
  if (::read(fd, &extra, 1) > 0) {
    return Status::corruption(name + " grew while read");
  }
  if (sha.finishHex() != part.file->sha256) {
    return Status::corruption(name + " is corrupt: its SHA-256 does not match the checkpoint's");
  }
  std::uint64_t at = 0;
  for (std::size_t i = first_i; i <= last_i; ++i) {
    const std::uint64_t length = entries[i].second;
    out[static_cast<std::size_t>(part.file_start) + i - static_cast<std::size_t>(start)] =
        wanted.substr(static_cast<std::size_t>(at), static_cast<std::size_t>(length));
    at += length;
  }
  return Status::ok();
}

}  // namespace

Result<thrift::KeyedStateHandle> writeHeapKeyedState(const fs::path& base,
                                                     const std::string& relative_path,
                                                     int key_group_start,
                                                     const std::vector<std::string>& key_groups) {
  if (!isContainedRelativePath(relative_path)) {
    return Status::invalidArgument("heap keyed state file path '" + relative_path +
                                   "' must be relative and must not leave its directory");
  }
  if (key_groups.empty()) {
    return Status::invalidArgument("heap keyed state file " + relative_path +
                                   ": no key groups to write");
  }
  if (key_group_start < 0 ||
      static_cast<std::int64_t>(key_group_start) + static_cast<std::int64_t>(key_groups.size()) >
          std::numeric_limits<std::int32_t>::max()) {
    return Status::invalidArgument("heap keyed state file " + relative_path +
                                   ": invalid key-group start " + std::to_string(key_group_start));
  }
  const fs::path path = base / relative_path;
  const fs::path dir = path.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::ioError("cannot create directory " + dir.string() + ": " + ec.message());
  fs::path tmp = path;
  tmp += kTmpSuffix;

  thrift::StateFile file;
  file.path = relative_path;
  if (Status s = writeFile(tmp, key_group_start, key_groups, file.size, file.sha256); !s.isOk()) {
    fs::remove(tmp, ec);
    return s;
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return Status::ioError("cannot rename " + tmp.string() + " to " + path.string() + ": " +
                           ec.message());
  }
  if (Status s = fsyncDirectory(dir); !s.isOk()) return s;

  thrift::KeyedStateHandle handle;
  handle.keyGroupStart = key_group_start;
  handle.keyGroupEnd = key_group_start + static_cast<int>(key_groups.size()) - 1;
  handle.kind = thrift::KeyedStateKind::HEAP_FULL;
  handle.__set_privateFiles({std::move(file)});
  handle.__set_sharedFiles({});
  return handle;
}

Result<std::vector<std::string>> readHeapKeyedState(
    const fs::path& base, const std::vector<thrift::KeyedStateHandle>& handles, int start,
    int end) {
  if (end < start) return std::vector<std::string>{};
  std::vector<FilePart> parts;
  for (const auto& h : handles) {
    if (h.keyGroupStart > end || h.keyGroupEnd < start) continue;
    const std::string first_file =
        h.privateFiles.empty() ? std::string("(none)") : h.privateFiles.front().path;
    if (h.kind != thrift::KeyedStateKind::HEAP_FULL) {
      return Status::invalidArgument("keyed state handle for key groups [" +
                                     std::to_string(h.keyGroupStart) + ", " +
                                     std::to_string(h.keyGroupEnd) + "] with file " + first_file +
                                     " is not heap keyed state (HEAP_FULL)");
    }
    if (h.privateFiles.size() != 1 || !h.sharedFiles.empty() || h.keyGroupEnd < h.keyGroupStart ||
        h.keyGroupStart < 0) {
      return Status::corruption("heap keyed state handle for key groups [" +
                                std::to_string(h.keyGroupStart) + ", " +
                                std::to_string(h.keyGroupEnd) + "] with file " + first_file +
                                " is malformed (it needs one private file, no shared files and a "
                                "non-empty key-group range)");
    }
    if (!isContainedRelativePath(h.privateFiles.front().path)) {
      return Status::corruption("heap keyed state file path '" + h.privateFiles.front().path +
                                "' must be relative and must not leave its directory");
    }
    parts.push_back({&h.privateFiles.front(), h.keyGroupStart, h.keyGroupEnd,
                     std::max(start, h.keyGroupStart), std::min(end, h.keyGroupEnd)});
  }
  std::sort(parts.begin(), parts.end(),
            [](const FilePart& a, const FilePart& b) { return a.first < b.first; });
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].first <= parts[i - 1].last) {
      return Status::invalidArgument("heap keyed state files " + parts[i - 1].file->path + " and " +
                                     parts[i].file->path + " both hold key group " +
                                     std::to_string(parts[i].first));
    }
  }
  std::vector<std::string> out(static_cast<std::size_t>(end - start + 1));
  for (const auto& part : parts) {
    if (Status s = readPart(base, part, start, out); !s.isOk()) return s;
  }
  return out;
}

std::int64_t stateSize(const thrift::KeyedStateHandle& handle) {
  std::int64_t total = 0;
  for (const auto& f : handle.privateFiles)
    total += f.size;
  for (const auto& f : handle.sharedFiles)
    total += f.size;
  return total;
}

}  // namespace weir::engine
