#include "runtime/network/input_gate.h"

namespace weir::engine {

void InputGate::push(int channel, Buffer buffer) {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& q = queues_.at(static_cast<std::size_t>(channel));
    if (buffer.kind() == Buffer::Kind::kWatermark && !q.empty() &&
        q.back().kind() == Buffer::Kind::kWatermark) {
      q.back() = std::move(buffer);  // a newer watermark supersedes one not yet read
      return;
    }
    if (q.empty()) available_.push_back(channel);
    q.push_back(std::move(buffer));
    notify = waiting_;
  }
  if (notify) cv_.notify_one();
}

std::optional<InputGate::Item> InputGate::poll(std::chrono::steady_clock::time_point deadline,
                                               const std::atomic<bool>& cancelled) {
  std::unique_lock<std::mutex> lock(mu_);
  while (available_.empty()) {
    if (cancelled.load(std::memory_order_acquire)) return std::nullopt;
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

void InputGate::wake() {
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
}

std::size_t InputGate::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const auto& q : queues_)
    n += q.size();
  return n;
}

}  // namespace weir::engine
