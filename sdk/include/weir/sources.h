// Sources that ship with the SDK. Each parallel subtask runs its own copy and takes its share of
// the input by subtask index, so the union of all subtasks' output is the whole input exactly once.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weir/collector.h"
#include "weir/context.h"
#include "weir/task_api.h"

namespace weir {

inline constexpr std::uint64_t kUnbounded = std::numeric_limits<std::uint64_t>::max();

// Base classes for user sources; optional (any class with a matching pollNext works) but they
// document the contract. A copy runs per parallel subtask: open() tells it which one.
//   pollNext() emits zero or more records and says whether more may come.
template <class T>
class BoundedSource {
 public:
  virtual ~BoundedSource() = default;
  virtual void open(const RuntimeContext&) {}
  // Returns kEndOfInput once everything has been emitted.
  virtual SourceStatus pollNext(Collector<T>& out) = 0;
  virtual void close() {}
  bool bounded() const { return true; }
};

// A source that runs until the job is cancelled. pollNext returns kNothingAvailable when it has
// nothing right now; the task then backs off briefly instead of spinning.
template <class T>
class UnboundedSource {
 public:
  virtual ~UnboundedSource() = default;
  virtual void open(const RuntimeContext&) {}
  virtual SourceStatus pollNext(Collector<T>& out) = 0;
  virtual void close() {}
  bool bounded() const { return false; }
};

// How many records a source emits per poll: large enough to amortise the poll, small enough that
// the task checks for cancellation and flush deadlines often.
inline constexpr int kSourceRecordsPerPoll = 1024;

// Emits fn(i) for every index i in [0, count) (or forever when count is kUnbounded). Subtask s of p
// emits the indices congruent to s modulo p, in increasing order.
template <class T, class F>
class GeneratorSource {
 public:
  GeneratorSource(F fn, std::uint64_t count) : fn_(std::move(fn)), count_(count) {}

  void open(const RuntimeContext& ctx) {
    next_ = static_cast<std::uint64_t>(ctx.subtaskIndex());
    step_ = static_cast<std::uint64_t>(ctx.parallelism());
  }

  SourceStatus pollNext(Collector<T>& out) {
    // Locals, not members: a store of a record may alias the members and force a reload per record.
    std::uint64_t next = next_;
    const std::uint64_t step = step_;
    const std::uint64_t count = count_;
    std::size_t left = kSourceRecordsPerPoll;
    while (left > 0 && next < count) {
      std::size_t room = 0;
      std::int64_t* ts = nullptr;
      T* dst = out.reserve(room, ts);
      std::size_t k = std::min(room, left);
      const std::uint64_t remaining = (count - next - 1) / step + 1;
      if (remaining < k) k = static_cast<std::size_t>(remaining);
      for (std::size_t i = 0; i < k; ++i) {
        dst[i] = fn_(next);
        ts[i] = kNoTimestamp;
        next += step;
      }
      out.commitReserved(k);
      left -= k;
    }
    next_ = next;
    return next_ >= count_ ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

  bool bounded() const { return count_ != kUnbounded; }

 private:
  F fn_;
  std::uint64_t count_;
  std::uint64_t next_ = 0;
  std::uint64_t step_ = 1;
};

// Emits the elements of a collection; element i goes to subtask i mod parallelism.
template <class T>
class CollectionSource {
 public:
  explicit CollectionSource(std::shared_ptr<const std::vector<T>> items)
      : items_(std::move(items)) {}

  void open(const RuntimeContext& ctx) {
    next_ = static_cast<std::size_t>(ctx.subtaskIndex());
    step_ = static_cast<std::size_t>(ctx.parallelism());
  }

  SourceStatus pollNext(Collector<T>& out) {
    for (int i = 0; i < kSourceRecordsPerPoll && next_ < items_->size(); ++i) {
      out.collect((*items_)[next_]);
      next_ += step_;
    }
    return next_ >= items_->size() ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

 private:
  std::shared_ptr<const std::vector<T>> items_;
  std::size_t next_ = 0;
  std::size_t step_ = 1;
};

// Emits the lines of a text file (without line terminators); line i goes to subtask i mod
// parallelism. A file that cannot be read fails the task with the path and the reason.
class TextFileSource {
 public:
  explicit TextFileSource(std::string path) : path_(std::move(path)) {}
  TextFileSource(const TextFileSource& other) : path_(other.path_) {}

  void open(const RuntimeContext& ctx) {
    subtask_ = static_cast<std::uint64_t>(ctx.subtaskIndex());
    parallelism_ = static_cast<std::uint64_t>(ctx.parallelism());
    in_ = std::make_unique<std::ifstream>(path_);
    if (!*in_) {
      throw std::runtime_error("cannot open input file '" + path_ + "': " + std::strerror(errno));
    }
  }

  SourceStatus pollNext(Collector<std::string>& out) {
    for (int i = 0; i < kSourceRecordsPerPoll; ++i) {
      if (!std::getline(*in_, line_)) {
        if (in_->bad()) throw std::runtime_error("error reading '" + path_ + "'");
        return SourceStatus::kEndOfInput;
      }
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (line_no_++ % parallelism_ == subtask_) out.collect(line_);
    }
    return SourceStatus::kMoreAvailable;
  }

  void close() { in_.reset(); }

 private:
  std::string path_;
  std::unique_ptr<std::ifstream> in_;
  std::string line_;
  std::uint64_t line_no_ = 0;
  std::uint64_t subtask_ = 0;
  std::uint64_t parallelism_ = 1;
};

}  // namespace weir
