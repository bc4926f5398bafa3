// An exactly-once file sink: each record becomes one line (formatted with weir/format.h), and a
// line is visible in the output directory exactly once, even across failures and restores.
//
//   stream.addSink(weir::ExactlyOnceFileSink<Event>("/data/out"), "Events to files");
//
// Built on TwoPhaseCommitSink (weir/two_phase_commit.h); one transaction is one file. Each subtask
// writes its own files:
//   <dir>/.part-<subtask>-<token>-<seq>.inprogress   being written, or pre-committed (hidden)
//   <dir>/part-<subtask>-<checkpoint id>             committed, for the checkpoint it belongs to
//   <dir>/part-<subtask>-final                       committed at the end without checkpointing
// <token> is random per run of the sink, so in-progress names are never reused across restarts; a
// committed name that exists already (left by an earlier job) gets a suffix "-1", "-2", ...
// instead of being replaced. Readers should skip names starting with '.'.
//
// pre-commit flushes and fsyncs the file; commit renames it atomically to its final name and
// fsyncs the directory. A transaction without records creates no file. A restored transaction
// whose file grew after its pre-commit is cut back to its pre-committed size before it commits.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>

#include "weir/context.h"
#include "weir/format.h"
#include "weir/serde.h"
#include "weir/two_phase_commit.h"

namespace weir {

// One file of an ExactlyOnceFileSink.
struct FileSinkTransaction {
  std::string in_progress_path;
  std::string final_path;  // set by the pre-commit; empty before
  std::uint64_t size = 0;  // bytes written into the file
  WEIR_SERDE_FIELDS(in_progress_path, final_path, size)
};

namespace detail {

[[noreturn]] inline void throwFileError(const std::string& what, const std::string& path, int err) {
  throw std::runtime_error("exactly-once file sink: " + what + " '" + path +
                           "': " + std::strerror(err));
}

inline void fsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throwFileError("cannot open", path, errno);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throwFileError("cannot fsync", path, err);
  }
  ::close(fd);
}

inline void fsyncDirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  fsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

}  // namespace detail

template <class T>
class ExactlyOnceFileSink : public TwoPhaseCommitSink<T, FileSinkTransaction> {
  using Base = TwoPhaseCommitSink<T, FileSinkTransaction>;

 public:
  using Txn = FileSinkTransaction;

  explicit ExactlyOnceFileSink(std::string dir) : dir_(std::move(dir)) {}
  // A copy is a fresh sink for the same directory (copies are made before open).
  ExactlyOnceFileSink(const ExactlyOnceFileSink& other) : Base(other), dir_(other.dir_) {}
  ExactlyOnceFileSink& operator=(const ExactlyOnceFileSink&) = delete;
  ~ExactlyOnceFileSink() override { closeFile(); }

  const std::string& directory() const { return dir_; }

  void openSink(const RuntimeContext& ctx) override {
    subtask_ = ctx.subtaskIndex();
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) {
      throw std::runtime_error("exactly-once file sink: cannot create directory '" + dir_ +
                               "': " + ec.message());
    }
    std::random_device rd;
    const auto now =
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    const std::uint64_t bits =
        ((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ now) & 0xffffffffffffull;
    char token[16];
    std::snprintf(token, sizeof token, "%012llx", static_cast<unsigned long long>(bits));
    token_ = token;
  }

  void closeSink() override { closeFile(); }

  Txn beginTransaction() override {
    Txn txn;
    txn.in_progress_path = dir_ + "/.part-" + std::to_string(subtask_) + "-" + token_ + "-" +
                           std::to_string(next_seq_++) + ".inprogress";
    return txn;
  }

  void invoke(Txn& txn, const T& value) override {
    if (fd_ < 0 || open_path_ != txn.in_progress_path) openFile(txn.in_progress_path);
    const std::size_t before = buffer_.size();
    appendFormatted(buffer_, value);
    buffer_ += '\n';
    txn.size += buffer_.size() - before;
    if (buffer_.size() >= kBufferBytes) flushBuffer();
  }

  void preCommit(Txn& txn) override {
    if (fd_ < 0 || open_path_ != txn.in_progress_path) return;  // no records: no file
    flushBuffer();
    if (::fsync(fd_) != 0) detail::throwFileError("cannot fsync", open_path_, errno);
    closeFile();
    detail::fsyncDirectoryOf(txn.in_progress_path);
    const std::int64_t checkpoint = this->preCommitCheckpointId();
    txn.final_path = uniqueFinalPath(
        dir_ + "/part-" + std::to_string(subtask_) + "-" +
        (checkpoint == kNoCheckpoint ? std::string("final") : std::to_string(checkpoint)));
  }

  void commit(const Txn& txn) override {
    if (txn.size == 0) return;  // nothing was written
    if (txn.final_path.empty()) {
      throw std::logic_error("exactly-once file sink: committing '" + txn.in_progress_path +
                             "', which was not pre-committed");
    }
    struct stat st {};
    if (::stat(txn.in_progress_path.c_str(), &st) != 0) {
      if (errno != ENOENT) detail::throwFileError("cannot stat", txn.in_progress_path, errno);
      if (std::filesystem::exists(txn.final_path)) return;  // committed before
      throw std::runtime_error(
          "exactly-once file sink: data lost: neither the pre-committed file '" +
          txn.in_progress_path + "' nor its committed name '" + txn.final_path + "' exists");
    }
    const auto on_disk = static_cast<std::uint64_t>(st.st_size);
    if (on_disk < txn.size) {
      throw std::runtime_error("exactly-once file sink: data lost: '" + txn.in_progress_path +
                               "' has " + std::to_string(on_disk) + " bytes, " +
                               std::to_string(txn.size) + " were pre-committed");
    }
    if (on_disk > txn.size) {
      // Written after the pre-commit: not part of the transaction.
      if (::truncate(txn.in_progress_path.c_str(), static_cast<off_t>(txn.size)) != 0) {
        detail::throwFileError("cannot truncate", txn.in_progress_path, errno);
      }
      detail::fsyncPath(txn.in_progress_path, O_WRONLY);
    }
    if (::rename(txn.in_progress_path.c_str(), txn.final_path.c_str()) != 0) {
      detail::throwFileError("cannot rename", txn.in_progress_path, errno);
    }
    detail::fsyncDirectoryOf(txn.final_path);
  }

  void abort(const Txn& txn) override {
    if (fd_ >= 0 && open_path_ == txn.in_progress_path) closeFile();
    if (::unlink(txn.in_progress_path.c_str()) != 0 && errno != ENOENT) {
      detail::throwFileError("cannot remove", txn.in_progress_path, errno);
    }
  }

 private:
  static constexpr std::size_t kBufferBytes = 64 * 1024;

  void openFile(const std::string& path) {
    closeFile();
    // O_EXCL: an in-progress name is never reused; an existing file means two writers.
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) detail::throwFileError("cannot create", path, errno);
    open_path_ = path;
  }

  void flushBuffer() {
    const char* p = buffer_.data();
    std::size_t left = buffer_.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        detail::throwFileError("cannot write", open_path_, errno);
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

  // Drops unflushed bytes: only a pre-commit makes a file's content count.
  void closeFile() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    open_path_.clear();
    buffer_.clear();
  }

  static std::string uniqueFinalPath(const std::string& stem) {
    std::string path = stem;
    for (int k = 1; std::filesystem::exists(path); ++k)
      path = stem + "-" + std::to_string(k);
    return path;
  }

  std::string dir_;
  int subtask_ = 0;
  std::string token_;
  std::uint64_t next_seq_ = 0;
  int fd_ = -1;
  std::string open_path_;
  std::string buffer_;
};

}  // namespace weir
