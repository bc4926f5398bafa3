// Fixed-size memory segments for data buffers, and bounded pools of them.
//
// Every producer output (result partition) draws its buffers from its own bounded pool. A buffer
// returns to its pool when the consumer has decoded it. A producer that finds its pool empty waits:
// that wait is back-pressure, and the pool's bound is what keeps memory bounded however slow a
// consumer is. Pools allocate segments lazily up to their bound and keep them until destroyed.
//
// Overdraft: a producer waits for a free buffer between records (awaitAvailable), but one record
// may need more than one buffer. Rather than block inside that record, where neither checkpoint
// barriers nor mail reach it, it may take up to `max_overdraft` segments beyond the bound
// (tryRequestOverdraft). The pool counts as available again only once it is back under its bound.
//
// Thread-safety: request/recycle may be called from any thread (one mutex per pool, taken once per
// buffer, never per record).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace weir::engine {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(std::size_t segment_size, std::size_t max_segments, std::size_t max_overdraft = 0);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A free segment within the bound, or null at once when none is free.
  std::uint8_t* tryRequest();
  // A segment beyond the bound (see Overdraft above), or null at once when the overdraft is used up
  // too. For a record already under way when the pool ran out.
  std::uint8_t* tryRequestOverdraft();
  // A free segment, waiting while none is; null when `cancelled` becomes true (see wakeAll).
  std::uint8_t* request(const std::atomic<bool>& cancelled);
  void recycle(std::uint8_t* segment);
  // Whether a segment within the bound is free (without the pool's lock).
  bool available() const { return available_.load(std::memory_order_acquire); }
  // Waits until a segment within the bound is free (true), or until `deadline` or one of the flags
  // (`interrupt2` when given) is set (false). Takes nothing: the producer waits here between
  // records rather than inside one.
  bool awaitAvailable(std::chrono::steady_clock::time_point deadline,
                      const std::atomic<bool>& cancelled, const std::atomic<bool>& interrupt,
                      const std::atomic<bool>* interrupt2 = nullptr);
  // Wakes waiting requesters so they re-check their cancellation flag.
  void wakeAll();
  // Called (outside the pool's lock) after every recycle: how a receiving channel learns that it
  // can grant its sender one more credit. Set before the pool is shared.
  void setRecycleListener(std::function<void()> listener) { on_recycle_ = std::move(listener); }

  std::size_t segmentSize() const { return segment_size_; }
  std::size_t maxSegments() const { return max_segments_; }
  std::size_t maxOverdraft() const { return max_overdraft_; }
  std::size_t inUse() const;
  std::size_t peakInUse() const;
  std::size_t allocated() const;
  // Threads blocked in request() right now.
  std::size_t waiting() const;

 private:
  // A free or new segment while fewer than `limit` are in use; null otherwise.
  std::uint8_t* takeLocked(std::size_t limit);
  bool availableLocked() const { return in_use_ < max_segments_; }
  void updateAvailableLocked() {
    available_.store(availableLocked(), std::memory_order_release);
  }

  const std::size_t segment_size_;
  const std::size_t max_segments_;
  const std::size_t max_overdraft_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::uint8_t*> free_;  // guarded by mu_
  std::vector<std::uint8_t*> all_;   // guarded by mu_
  std::size_t in_use_ = 0;           // guarded by mu_
  std::size_t peak_in_use_ = 0;      // guarded by mu_
  std::size_t waiting_ = 0;          // guarded by mu_
  // availableLocked(), for a check without the lock (written under it)
  std::atomic<bool> available_{true};
  std::function<void()> on_recycle_;
};

// A TaskManager's network memory, counted in segments. Every pool reserves its bound here before
// it is created, so the buffers of all jobs on a TaskManager stay within
// taskmanager.memory.network.max however many jobs it runs.
class NetworkMemory {
 public:
  explicit NetworkMemory(std::size_t total_segments) : total_(total_segments) {}
  // False (and nothing reserved) when fewer than `n` segments are left.
  bool reserve(std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    if (n > total_ - reserved_) return false;
    reserved_ += n;
    return true;
  }
  void release(std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ -= std::min(n, reserved_);
  }
  std::size_t total() const { return total_; }
  std::size_t available() const {
    std::lock_guard<std::mutex> lock(mu_);
    return total_ - reserved_;
  }

 private:
  const std::size_t total_;
  mutable std::mutex mu_;
  std::size_t reserved_ = 0;  // guarded by mu_
};

// A checkpoint barrier: travels in every channel of the data plane, ordered with the records, and
// separates what belongs to checkpoint `id` (before it) from what comes after. One object is shared
// by every channel a producer emits it on; it is never modified once emitted.
struct CheckpointBarrier {
  std::int64_t id = 0;
  std::int64_t timestamp_ms = 0;
  bool savepoint = false;
  bool stop = false;       // stop-with-savepoint
  bool drain = false;      // stop-with-savepoint --drain
  std::string target_dir;  // absolute directory for this checkpoint's own files
  // An unaligned checkpoint: the barrier travels as a priority event, overtaking the data buffers
  // queued before it, which the consumer persists as in-flight state.
  bool unaligned = false;
  bool operator==(const CheckpointBarrier&) const = default;
};

// A unit handed from producer to consumer: a data segment holding record frames, or an event
// (end of input, a watermark, a watermark status, a checkpoint barrier). Move-only; a data buffer
// returns its segment to its pool when destroyed.
class Buffer {
 public:
  enum class Kind : std::uint8_t { kData, kEndOfInput, kWatermark, kWatermarkStatus, kBarrier };

  Buffer() = default;
  static Buffer data(std::shared_ptr<BufferPool> pool, std::uint8_t* segment, std::size_t size) {
    Buffer b;
    b.kind_ = Kind::kData;
    b.pool_ = std::move(pool);
    b.segment_ = segment;
    b.size_ = size;
    return b;
  }
  // A data buffer holding a heap copy of `size` bytes (no pool segment).
  static Buffer heapCopy(const std::uint8_t* data, std::size_t size) {
    Buffer b;
    b.kind_ = Kind::kData;
    b.heap_ = std::make_unique<std::uint8_t[]>(size == 0 ? 1 : size);
    std::copy(data, data + size, b.heap_.get());
    b.segment_ = b.heap_.get();
    b.size_ = size;
    return b;
  }
  static Buffer endOfInput() {
    Buffer b;
    b.kind_ = Kind::kEndOfInput;
    return b;
  }
  static Buffer watermark(std::int64_t watermark) {
    Buffer b;
    b.kind_ = Kind::kWatermark;
    b.value_ = watermark;
    return b;
  }
  // idle = true: the producer's channel stops holding back the consumer's watermark.
  static Buffer watermarkStatus(bool idle) {
    Buffer b;
    b.kind_ = Kind::kWatermarkStatus;
    b.value_ = idle ? 1 : 0;
    return b;
  }
  // Needs no buffer from a pool: emitting a barrier never waits for back-pressure to clear.
  // `overtaken`: for a priority (unaligned) barrier, how many data buffers of its channel, sent
  // before it, it overtook on the way so far.
  static Buffer barrier(std::shared_ptr<const CheckpointBarrier> b, std::int64_t overtaken = 0) {
    Buffer buffer;
    buffer.kind_ = Kind::kBarrier;
    buffer.barrier_ = std::move(b);
    buffer.value_ = overtaken;
    return buffer;
  }

  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      kind_ = o.kind_;
      value_ = o.value_;
      pool_ = std::move(o.pool_);
      barrier_ = std::move(o.barrier_);
      heap_ = std::move(o.heap_);
      segment_ = o.segment_;
      size_ = o.size_;
      o.segment_ = nullptr;
      o.size_ = 0;
    }
    return *this;
  }
  ~Buffer() { release(); }

  Kind kind() const { return kind_; }
  bool isEvent() const { return kind_ != Kind::kData; }
  // The watermark of a kWatermark event; for kWatermarkStatus, 1 = idle, 0 = active; for
  // kBarrier, the number of data buffers the barrier overtook (see overtaken()).
  std::int64_t value() const { return value_; }
  // A priority barrier: the data buffers of its channel sent before it that it overtook.
  std::int64_t overtaken() const { return kind_ == Kind::kBarrier ? value_ : 0; }
  void addOvertaken(std::int64_t n) { value_ += n; }
  const std::uint8_t* bytes() const { return segment_; }
  std::size_t size() const { return size_; }
  // The barrier of a kBarrier event; null for every other kind.
  const std::shared_ptr<const CheckpointBarrier>& barrier() const { return barrier_; }

 private:
  void release() {
    if (segment_ != nullptr && pool_) pool_->recycle(segment_);
    segment_ = nullptr;
    pool_.reset();
    heap_.reset();
    barrier_.reset();
  }

  Kind kind_ = Kind::kEndOfInput;
  std::int64_t value_ = 0;
  std::shared_ptr<BufferPool> pool_;
  std::shared_ptr<const CheckpointBarrier> barrier_;
  std::unique_ptr<std::uint8_t[]> heap_;  // heapCopy()
  std::uint8_t* segment_ = nullptr;
  std::size_t size_ = 0;
};

// A queue of buffers on their way to a consumer (a gate's channel, a remote channel's send queue),
// and how a barrier of an unaligned checkpoint overtakes in it.
using BufferQueue = std::deque<Buffer>;

// Where a barrier overtaking what is queued before `end` goes: just after the last barrier before
// `end` (barriers never overtake barriers), or the front of `queue` when there is none.
inline BufferQueue::iterator overtakingPosition(BufferQueue& queue, BufferQueue::iterator end) {
  while (end != queue.begin() && std::prev(end)->kind() != Buffer::Kind::kBarrier)
    --end;
  return end;
}

// The data buffers in [from, to).
inline std::int64_t dataBuffers(BufferQueue::const_iterator from, BufferQueue::const_iterator to) {
  return std::count_if(from, to, [](const Buffer& b) { return b.kind() == Buffer::Kind::kData; });
}

// Replaces the aligned barrier at `it` by a copy marked unaligned, queued at `at` (before `it`),
// that overtook `overtaken` data buffers.
inline void moveAsUnaligned(BufferQueue& queue, BufferQueue::iterator it, BufferQueue::iterator at,
                            std::int64_t overtaken) {
  auto unaligned = std::make_shared<CheckpointBarrier>(*it->barrier());
  unaligned->unaligned = true;
  const auto index = at - queue.begin();
  queue.erase(it);
  queue.insert(queue.begin() + index, Buffer::barrier(std::move(unaligned), overtaken));
}

}  // namespace weir::engine
