// Sources that ship with the SDK. Each parallel subtask runs its own copy and takes its share of
// the input by subtask index, so the union of all subtasks' output is the whole input exactly once.
//
// The generator, collection and text file sources keep their position in operator list state
// named "offset" (kSourceOffsetState; see weir/detail/operator_state.h): one element, updated
// after every poll, so that a checkpoint taken between polls holds where the subtask stands. The
// generator and collection sources store the index of the next element this subtask emits, the
// text file source the number of lines it has read. A subtask restored with such a position
// resumes there; restoring at another parallelism is refused with a clear error.
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
#include "weir/state.h"
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

// The operator list state in which the built-in sources keep their position.
inline constexpr const char* kSourceOffsetState = "offset";

namespace source_detail {

// The position a built-in source resumes from, registering its offset state: the restored
// element, or `fresh` when the subtask starts from scratch.
inline std::uint64_t openOffset(const RuntimeContext& ctx, ListState<std::uint64_t>*& state,
                                std::uint64_t fresh) {
  state = &ctx.getOperatorListState(ListStateDescriptor<std::uint64_t>(kSourceOffsetState));
  const std::vector<std::uint64_t>& restored = state->get();
  if (restored.size() == 1) return restored.front();
  if (restored.empty() && !ctx.operatorStateStore().isRestored()) return fresh;
  throw std::runtime_error("source subtask " + std::to_string(ctx.subtaskIndex()) + " of " +
                           std::to_string(ctx.parallelism()) + " was restored with " +
                           std::to_string(restored.size()) +
                           " positions instead of one: changing the parallelism of this source "
                           "is not supported");
}

// An index-striding source's restored position must be one of this subtask's indices.
inline void checkStride(const RuntimeContext& ctx, std::uint64_t next) {
  const auto subtask = static_cast<std::uint64_t>(ctx.subtaskIndex());
  const auto step = static_cast<std::uint64_t>(ctx.parallelism());
  if (next < subtask || (next - subtask) % step != 0) {
    throw std::runtime_error("source subtask " + std::to_string(subtask) + " of " +
                             std::to_string(step) + " cannot resume at index " +
                             std::to_string(next) +
                             ", which belongs to another subtask: changing the parallelism of "
                             "this source is not supported");
  }
}

}  // namespace source_detail

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
    next_ = source_detail::openOffset(ctx, offset_, static_cast<std::uint64_t>(ctx.subtaskIndex()));
    source_detail::checkStride(ctx, next_);
    step_ = static_cast<std::uint64_t>(ctx.parallelism());
    savePosition();
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
    savePosition();
    return next_ >= count_ ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

  bool bounded() const { return count_ != kUnbounded; }

 private:
  void savePosition() {
    position_[0] = next_;
    offset_->update(position_);
  }

  F fn_;
  std::uint64_t count_;
  std::uint64_t next_ = 0;
  std::uint64_t step_ = 1;
  ListState<std::uint64_t>* offset_ = nullptr;
  std::vector<std::uint64_t> position_ = {0};
};

// Emits the elements of a collection; element i goes to subtask i mod parallelism.
template <class T>
class CollectionSource {
 public:
  explicit CollectionSource(std::shared_ptr<const std::vector<T>> items)
      : items_(std::move(items)) {}

  void open(const RuntimeContext& ctx) {
    const std::uint64_t next =
        source_detail::openOffset(ctx, offset_, static_cast<std::uint64_t>(ctx.subtaskIndex()));
    source_detail::checkStride(ctx, next);
    next_ = static_cast<std::size_t>(next);
    step_ = static_cast<std::size_t>(ctx.parallelism());
    savePosition();
  }

  SourceStatus pollNext(Collector<T>& out) {
    for (int i = 0; i < kSourceRecordsPerPoll && next_ < items_->size(); ++i) {
      out.collect((*items_)[next_]);
      next_ += step_;
    }
    savePosition();
    return next_ >= items_->size() ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

 private:
  void savePosition() {
    position_[0] = next_;
    offset_->update(position_);
  }

  std::shared_ptr<const std::vector<T>> items_;
  std::size_t next_ = 0;
  std::size_t step_ = 1;
  ListState<std::uint64_t>* offset_ = nullptr;
  std::vector<std::uint64_t> position_ = {0};
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
    const std::uint64_t resume_at = source_detail::openOffset(ctx, offset_, 0);
    while (line_no_ < resume_at) {
      if (!std::getline(*in_, line_)) {
        throw std::runtime_error("cannot resume '" + path_ + "' at line " +
                                 std::to_string(resume_at) + ": it has only " +
                                 std::to_string(line_no_) + " lines");
      }
      ++line_no_;
    }
    savePosition();
  }

  SourceStatus pollNext(Collector<std::string>& out) {
    for (int i = 0; i < kSourceRecordsPerPoll; ++i) {
      if (!std::getline(*in_, line_)) {
        if (in_->bad()) throw std::runtime_error("error reading '" + path_ + "'");
        savePosition();
        return SourceStatus::kEndOfInput;
      }
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (line_no_++ % parallelism_ == subtask_) out.collect(line_);
    }
    savePosition();
    return SourceStatus::kMoreAvailable;
  }

  void close() { in_.reset(); }

 private:
  void savePosition() {
    position_[0] = line_no_;
    offset_->update(position_);
  }

  std::string path_;
  std::unique_ptr<std::ifstream> in_;
  std::string line_;
  std::uint64_t line_no_ = 0;
  std::uint64_t subtask_ = 0;
  std::uint64_t parallelism_ = 1;
  ListState<std::uint64_t>* offset_ = nullptr;
  std::vector<std::uint64_t> position_ = {0};
};

}  // namespace weir
