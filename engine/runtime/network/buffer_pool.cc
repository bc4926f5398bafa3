#include "runtime/network/buffer_pool.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace weir::engine {

BufferPool::BufferPool(std::size_t segment_size, std::size_t max_segments,
                       std::size_t max_overdraft)
    : segment_size_(segment_size),
      max_segments_(max_segments),
      max_overdraft_(max_overdraft),
      available_(max_segments > 0) {}

BufferPool::~BufferPool() {
  for (std::uint8_t* s : all_)
    std::free(s);
}

std::uint8_t* BufferPool::takeLocked(std::size_t limit) {
  if (in_use_ >= limit) return nullptr;
  std::uint8_t* s = nullptr;
  if (!free_.empty()) {
    s = free_.back();
    free_.pop_back();
  } else {
    s = static_cast<std::uint8_t*>(std::aligned_alloc(64, (segment_size_ + 63) / 64 * 64));
    if (s == nullptr) throw std::bad_alloc();
    all_.push_back(s);
  }
  ++in_use_;
  peak_in_use_ = std::max(peak_in_use_, in_use_);
  updateAvailableLocked();
  return s;
}

std::uint8_t* BufferPool::tryRequest() {
  std::lock_guard<std::mutex> lock(mu_);
  return takeLocked(max_segments_);
}

std::uint8_t* BufferPool::tryRequestOverdraft() {
  std::lock_guard<std::mutex> lock(mu_);
  return takeLocked(max_segments_ + max_overdraft_);
}

std::uint8_t* BufferPool::request(const std::atomic<bool>& cancelled) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (cancelled.load(std::memory_order_acquire)) return nullptr;
    if (std::uint8_t* s = takeLocked(max_segments_)) return s;
    ++waiting_;
    cv_.wait(lock);
    --waiting_;
  }
}

bool BufferPool::awaitAvailable(std::chrono::steady_clock::time_point deadline,
                                const std::atomic<bool>& cancelled,
                                const std::atomic<bool>& interrupt,
                                const std::atomic<bool>* interrupt2) {
  if (available()) return true;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (availableLocked()) return true;
    if (cancelled.load(std::memory_order_acquire) || interrupt.load(std::memory_order_acquire) ||
        (interrupt2 != nullptr && interrupt2->load(std::memory_order_acquire)) ||
        std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    ++waiting_;
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      cv_.wait(lock);  // wait_until(max) overflows inside libstdc++
    } else {
      cv_.wait_until(lock, deadline);
    }
    --waiting_;
  }
}

void BufferPool::recycle(std::uint8_t* segment) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(segment);
    --in_use_;
    updateAvailableLocked();
  }
  cv_.notify_one();
  if (on_recycle_) on_recycle_();
}

void BufferPool::wakeAll() {
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
}

std::size_t BufferPool::inUse() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

std::size_t BufferPool::peakInUse() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_in_use_;
}

std::size_t BufferPool::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

std::size_t BufferPool::allocated() const {
  std::lock_guard<std::mutex> lock(mu_);
  return all_.size();
}

}  // namespace weir::engine
