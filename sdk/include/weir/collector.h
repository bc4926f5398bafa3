// Record batches and collectors: how typed records move between chained operators.
//
// An operator pushes records into its Collector; the collector fills a fixed-capacity batch and
// hands full batches to the downstream operator by one virtual call per batch, not per record.
// Every operator flushes its collector before returning from a call, so records never wait in a
// batch between calls (chaining adds no latency). Batch slots are default-constructed once and
// reused: assigning into a slot reuses its capacity (e.g. a std::string's heap buffer), so
// steady-state processing allocates nothing.
//
// Every record carries an event timestamp (kNoTimestamp when it has none) in a parallel array of
// the batch. A collector stamps what it collects with its current timestamp, which the operator
// sets to the timestamp of the record being processed (so map, flatMap and process keep their
// input's timestamp, as in Flink), to a timer's time in onTimer, or to a window's end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "weir/task_api.h"

namespace weir {

template <class T>
class RecordBatch {
 public:
  static_assert(std::is_default_constructible_v<T> && std::is_copy_assignable_v<T>,
                "weir record types must be default-constructible and copy-assignable (as Flink "
                "POJOs must be)");

  // Capacity adapts to the record size: large enough to amortise the per-batch call, small enough
  // to stay in cache.
  static constexpr std::size_t kCapacity = sizeof(T) >= 1024 ? 16 : (sizeof(T) >= 128 ? 64 : 256);

  RecordBatch()
      : slots_(std::make_unique<T[]>(kCapacity)),
        timestamps_(std::make_unique<std::int64_t[]>(kCapacity)) {}
  RecordBatch(const RecordBatch&) = delete;
  RecordBatch& operator=(const RecordBatch&) = delete;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == kCapacity; }
  const T& operator[](std::size_t i) const { return slots_[i]; }
  T& operator[](std::size_t i) { return slots_[i]; }
  const T* begin() const { return slots_.get(); }
  const T* end() const { return slots_.get() + size_; }
  std::int64_t timestamp(std::size_t i) const { return timestamps_[i]; }
  const std::int64_t* timestamps() const { return timestamps_.get(); }

  // The next free slot, to be filled in place and then committed with its timestamp.
  T& nextSlot() { return slots_[size_]; }
  void commit(std::int64_t timestamp) { timestamps_[size_++] = timestamp; }
  // Bulk access for SDK code that fills slots through a local cursor (see Collector::reserve).
  T* data() { return slots_.get(); }
  std::int64_t* timestampData() { return timestamps_.get(); }
  void setSize(std::size_t n) { size_ = n; }
  void clear() { size_ = 0; }

 private:
  std::unique_ptr<T[]> slots_;
  std::unique_ptr<std::int64_t[]> timestamps_;
  std::size_t size_ = 0;
};

// Untyped base so the SDK can wire operators whose types it only knows inside typed code. Besides
// typed batches, a consumer receives the stream's control elements in order with them.
class BatchConsumerBase {
 public:
  virtual ~BatchConsumerBase() = default;
  virtual void consumeWatermark(std::int64_t watermark) = 0;
  virtual void consumeWatermarkStatus(bool idle) = 0;
};

// The typed input port of an operator (or of a network writer). The batch is only borrowed.
template <class T>
class BatchConsumer : public BatchConsumerBase {
 public:
  virtual void consume(const RecordBatch<T>& batch) = 0;
};

// Where a user function emits records (flatMap, process, sources).
template <class T>
class Collector final {
 public:
  Collector() = default;
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Emits `value` with the collector's current timestamp.
  void collect(const T& value) { collectWithTimestamp(value, timestamp_); }
  void collect(T&& value) { collectWithTimestamp(std::move(value), timestamp_); }
  // Emits `value` with an explicit event timestamp (sources that know their records' time).
  void collectWithTimestamp(const T& value, std::int64_t timestamp) {
    if (batch_.full()) flush();
    batch_.nextSlot() = value;
    batch_.commit(timestamp);
  }
  void collectWithTimestamp(T&& value, std::int64_t timestamp) {
    if (batch_.full()) flush();
    batch_.nextSlot() = std::move(value);
    batch_.commit(timestamp);
  }

  // The timestamp collect() stamps records with.
  void setTimestamp(std::int64_t timestamp) { timestamp_ = timestamp; }
  std::int64_t timestamp() const { return timestamp_; }

  // In a source's pollNext: how many records the task would like this poll to emit at most (at
  // least one), about a millisecond's worth of the chain's work as measured on earlier polls. A
  // source that stops there (returning kMoreAvailable) lets checkpoint triggers, timers and
  // back-pressure reach its task sooner when what follows it in the chain is slow; it may emit
  // more.
  std::size_t pollBudget() const { return poll_budget_; }

  // --- engine-internal ---
  void setPollBudget(std::size_t n) { poll_budget_ = n > 0 ? n : 1; }
  void bind(BatchConsumer<T>* downstream, VertexCounters* counters) {
    downstream_ = downstream;
    counters_ = counters;
  }
  void flush() {
    if (batch_.empty()) return;
    counters_->addOut(batch_.size());
    downstream_->consume(batch_);
    batch_.clear();
  }
  std::size_t pending() const { return batch_.size(); }
  // Bulk emission for SDK operators and sources: the free slots of the current batch (at least
  // one; a full batch is flushed first) and their timestamps. Fill dst[0..k) and ts[0..k) in
  // place, then publish with commitReserved(k). Keeping the cursor in locals matters: a store of a
  // record may alias the batch's size and slot pointer (e.g. int64 records vs size_t), which
  // otherwise forces a reload and a store of both per record.
  T* reserve(std::size_t& room, std::int64_t*& ts) {
    if (batch_.full()) flush();
    room = RecordBatch<T>::kCapacity - batch_.size();
    ts = batch_.timestampData() + batch_.size();
    return batch_.data() + batch_.size();
  }
  void commitReserved(std::size_t k) { batch_.setSize(batch_.size() + k); }

 private:
  RecordBatch<T> batch_;
  BatchConsumer<T>* downstream_ = nullptr;
  VertexCounters* counters_ = nullptr;
  std::int64_t timestamp_ = kNoTimestamp;
  std::size_t poll_budget_ = std::numeric_limits<std::size_t>::max();
};

}  // namespace weir
