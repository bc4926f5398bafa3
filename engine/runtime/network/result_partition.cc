#include "runtime/network/result_partition.h"

#include <chrono>

namespace weir::engine {

ResultPartition::ResultPartition(std::shared_ptr<BufferPool> pool,
                                 std::vector<ChannelTarget> targets,
                                 const std::atomic<bool>* cancelled,
                                 std::atomic<std::uint64_t>* backpressured_ns)
    : pool_(std::move(pool)),
      targets_(std::move(targets)),
      cursors_(targets_.size()),
      cancelled_(cancelled),
      backpressured_ns_(backpressured_ns) {}

ResultPartition::~ResultPartition() { discard(); }

void ResultPartition::submit(int channel) {
  WriteCursor& c = cursors_[static_cast<std::size_t>(channel)];
  if (c.begin == nullptr) return;
  const auto used = static_cast<std::size_t>(c.pos - c.begin);
  if (used == 0) {
    pool_->recycle(c.begin);
  } else {
    const ChannelTarget& t = targets_[static_cast<std::size_t>(channel)];
    t.gate->push(t.channel, Buffer::data(pool_, c.begin, used));
  }
  c = WriteCursor{};
}

bool ResultPartition::advance(int channel) noexcept {
  WriteCursor& c = cursors_[static_cast<std::size_t>(channel)];
  if (c.begin != nullptr && c.pos == c.begin) return true;  // already empty
  submit(channel);
  std::uint8_t* segment = pool_->tryRequest();
  if (segment == nullptr) {
    const auto start = std::chrono::steady_clock::now();
    segment = pool_->request(*cancelled_);
    const auto waited = std::chrono::steady_clock::now() - start;
    backpressured_ns_->fetch_add(
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count()),
        std::memory_order_relaxed);
    if (segment == nullptr) return false;
  }
  c.begin = segment;
  c.pos = segment;
  c.end = segment + pool_->segmentSize();
  return true;
}

void ResultPartition::flushAll() {
  for (int i = 0; i < numChannels(); ++i) submit(i);
}

bool ResultPartition::hasPendingData() const {
  for (const auto& c : cursors_) {
    if (c.pos != c.begin) return true;
  }
  return false;
}

void ResultPartition::finish() {
  flushAll();
  for (const ChannelTarget& t : targets_) t.gate->push(t.channel, Buffer::endOfInput());
}

void ResultPartition::discard() {
  for (auto& c : cursors_) {
    if (c.begin != nullptr) pool_->recycle(c.begin);
    c = WriteCursor{};
  }
}

}  // namespace weir::engine
