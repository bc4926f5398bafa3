#include "runtime/network/input_gate.h"

#include <algorithm>
#include <iterator>

namespace weir::engine {

void InputGate::push(int channel, Buffer buffer) {
  bool notify = false;
  const bool barrier = buffer.kind() == Buffer::Kind::kBarrier;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& q = queues_.at(static_cast<std::size_t>(channel));
    if (buffer.kind() == Buffer::Kind::kWatermark && !q.empty() &&
        q.back().kind() == Buffer::Kind::kWatermark) {
      q.back() = std::move(buffer);  // a newer watermark supersedes one not yet read
      return;
    }
    const bool was_empty = q.empty();
    q.push_back(std::move(buffer));
    if (was_empty && !blocked_[static_cast<std::size_t>(channel)]) {
      available_.push_back(channel);
      notify = waiting_;
    }
  }
  if (notify) cv_.notify_one();
  if (barrier && on_barrier_) on_barrier_();
}

void InputGate::pushPriority(int channel, Buffer barrier) {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& q = queues_.at(static_cast<std::size_t>(channel));
    const auto at = overtakingPosition(q, q.end());
    barrier.addOvertaken(dataBuffers(at, q.end()));
    const bool was_empty = q.empty();
    q.insert(at, std::move(barrier));
    if (was_empty && !blocked_[static_cast<std::size_t>(channel)]) {
      available_.push_back(channel);
      notify = waiting_;
    }
  }
  if (notify) cv_.notify_one();
  if (on_barrier_) on_barrier_();
}

int InputGate::promoteBarriers(std::int64_t cutoff_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  int promoted = 0;
  for (std::size_t ch = 0; ch < queues_.size(); ++ch) {
    if (blocked_[ch]) continue;
    auto& q = queues_[ch];
    for (auto it = q.begin(); it != q.end(); ++it) {
      if (it->kind() != Buffer::Kind::kBarrier) continue;
      const auto& b = it->barrier();
      if (b->unaligned || b->savepoint || b->timestamp_ms > cutoff_ms) continue;
      const auto at = overtakingPosition(q, it);
      const std::int64_t overtaken = dataBuffers(at, it);
      if (overtaken == 0) continue;
      moveAsUnaligned(q, it, at, overtaken);
      ++promoted;
      break;
    }
  }
  return promoted;
}

std::int64_t InputGate::copyQueued(int channel, std::int64_t max,
                                   const std::function<void(const Buffer&)>& copy) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::int64_t n = 0;
  for (const Buffer& b : queues_.at(static_cast<std::size_t>(channel))) {
    if (n >= max) break;
    if (b.kind() != Buffer::Kind::kData) continue;
    copy(b);
    ++n;
  }
  return n;
}

std::optional<InputGate::Item> InputGate::poll(std::chrono::steady_clock::time_point deadline,
                                               const std::atomic<bool>& cancelled,
                                               const std::atomic<bool>* interrupt) {
  std::unique_lock<std::mutex> lock(mu_);
  while (available_.empty()) {
    if (cancelled.load(std::memory_order_acquire)) return std::nullopt;
    if (interrupt != nullptr && interrupt->load(std::memory_order_acquire)) return std::nullopt;
    waiting_ = true;
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      cv_.wait(lock);  // wait_until(max) overflows inside libstdc++
    } else if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && available_.empty()) {
      waiting_ = false;
      return std::nullopt;
    }
    waiting_ = false;
  }
  const int channel = available_.front();
  available_.pop_front();
  auto& q = queues_[static_cast<std::size_t>(channel)];
  Item item{channel, std::move(q.front())};
  q.pop_front();
  if (!q.empty()) available_.push_back(channel);
  return item;
}

std::optional<InputGate::Item> InputGate::pollBarrier(int reading) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = available_.begin(); it != available_.end(); ++it) {
    const int channel = *it;
    auto& q = queues_[static_cast<std::size_t>(channel)];
    if (q.front().kind() != Buffer::Kind::kBarrier) continue;
    if (channel == reading && !q.front().barrier()->unaligned) continue;
    Item item{channel, std::move(q.front())};
    q.pop_front();
    available_.erase(it);
    if (!q.empty()) available_.push_back(channel);
    return item;
  }
  return std::nullopt;
}

void InputGate::blockChannel(int channel) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto index = static_cast<std::size_t>(channel);
  if (blocked_.at(index)) return;
  blocked_[index] = true;
  ++num_blocked_;
  if (!queues_[index].empty()) {
    available_.erase(std::find(available_.begin(), available_.end(), channel));
  }
}

void InputGate::unblockAll() {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (num_blocked_ == 0) return;
    for (std::size_t ch = 0; ch < blocked_.size(); ++ch) {
      if (!blocked_[ch]) continue;
      blocked_[ch] = false;
      if (!queues_[ch].empty()) {
        available_.push_back(static_cast<int>(ch));
        notify = waiting_;
      }
    }
    num_blocked_ = 0;
  }
  if (notify) cv_.notify_one();
}

bool InputGate::isBlocked(int channel) const {
  std::lock_guard<std::mutex> lock(mu_);
  return blocked_.at(static_cast<std::size_t>(channel));
}

void InputGate::wake() {
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
}

bool InputGate::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

std::size_t InputGate::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const auto& q : queues_)
    n += q.size();
  return n;
}

}  // namespace weir::engine
