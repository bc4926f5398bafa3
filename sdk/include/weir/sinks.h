// Sinks that ship with the SDK.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "weir/context.h"
#include "weir/format.h"

namespace weir {

// Prints every record as a line on standard output, formatted with weir/format.h. When the sink
// runs with parallelism above 1, each line is prefixed with "<subtask index + 1>> " as Flink does.
// Lines are written one batch at a time, so lines of different subtasks never interleave mid-line.
template <class T>
class PrintSink {
 public:
  void open(const RuntimeContext& ctx) {
    if (ctx.parallelism() > 1) prefix_ = std::to_string(ctx.subtaskIndex() + 1) + "> ";
  }
  void invoke(const T& v) {
    buffer_ += prefix_;
    appendFormatted(buffer_, v);
    buffer_ += '\n';
  }
  void flushBatch() {
    if (buffer_.empty()) return;
    std::fwrite(buffer_.data(), 1, buffer_.size(), stdout);
    std::fflush(stdout);
    buffer_.clear();
  }
  void close() { flushBatch(); }

 private:
  std::string prefix_;
  std::string buffer_;
};

// Collects every record for inspection by a test in the same process. Copies of one CollectSink
// (one per parallel subtask) share the results; each subtask appends to its own list without locks
// and publishes it on close.
template <class T>
class CollectSink {
 public:
  CollectSink() : shared_(std::make_shared<Shared>()) {}
  CollectSink(const CollectSink& other) : shared_(other.shared_) {}
  CollectSink& operator=(const CollectSink& other) {
    shared_ = other.shared_;
    local_.clear();
    return *this;
  }

  void invoke(const T& v) { local_.push_back(v); }
  void close() {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->results.insert(shared_->results.end(), local_.begin(), local_.end());
    local_.clear();
  }

  // Everything collected by subtasks that have closed, in the order they closed.
  std::vector<T> results() const {
    std::lock_guard<std::mutex> lock(shared_->mu);
    return shared_->results;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->results.clear();
  }

 private:
  struct Shared {
    mutable std::mutex mu;
    std::vector<T> results;
  };
  std::shared_ptr<Shared> shared_;
  std::vector<T> local_;
};

}  // namespace weir
