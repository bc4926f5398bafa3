#include "runtime/network/result_partition.h"

#include <chrono>

namespace weir::engine {

ResultPartition::ResultPartition(std::shared_ptr<BufferPool> pool,
                                 std::vector<std::shared_ptr<ChannelSink>> targets,
                                 const std::atomic<bool>* cancelled, StateTimer* backpressured)
    : pool_(std::move(pool)),
      targets_(std::move(targets)),
      cursors_(targets_.size()),
      cancelled_(cancelled),
      backpressured_(backpressured) {}

ResultPartition::~ResultPartition() {
  discard();
}

void ResultPartition::submit(int channel) {
  WriteCursor& c = cursors_[static_cast<std::size_t>(channel)];
  if (c.begin == nullptr) return;
  const auto used = static_cast<std::size_t>(c.pos - c.begin);
  if (used == 0) {
    pool_->recycle(c.begin);
  } else {
    targets_[static_cast<std::size_t>(channel)]->push(Buffer::data(pool_, c.begin, used));
  }
  c = WriteCursor{};
}

bool ResultPartition::advance(int channel) noexcept {
  WriteCursor& c = cursors_[static_cast<std::size_t>(channel)];
  if (c.begin != nullptr && c.pos == c.begin) return true;  // already empty
  submit(channel);
  std::uint8_t* segment = pool_->tryRequest();
  // The task waited for a free buffer before this record; one that needs more takes overdraft
  // buffers rather than block halfway (where barriers and mail cannot reach the task).
  if (segment == nullptr) segment = pool_->tryRequestOverdraft();
  if (segment == nullptr) {
    backpressured_->begin(StateTimer::Clock::now());
    segment = pool_->request(*cancelled_);
    backpressured_->end(StateTimer::Clock::now());
    if (segment == nullptr) return false;
  }
  c.begin = segment;
  c.pos = segment;
  c.end = segment + pool_->segmentSize();
  return true;
}

void ResultPartition::flushAll() {
  for (int i = 0; i < numChannels(); ++i)
    submit(i);
}

bool ResultPartition::hasPendingData() const {
  for (const auto& c : cursors_) {
    if (c.pos != c.begin) return true;
  }
  return false;
}

void ResultPartition::broadcastEvent(Buffer::Kind kind, std::int64_t value) {
  flushAll();
  for (const auto& t : targets_) {
    t->push(kind == Buffer::Kind::kWatermark ? Buffer::watermark(value)
                                             : Buffer::watermarkStatus(value != 0));
  }
}

void ResultPartition::emitWatermark(std::int64_t watermark) noexcept {
  broadcastEvent(Buffer::Kind::kWatermark, watermark);
}

void ResultPartition::emitWatermarkStatus(bool idle) noexcept {
  broadcastEvent(Buffer::Kind::kWatermarkStatus, idle ? 1 : 0);
}

void ResultPartition::emitBarrier(const std::shared_ptr<const CheckpointBarrier>& barrier) {
  flushAll();
  for (const auto& t : targets_)
    t->push(Buffer::barrier(barrier));
}

void ResultPartition::emitPriorityBarrier(
    const std::shared_ptr<const CheckpointBarrier>& barrier,
    const std::function<void(int channel, const Buffer&)>& persist) {
  flushAll();
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    const int channel = static_cast<int>(i);
    targets_[i]->pushPriority(Buffer::barrier(barrier),
                              [&](const Buffer& b) { persist(channel, b); });
  }
}

int ResultPartition::settleBarrier(std::int64_t id, std::int64_t cutoff_ms,
                                   const std::function<void(int channel, const Buffer&)>& persist) {
  int waiting = 0;
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    const int channel = static_cast<int>(i);
    if (targets_[i]->settleBarrier(id, cutoff_ms, [&](const Buffer& b) { persist(channel, b); })) {
      ++waiting;
    }
  }
  return waiting;
}

void ResultPartition::emitRecovered(int channel, const std::uint8_t* data, std::size_t size) {
  submit(channel);
  targets_.at(static_cast<std::size_t>(channel))->push(Buffer::heapCopy(data, size));
}

void ResultPartition::finish() {
  flushAll();
  for (const auto& t : targets_)
    t->push(Buffer::endOfInput());
}

void ResultPartition::discard() {
  for (auto& c : cursors_) {
    if (c.begin != nullptr) pool_->recycle(c.begin);
    c = WriteCursor{};
  }
}

}  // namespace weir::engine
