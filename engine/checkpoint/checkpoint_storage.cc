#include "checkpoint/checkpoint_storage.h"

#include <fcntl.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <system_error>

#include "common/sha256.h"

namespace weir::engine {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFileScheme = "file://";
constexpr std::string_view kTmpSuffix = ".tmp";
constexpr std::string_view kCheckpointPrefix = "chk-";

Status errnoStatus(const std::string& what, const fs::path& path) {
  return Status::ioError(what + " " + path.string() + ": " + std::strerror(errno));
}

Status validateJobId(const std::string& job_id) {
  if (job_id.empty() || job_id == "." || job_id == ".." || job_id.find('/') != std::string::npos ||
      job_id.find('\0') != std::string::npos) {
    return Status::invalidArgument("invalid job id '" + job_id +
                                   "' for checkpoint storage (must be one path component)");
  }
  return Status::ok();
}

// A relative path that stays inside its base directory.
bool isContainedRelativePath(const std::string& p) {
  if (p.empty()) return false;
  const fs::path path(p);
  if (path.is_absolute()) return false;
  return std::none_of(path.begin(), path.end(), [](const fs::path& c) { return c == ".."; });
}

template <class Fn>
void forEachStateFile(const thrift::CheckpointMetadata& md, Fn&& fn) {
  for (const auto& op : md.operators) {
    for (const auto& st : op.subtasks) {
      for (const auto& handle : st.keyed) {
        for (const auto& f : handle.privateFiles)
          fn(f, false);
        for (const auto& f : handle.sharedFiles)
          fn(f, true);
      }
      for (const auto& f : st.inputChannelState)
        fn(f, false);
      for (const auto& f : st.outputChannelState)
        fn(f, false);
    }
  }
}

Status validateFilePaths(const thrift::CheckpointMetadata& md) {
  Status status;
  forEachStateFile(md, [&](const thrift::StateFile& f, bool) {
    if (status.isOk() && !isContainedRelativePath(f.path)) {
      status = Status::invalidArgument("state file path '" + f.path +
                                       "' must be relative and must not leave its directory");
    }
  });
  return status;
}

void appendLittleEndian64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t readLittleEndian64(std::string_view bytes) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

Status fsyncPath(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return errnoStatus("cannot open for fsync", path);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) return errnoStatus("cannot fsync", path);
  return Status::ok();
}

Status writeFileDurably(const fs::path& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errnoStatus("cannot create", path);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const Status s = errnoStatus("cannot write", path);
      ::close(fd);
      return s;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const Status s = errnoStatus("cannot fsync", path);
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return errnoStatus("cannot close", path);
  return Status::ok();
}

Status createDirectories(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::ioError("cannot create directory " + dir.string() + ": " + ec.message());
  return Status::ok();
}

std::string randomHex(std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string out;
  for (std::size_t i = 0; i < digits; ++i)
    out.push_back(kHex[rd() & 0xf]);
  return out;
}

}  // namespace

Result<fs::path> parseCheckpointUri(std::string_view uri) {
  std::string_view p = uri;
  if (p.starts_with(kFileScheme)) {
    p.remove_prefix(kFileScheme.size());
    if (!p.starts_with('/')) {
      return Status::invalidArgument("checkpoint storage URI '" + std::string(uri) +
                                     "' must name an absolute path (file:///abs/path)");
    }
  } else if (const auto colon = p.find("://"); colon != std::string_view::npos) {
    return Status::invalidArgument("checkpoint storage URI '" + std::string(uri) +
                                   "' has unsupported scheme '" + std::string(p.substr(0, colon)) +
                                   "' (only file:// is supported)");
  }
  if (p.empty() || !p.starts_with('/')) {
    return Status::invalidArgument("checkpoint storage path '" + std::string(uri) +
                                   "' must be absolute (file:///abs/path or /abs/path)");
  }
  fs::path path = fs::path(p).lexically_normal();
  if (!path.has_filename() && path != path.root_path()) path = path.parent_path();
  return path;
}

std::string encodeCheckpointMetadata(const thrift::CheckpointMetadata& metadata) {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  apache::thrift::protocol::TCompactProtocol protocol(buffer);
  metadata.write(&protocol);
  std::string out = buffer->getBufferAsString();
  const std::string digest = sha256Hex(out);
  const uint64_t length = out.size();
  out.append(kMetadataTrailerMagic);
  appendLittleEndian64(out, length);
  out.append(digest);
  return out;
}

Result<thrift::CheckpointMetadata> decodeCheckpointMetadata(std::string_view bytes,
                                                            const std::string& file) {
  const std::string prefix = "checkpoint metadata " + file + " ";
  if (bytes.size() < kMetadataTrailerSize) {
    return Status::corruption(prefix + "is truncated (" + std::to_string(bytes.size()) +
                              " bytes, shorter than its " + std::to_string(kMetadataTrailerSize) +
                              "-byte trailer)");
  }
  const std::string_view trailer = bytes.substr(bytes.size() - kMetadataTrailerSize);
  if (trailer.substr(0, kMetadataTrailerMagic.size()) != kMetadataTrailerMagic) {
    return Status::corruption(prefix + "has no valid trailer (truncated or not a Weir checkpoint)");
  }
  const uint64_t length = readLittleEndian64(trailer.substr(8, 8));
  const std::size_t payload_size = bytes.size() - kMetadataTrailerSize;
  if (length != payload_size) {
    return Status::corruption(prefix + "is truncated or corrupt: trailer records " +
                              std::to_string(length) + " payload bytes, file holds " +
                              std::to_string(payload_size));
  }
  const std::string_view payload = bytes.substr(0, payload_size);
  const std::string expected(trailer.substr(16));
  if (sha256Hex(payload) != expected) {
    return Status::corruption(prefix + "is corrupt: SHA-256 of its contents does not match");
  }
  try {
    auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(const_cast<char*>(payload.data())),
        static_cast<uint32_t>(payload.size()));
    apache::thrift::protocol::TCompactProtocol protocol(buffer);
    thrift::CheckpointMetadata md;
    md.read(&protocol);
    if (md.formatVersion > kCheckpointFormatVersion) {
      return Status::incompatible(prefix + "has format version " +
                                  std::to_string(md.formatVersion) + ", this build reads up to " +
                                  std::to_string(kCheckpointFormatVersion));
    }
    return md;
  } catch (const std::exception& e) {
    return Status::corruption(prefix + "cannot be decoded: " + e.what());
  }
}

Status writeMetadataFile(const fs::path& dir, const thrift::CheckpointMetadata& metadata) {
  if (Status s = validateFilePaths(metadata); !s) return s;
  const fs::path tmp = dir / (std::string(kMetadataFileName) + std::string(kTmpSuffix));
  const fs::path final_path = dir / kMetadataFileName;
  if (Status s = writeFileDurably(tmp, encodeCheckpointMetadata(metadata)); !s) return s;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return errnoStatus("cannot rename " + tmp.string() + " to", final_path);
  }
  return fsyncPath(dir, true);
}

Result<thrift::CheckpointMetadata> readMetadataFile(const fs::path& dir) {
  const fs::path path = dir / kMetadataFileName;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return Status::notFound("checkpoint metadata " + path.string() + " does not exist");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::ioError("cannot open checkpoint metadata " + path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::ioError("cannot read checkpoint metadata " + path.string());
  return decodeCheckpointMetadata(bytes, path.string());
}

Status verifyStateFiles(const fs::path& base, const thrift::CheckpointMetadata& metadata) {
  Status status;
  forEachStateFile(metadata, [&](const thrift::StateFile& f, bool) {
    if (!status.isOk()) return;
    if (!isContainedRelativePath(f.path)) {
      status = Status::corruption("state file path '" + f.path + "' leaves " + base.string());
      return;
    }
    const fs::path p = base / f.path;
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (ec) {
      status = Status::notFound("state file " + p.string() + " is missing: " + ec.message());
    } else if (static_cast<int64_t>(size) != f.size) {
      status = Status::corruption("state file " + p.string() + " has " + std::to_string(size) +
                                  " bytes, metadata records " + std::to_string(f.size));
    }
  });
  return status;
}

Result<CheckpointStorage> CheckpointStorage::open(std::string_view uri) {
  auto root = parseCheckpointUri(uri);
  if (!root) return root.status();
  return CheckpointStorage(std::move(*root));
}

fs::path CheckpointStorage::checkpointDir(const std::string& job_id, int64_t id) const {
  return jobDir(job_id) / (std::string(kCheckpointPrefix) + std::to_string(id));
}

fs::path CheckpointStorage::sharedDir(const std::string& job_id) const {
  return jobDir(job_id) / "shared";
}

fs::path CheckpointStorage::taskOwnedDir(const std::string& job_id) const {
  return jobDir(job_id) / "taskowned";
}

Result<fs::path> CheckpointStorage::createCheckpointDir(const std::string& job_id, int64_t id) {
  if (Status s = validateJobId(job_id); !s) return s;
  if (id < 0) return Status::invalidArgument("negative checkpoint id " + std::to_string(id));
  for (const fs::path& d : {sharedDir(job_id), taskOwnedDir(job_id)}) {
    if (Status s = createDirectories(d); !s) return s;
  }
  const fs::path dir = checkpointDir(job_id, id);
  std::error_code ec;
  if (fs::exists(dir / kMetadataFileName, ec)) {
    return Status::invalidArgument("checkpoint " + std::to_string(id) + " of job " + job_id +
                                   " already exists in " + dir.string());
  }
  if (Status s = createDirectories(dir); !s) return s;
  if (Status s = fsyncPath(jobDir(job_id), true); !s) return s;
  return dir;
}

Status CheckpointStorage::writeMetadata(const thrift::CheckpointMetadata& metadata) {
  if (Status s = validateJobId(metadata.jobId); !s) return s;
  const fs::path dir = checkpointDir(metadata.jobId, metadata.checkpointId);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::notFound("checkpoint directory " + dir.string() + " does not exist");
  }
  return writeMetadataFile(dir, metadata);
}

Result<thrift::CheckpointMetadata> CheckpointStorage::loadMetadata(const std::string& job_id,
                                                                   int64_t id,
                                                                   bool verify_files) const {
  if (Status s = validateJobId(job_id); !s) return s;
  const fs::path dir = checkpointDir(job_id, id);
  auto md = readMetadataFile(dir);
  if (!md) return md.status();
  if (md->jobId != job_id || md->checkpointId != id) {
    return Status::corruption("checkpoint metadata " + (dir / kMetadataFileName).string() +
                              " names checkpoint " + std::to_string(md->checkpointId) + " of job " +
                              md->jobId + ", expected checkpoint " + std::to_string(id) +
                              " of job " + job_id);
  }
  if (verify_files) {
    if (Status s = verifyStateFiles(jobDir(job_id), *md); !s) return s;
  }
  return md;
}

Result<std::vector<CompletedCheckpoint>> CheckpointStorage::listCompleted(
    const std::string& job_id) const {
  if (Status s = validateJobId(job_id); !s) return s;
  std::vector<CompletedCheckpoint> out;
  const fs::path job_dir = jobDir(job_id);
  std::error_code ec;
  if (!fs::exists(job_dir, ec)) return out;
  fs::directory_iterator it(job_dir, ec);
  if (ec) return Status::ioError("cannot list " + job_dir.string() + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(kCheckpointPrefix) || !it->is_directory(ec)) continue;
    const std::string_view digits = std::string_view(name).substr(kCheckpointPrefix.size());
    int64_t id = 0;
    const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (err != std::errc() || end != digits.data() + digits.size() || digits.empty()) continue;
    auto md = loadMetadata(job_id, id, false);
    if (!md) continue;
    out.push_back({id, it->path(), std::move(*md)});
  }
  if (ec) return Status::ioError("cannot list " + job_dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
  return out;
}

Status CheckpointStorage::deleteCheckpoint(const std::string& job_id, int64_t id) {
  if (Status s = validateJobId(job_id); !s) return s;
  const fs::path dir = checkpointDir(job_id, id);
  std::error_code ec;
  // `_metadata` first: a crash half-way leaves a directory that no longer counts as completed.
  fs::remove(dir / kMetadataFileName, ec);
  if (ec)
    return Status::ioError("cannot delete " + (dir / kMetadataFileName).string() + ": " +
                           ec.message());
  fs::remove_all(dir, ec);
  if (ec) return Status::ioError("cannot delete " + dir.string() + ": " + ec.message());
  return Status::ok();
}

Result<fs::path> createSavepointDir(std::string_view target_uri, const std::string& job_id) {
  auto target = parseCheckpointUri(target_uri);
  if (!target) return target.status();
  if (Status s = validateJobId(job_id); !s) return s;
  if (Status s = createDirectories(*target); !s) return s;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const fs::path dir = *target / ("savepoint-" + job_id.substr(0, 6) + "-" + randomHex(12));
    std::error_code ec;
    if (fs::create_directory(dir, ec)) {
      if (Status s = fsyncPath(*target, true); !s) return s;
      return dir;
    }
    if (ec) return Status::ioError("cannot create directory " + dir.string() + ": " + ec.message());
  }
  return Status::ioError("cannot find a free savepoint directory name in " + target->string());
}

Status writeSavepointMetadata(const fs::path& savepoint_dir,
                              const thrift::CheckpointMetadata& metadata) {
  if (!metadata.isSavepoint) {
    return Status::invalidArgument("savepoint metadata must have isSavepoint set");
  }
  // Self-contained: every file lies inside the savepoint's directory. RocksDB table files keep
  // their place among the handle's shared files (their names say which table file they are), but
  // they are the savepoint's own copies.
  Status status;
  forEachStateFile(metadata, [&](const thrift::StateFile& f, bool) {
    const fs::path p(f.path);
    bool inside = !p.empty() && p.is_relative();
    for (const auto& part : p) {
      if (part == "..") inside = false;
    }
    if (status.isOk() && !inside) {
      status = Status::invalidArgument("savepoint references '" + f.path +
                                       "' outside its directory; a savepoint must be "
                                       "self-contained");
    }
  });
  if (!status) return status;
  return writeMetadataFile(savepoint_dir, metadata);
}

Result<thrift::CheckpointMetadata> loadSavepoint(std::string_view uri, bool verify_files) {
  auto path = parseCheckpointUri(uri);
  if (!path) return path.status();
  fs::path dir = *path;
  if (dir.filename() == kMetadataFileName) dir = dir.parent_path();
  auto md = readMetadataFile(dir);
  if (!md) return md.status();
  if (!md->isSavepoint) {
    return Status::invalidArgument((dir / kMetadataFileName).string() +
                                   " is a checkpoint, not a savepoint");
  }
  if (verify_files) {
    if (Status s = verifyStateFiles(dir, *md); !s) return s;
  }
  return md;
}

}  // namespace weir::engine
