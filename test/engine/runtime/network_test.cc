#include <limits>
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/network/buffer_pool.h"
#include "runtime/network/input_gate.h"
#include "runtime/network/network_environment.h"
#include "runtime/network/result_partition.h"
#include "weir/detail/exchange.h"

using namespace weir::engine;
using Clock = std::chrono::steady_clock;

namespace {

template <class T>
class Collect final : public weir::BatchConsumer<T> {
 public:
  void consume(const weir::RecordBatch<T>& batch) override {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      values.push_back(batch[i]);
      timestamps.push_back(batch.timestamp(i));
    }
    ++batches;
  }
  void consumeWatermark(std::int64_t) override {}
  void consumeWatermarkStatus(bool) override {}
  std::vector<T> values;
  std::vector<std::int64_t> timestamps;
  int batches = 0;
};

// A data buffer of `pool` holding the one byte `value`.
Buffer oneByte(const std::shared_ptr<BufferPool>& pool, std::uint8_t value) {
  std::uint8_t* segment = pool->tryRequest();
  REQUIRE(segment != nullptr);
  segment[0] = value;
  return Buffer::data(pool, segment, 1);
}

// Record i's timestamp in pipe(): none for every third record, negative and huge ones too.
std::int64_t timestampOf(std::size_t i) {
  if (i % 3 == 0) return weir::kNoTimestamp;
  if (i % 3 == 1) return static_cast<std::int64_t>(i) * 1000 - 5000;
  return std::numeric_limits<std::int64_t>::max() - static_cast<std::int64_t>(i);
}

// Sends `records` through a writer and partition with tiny buffers, then decodes every buffer that
// arrived at the gate with a reader.
template <class T>
std::vector<T> pipe(const std::vector<T>& records, std::size_t segment_size, int* buffers_out,
                    bool stamped = true) {
  auto stamp = [&](std::size_t i) { return stamped ? timestampOf(i) : weir::kNoTimestamp; };
  std::atomic<bool> cancelled{false};
  StateTimer backpressured;
  InputGate gate(1);
  auto pool = std::make_shared<BufferPool>(segment_size, 1000);
  ResultPartition partition(pool, {std::make_shared<LocalChannelSink>(&gate, 0)}, &cancelled,
                            &backpressured);
  weir::NetworkOutputSpec spec;
  spec.partitioner = weir::Partitioner::kForward;
  weir::detail::ExchangeWriter<T> writer(partition, spec, 0, {});
  weir::RecordBatch<T> batch;
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (batch.full()) {
      writer.consume(batch);
      batch.clear();
    }
    batch.nextSlot() = records[i];
    batch.commit(stamp(i));
  }
  writer.consume(batch);
  partition.finish();

  Collect<T> out;
  weir::detail::InputReader<T> reader(1, &out);
  int buffers = 0;
  for (;;) {
    auto item = gate.poll(Clock::now(), cancelled);
    REQUIRE(item.has_value());
    if (item->buffer.kind() == Buffer::Kind::kEndOfInput) break;
    ++buffers;
    CHECK(item->buffer.size() <= segment_size);
    CHECK(reader.read(0, item->buffer.bytes(), item->buffer.size()) == "");
  }
  CHECK_FALSE(reader.hasPartialRecord());
  CHECK(pool->inUse() == 0);
  REQUIRE(out.timestamps.size() == records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (out.timestamps[i] != stamp(i)) {
      FAIL("record " << i << " has timestamp " << out.timestamps[i] << ", expected "
                     << stamp(i));
    }
  }
  if (buffers_out != nullptr) *buffers_out = buffers;
  return out.values;
}

}  // namespace

TEST_CASE("buffer pool: bounded, recycles, and wakes a waiting requester") {
  auto pool = std::make_shared<BufferPool>(1024, 2);
  std::uint8_t* a = pool->tryRequest();
  std::uint8_t* b = pool->tryRequest();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(pool->tryRequest() == nullptr);
  CHECK(pool->inUse() == 2);
  pool->recycle(a);
  CHECK(pool->tryRequest() == a);
  CHECK(pool->allocated() == 2);

  std::atomic<bool> cancelled{false};
  std::atomic<std::uint8_t*> got{nullptr};
  std::thread waiter([&] { got = pool->request(cancelled); });
  pool->recycle(b);
  waiter.join();
  CHECK(got.load() == b);

  std::thread cancelled_waiter([&] { got = pool->request(cancelled); });
  cancelled = true;
  pool->wakeAll();
  cancelled_waiter.join();
  CHECK(got.load() == nullptr);
  CHECK(pool->peakInUse() == 2);
  pool->recycle(a);
  pool->recycle(b);
}

TEST_CASE("buffer pool: awaitAvailable waits for a free buffer, taking none, or for a flag") {
  using Clock = std::chrono::steady_clock;
  auto pool = std::make_shared<BufferPool>(1024, 1);
  std::atomic<bool> cancelled{false};
  std::atomic<bool> mail{false};
  CHECK(pool->awaitAvailable(Clock::time_point::min(), cancelled, mail));
  std::uint8_t* a = pool->tryRequest();
  REQUIRE(a != nullptr);
  // Exhausted: a deadline that passed, or a flag, ends the wait.
  CHECK_FALSE(pool->awaitAvailable(Clock::time_point::min(), cancelled, mail));
  CHECK_FALSE(pool->awaitAvailable(Clock::now() + std::chrono::milliseconds(5), cancelled, mail));
  std::atomic<int> result{-1};
  std::thread interrupted([&] {
    result = pool->awaitAvailable(Clock::time_point::max(), cancelled, mail) ? 1 : 0;
  });
  while (pool->waiting() == 0)
    std::this_thread::yield();
  mail = true;
  pool->wakeAll();
  interrupted.join();
  CHECK(result.load() == 0);
  mail = false;
  // A recycled buffer ends it, and stays in the pool.
  std::thread waiter([&] {
    result = pool->awaitAvailable(Clock::time_point::max(), cancelled, mail) ? 1 : 0;
  });
  while (pool->waiting() == 0)
    std::this_thread::yield();
  pool->recycle(a);
  waiter.join();
  CHECK(result.load() == 1);
  CHECK(pool->inUse() == 0);
}

TEST_CASE("buffer pool: overdraft goes beyond the bound only when asked, and availability waits") {
  using Clock = std::chrono::steady_clock;
  auto pool = std::make_shared<BufferPool>(1024, 2, 2);
  std::atomic<bool> cancelled{false};
  std::atomic<bool> mail{false};
  std::vector<std::uint8_t*> held = {pool->tryRequest(), pool->tryRequest()};
  CHECK(pool->tryRequest() == nullptr);
  CHECK_FALSE(pool->available());
  // A record under way may take two more, then none.
  held.push_back(pool->tryRequestOverdraft());
  held.push_back(pool->tryRequestOverdraft());
  CHECK(std::count(held.begin(), held.end(), nullptr) == 0);
  CHECK(pool->tryRequestOverdraft() == nullptr);
  CHECK(pool->inUse() == 4);
  CHECK(pool->allocated() == 4);
  CHECK(pool->maxOverdraft() == 2);
  // Back within the overdraft is not available: the bound is 2 in use.
  pool->recycle(held.back());
  held.pop_back();
  CHECK_FALSE(pool->available());
  CHECK(pool->tryRequest() == nullptr);
  CHECK_FALSE(pool->awaitAvailable(Clock::now(), cancelled, mail));
  pool->recycle(held.back());
  held.pop_back();
  CHECK_FALSE(pool->available());
  pool->recycle(held.back());
  held.pop_back();
  CHECK(pool->available());
  CHECK(pool->awaitAvailable(Clock::now(), cancelled, mail));
  // A second interrupt flag ends a wait too.
  held.push_back(pool->tryRequest());
  std::atomic<bool> barrier{true};
  CHECK_FALSE(pool->awaitAvailable(Clock::time_point::max(), cancelled, mail, &barrier));
  CHECK(pool->peakInUse() == 4);
  for (auto* s : held)
    pool->recycle(s);
  CHECK(pool->allocated() == 4);  // kept, within bound plus overdraft
}

TEST_CASE("input gate: channels are served round robin and poll times out") {
  std::atomic<bool> cancelled{false};
  InputGate gate(3);
  for (int i = 0; i < 3; ++i)
    gate.push(0, Buffer::endOfInput());
  gate.push(2, Buffer::endOfInput());
  gate.push(1, Buffer::endOfInput());
  std::vector<int> order;
  while (auto item = gate.poll(Clock::now(), cancelled))
    order.push_back(item->channel);
  CHECK(order == std::vector<int>{0, 2, 1, 0, 0});
  const auto start = Clock::now();
  CHECK_FALSE(gate.poll(start + std::chrono::milliseconds(20), cancelled).has_value());
  CHECK(Clock::now() - start >= std::chrono::milliseconds(20));
}

TEST_CASE("exchange: records cross a channel in order, across buffer boundaries") {
  std::vector<std::int64_t> ints(5000);
  for (std::size_t i = 0; i < ints.size(); ++i)
    ints[i] = static_cast<std::int64_t>(i) * 7 - 3;
  int buffers = 0;
  CHECK(pipe(ints, 256, &buffers, false) == ints);
  // 12 bytes per frame without a timestamp, 21 frames per 256-byte buffer.
  CHECK(buffers == (5000 + 20) / 21);
  // With timestamps (on two records of three), the same records arrive with their timestamps.
  CHECK(pipe(ints, 256, &buffers) == ints);

  std::vector<std::string> strings = {
      "", "a", std::string(100, 'b'), std::string(1000, 'c'), std::string(10000, 'd'), "tail"};
  CHECK(pipe(strings, 64, nullptr) == strings);  // most records span several 64-byte buffers
  CHECK(pipe(strings, 32 * 1024, nullptr) == strings);
}

TEST_CASE("exchange: a corrupt frame is reported, not crashed on") {
  Collect<std::string> out;
  weir::detail::InputReader<std::string> reader(2, &out);
  // A frame claiming 3 payload bytes whose payload is a string length of 200.
  const std::uint8_t bad[] = {3, 0, 0, 0, 200, 1, 'x'};
  CHECK(reader.read(0, bad, sizeof bad).find("corrupt record") != std::string::npos);
  const std::uint8_t short_header[] = {1, 0};
  CHECK(reader.read(1, short_header, sizeof short_header).find("truncated") != std::string::npos);
  CHECK(reader.read(5, bad, sizeof bad).find("does not exist") != std::string::npos);
}

TEST_CASE("result partition: flush hands over partial buffers, and back-pressure is timed") {
  std::atomic<bool> cancelled{false};
  StateTimer backpressured;
  InputGate gate(1);
  auto pool = std::make_shared<BufferPool>(128, 1);
  ResultPartition partition(pool, {std::make_shared<LocalChannelSink>(&gate, 0)}, &cancelled,
                            &backpressured);
  CHECK_FALSE(partition.hasPendingData());
  REQUIRE(partition.advance(0));
  weir::WriteCursor& c = partition.cursors()[0];
  *c.pos++ = 42;
  CHECK(partition.hasPendingData());
  partition.flushAll();
  CHECK_FALSE(partition.hasPendingData());
  CHECK(gate.queued() == 1);

  // The only buffer is queued at the consumer: the next advance waits until it is recycled.
  auto waitUntilBlocked = [&] {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (pool->waiting() == 0 && Clock::now() < deadline)
      std::this_thread::yield();
    REQUIRE(pool->waiting() == 1);
  };
  bool advanced = false;
  std::thread producer([&] { advanced = partition.advance(0); });
  waitUntilBlocked();
  CHECK(gate.poll(Clock::now(), cancelled).has_value());  // consumed and recycled at once
  producer.join();
  CHECK(advanced);
  CHECK(backpressured.read() > 0);

  // Cancellation releases a blocked producer with `false`.
  *partition.cursors()[0].pos++ = 1;
  partition.flushAll();
  std::thread blocked([&] { advanced = partition.advance(0); });
  waitUntilBlocked();
  cancelled = true;
  pool->wakeAll();
  blocked.join();
  CHECK_FALSE(advanced);
}

TEST_CASE("result partition: a record under way takes overdraft buffers before it waits") {
  std::atomic<bool> cancelled{false};
  StateTimer backpressured;
  InputGate gate(1);
  auto pool = std::make_shared<BufferPool>(128, 1, 2);
  ResultPartition partition(pool, {std::make_shared<LocalChannelSink>(&gate, 0)}, &cancelled,
                            &backpressured);
  // One buffer within the bound, then two beyond it, each handed on full: no wait.
  for (int i = 0; i < 3; ++i) {
    REQUIRE(partition.advance(0));
    *partition.cursors()[0].pos++ = static_cast<std::uint8_t>(i);
  }
  CHECK(backpressured.read() == 0);
  CHECK(pool->inUse() == 3);
  CHECK_FALSE(pool->available());
  // The overdraft is used up: the next advance waits until the consumer frees a buffer, and the
  // pool is available again only once it is back within its bound.
  bool advanced = false;
  std::thread producer([&] { advanced = partition.advance(0); });
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pool->waiting() == 0 && Clock::now() < deadline)
    std::this_thread::yield();
  REQUIRE(pool->waiting() == 1);
  for (int i = 0; i < 3; ++i)
    CHECK(gate.poll(Clock::now(), cancelled).has_value());
  producer.join();
  CHECK(advanced);
  CHECK(backpressured.read() > 0);
  CHECK(pool->inUse() == 1);
  CHECK_FALSE(pool->available());
  partition.discard();
  CHECK(pool->available());
}

namespace {

// An event tagged with `id`, told apart from others by that id (unlike watermarks, barriers are
// never coalesced).
Buffer tagged(std::int64_t id) {
  auto b = std::make_shared<CheckpointBarrier>();
  b->id = id;
  return Buffer::barrier(std::move(b));
}

// (channel, tag) of everything poll() returns at once, until it returns nothing.
std::vector<std::pair<int, std::int64_t>> pollAll(InputGate& gate) {
  const std::atomic<bool> cancelled{false};
  std::vector<std::pair<int, std::int64_t>> out;
  while (auto item = gate.poll(Clock::now(), cancelled)) {
    REQUIRE(item->buffer.kind() == Buffer::Kind::kBarrier);
    out.emplace_back(item->channel, item->buffer.barrier()->id);
  }
  return out;
}

using Polled = std::vector<std::pair<int, std::int64_t>>;

}  // namespace

TEST_CASE("buffer: a barrier is an event and moves with its barrier") {
  auto barrier = std::make_shared<const CheckpointBarrier>(
      CheckpointBarrier{7, 1234, true, true, false, "/data/chk-7"});
  Buffer b = Buffer::barrier(barrier);
  CHECK(b.kind() == Buffer::Kind::kBarrier);
  CHECK(b.isEvent());
  CHECK(b.barrier() == barrier);
  CHECK(b.size() == 0);
  Buffer moved(std::move(b));
  CHECK(moved.barrier() == barrier);
  Buffer assigned;
  assigned = std::move(moved);
  CHECK(assigned.barrier() == barrier);
  CHECK(barrier.use_count() == 2);
  assigned = Buffer::watermark(5);
  CHECK(assigned.barrier() == nullptr);
  CHECK(barrier.use_count() == 1);
  CHECK(Buffer::endOfInput().barrier() == nullptr);
}

TEST_CASE("input gate: a blocked channel is held back until unblockAll") {
  const std::atomic<bool> cancelled{false};
  InputGate gate(3);
  gate.push(0, tagged(1));
  gate.push(0, tagged(2));
  gate.push(1, tagged(10));
  gate.push(2, tagged(20));
  CHECK_FALSE(gate.isBlocked(0));
  gate.blockChannel(0);
  gate.blockChannel(0);  // twice is once
  CHECK(gate.isBlocked(0));
  CHECK_FALSE(gate.isBlocked(1));
  CHECK(pollAll(gate) == Polled{{1, 10}, {2, 20}});

  // A blocked channel keeps receiving, but what it receives does not make it readable.
  gate.push(0, tagged(3));
  gate.push(1, tagged(11));
  CHECK(gate.queued() == 4);
  CHECK(pollAll(gate) == Polled{{1, 11}});
  CHECK(gate.queued() == 3);

  gate.blockChannel(2);  // blocked while empty
  gate.blockChannel(1);
  gate.push(2, tagged(21));
  gate.push(2, tagged(22));
  CHECK(gate.isBlocked(2));
  const auto start = Clock::now();
  CHECK_FALSE(gate.poll(start + std::chrono::milliseconds(20), cancelled).has_value());
  CHECK(Clock::now() - start >= std::chrono::milliseconds(20));
  CHECK(gate.queued() == 5);

  // Released in channel order, then served round robin as usual; channel 1 has nothing.
  gate.unblockAll();
  for (int ch = 0; ch < 3; ++ch)
    CHECK_FALSE(gate.isBlocked(ch));
  CHECK(pollAll(gate) == Polled{{0, 1}, {2, 21}, {0, 2}, {2, 22}, {0, 3}});
  CHECK(gate.queued() == 0);
  gate.unblockAll();  // nothing blocked: no effect

  // Blocking the channel just read (the usual case: it delivered a barrier) keeps the rest of its
  // queue back, other channels go on.
  gate.push(0, tagged(4));
  gate.push(0, tagged(5));
  gate.push(1, tagged(12));
  auto first = gate.poll(Clock::now(), cancelled);
  REQUIRE(first.has_value());
  CHECK(first->channel == 0);
  gate.blockChannel(0);
  CHECK(pollAll(gate) == Polled{{1, 12}});
  gate.unblockAll();
  CHECK(pollAll(gate) == Polled{{0, 5}});
}

TEST_CASE("input gate: an interrupt ends a waiting poll at once") {
  const std::atomic<bool> cancelled{false};
  std::atomic<bool> interrupt{false};
  InputGate gate(2);

  // Set before the call: nothing is readable, so poll returns at once, even without a deadline.
  interrupt = true;
  CHECK_FALSE(gate.poll(Clock::time_point::max(), cancelled, &interrupt).has_value());
  // What is readable is still returned, as with `cancelled`.
  gate.push(1, tagged(1));
  auto item = gate.poll(Clock::time_point::max(), cancelled, &interrupt);
  REQUIRE(item.has_value());
  CHECK(item->channel == 1);
  // A blocked channel's buffers do not count as readable.
  gate.push(0, tagged(2));
  gate.blockChannel(0);
  CHECK_FALSE(gate.poll(Clock::time_point::max(), cancelled, &interrupt).has_value());
  gate.unblockAll();
  CHECK(gate.poll(Clock::now(), cancelled, &interrupt).has_value());
  interrupt = false;

  // Set from another thread while poll waits: it returns nullopt long before its deadline.
  for (auto deadline : {Clock::now() + std::chrono::seconds(60), Clock::time_point::max()}) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool got_item = true;
    std::thread consumer([&] {
      const bool got = gate.poll(deadline, cancelled, &interrupt).has_value();
      std::lock_guard<std::mutex> lock(mu);
      got_item = got;
      done = true;
      cv.notify_all();
    });
    const auto wait_start = Clock::now();
    while (!gate.waiting() && Clock::now() - wait_start < std::chrono::seconds(10))
      std::this_thread::yield();
    CHECK(gate.waiting());
    const auto start = Clock::now();
    interrupt = true;
    gate.wake();
    bool returned = false;
    {
      std::unique_lock<std::mutex> lock(mu);
      returned = cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; });
    }
    CHECK(returned);
    if (!returned) gate.push(0, tagged(99));  // let the consumer return so that the test ends
    consumer.join();
    CHECK_FALSE(got_item);
    CHECK(Clock::now() - start < std::chrono::seconds(5));
    CHECK_FALSE(gate.waiting());
    interrupt = false;
  }

  // The two-argument poll knows nothing of interrupts.
  gate.push(1, tagged(3));
  CHECK(gate.poll(Clock::now(), cancelled).has_value());
}

TEST_CASE("input gate: a priority barrier overtakes queued data and counts it") {
  const std::atomic<bool> cancelled{false};
  InputGate gate(2);
  auto pool = std::make_shared<BufferPool>(16, 16);
  auto data = [&](std::uint8_t value) { return oneByte(pool, value); };
  auto b1 =
      std::make_shared<const CheckpointBarrier>(CheckpointBarrier{1, 0, false, false, false, ""});
  auto b2 =
      std::make_shared<const CheckpointBarrier>(CheckpointBarrier{2, 0, false, false, false, ""});
  auto describe = [](const InputGate::Item& item) {
    const Buffer& b = item.buffer;
    std::string s = std::to_string(item.channel) + ":";
    if (b.kind() == Buffer::Kind::kBarrier) {
      return s + "b" + std::to_string(b.barrier()->id) + "/" + std::to_string(b.overtaken());
    }
    if (b.kind() == Buffer::Kind::kWatermark) return s + "w";
    return s + std::to_string(b.bytes()[0]);
  };
  gate.push(0, data(1));
  gate.push(0, Buffer::watermark(7));
  gate.push(0, data(2));
  // Two data buffers queued on channel 0 (the watermark is not counted), plus 3 overtaken at the
  // producer already.
  gate.pushPriority(0, Buffer::barrier(b1, 3));
  // An empty channel: the barrier overtakes nothing and makes the channel readable.
  gate.pushPriority(1, Buffer::barrier(b1));
  gate.push(1, data(10));
  std::vector<std::string> got;
  while (auto item = gate.poll(Clock::now(), cancelled))
    got.push_back(describe(*item));
  CHECK(got == std::vector<std::string>{"0:b1/5", "1:b1/0", "0:1", "1:10", "0:w", "0:2"});

  // A newer priority barrier goes after the last barrier still queued, overtaking only the data
  // behind it.
  gate.push(1, data(11));
  gate.pushPriority(1, Buffer::barrier(b1));
  gate.push(1, data(12));
  gate.push(1, data(13));
  gate.pushPriority(1, Buffer::barrier(b2));
  got.clear();
  while (auto item = gate.poll(Clock::now(), cancelled))
    got.push_back(describe(*item));
  CHECK(got == std::vector<std::string>{"1:b1/1", "1:b2/3", "1:11", "1:12", "1:13"});
  // copyQueued sees the data at the front without taking it, events skipped.
  gate.push(0, data(3));
  gate.push(0, Buffer::watermark(8));
  gate.push(0, data(4));
  gate.push(0, Buffer::barrier(b2));
  gate.push(0, data(5));
  std::string copied;
  CHECK(gate.copyQueued(0, 10, [&](const Buffer& b) { copied += std::to_string(b.bytes()[0]); }) ==
        3);
  CHECK(copied == "345");
  CHECK(gate.copyQueued(0, 1, [](const Buffer&) {}) == 1);
  CHECK(gate.queued() == 5);
}

TEST_CASE("input gate: pollBarrier takes a barrier at a channel's head, never data") {
  const std::atomic<bool> cancelled{false};
  InputGate gate(4);
  auto pool = std::make_shared<BufferPool>(16, 4);
  auto data = [&](std::uint8_t value) { return oneByte(pool, value); };
  int told = 0;
  gate.setBarrierListener([&] { ++told; });
  auto barrier = std::make_shared<const CheckpointBarrier>(CheckpointBarrier{4, 0});
  CHECK_FALSE(gate.pollBarrier().has_value());
  gate.push(0, data(1));
  gate.push(3, data(3));
  gate.push(3, Buffer::barrier(barrier));  // behind data: not taken
  gate.push(2, Buffer::barrier(barrier));
  gate.push(2, data(2));
  gate.push(1, Buffer::barrier(barrier));
  CHECK(told == 3);
  gate.blockChannel(1);  // a blocked channel's barrier waits too
  auto item = gate.pollBarrier();
  REQUIRE(item.has_value());
  CHECK(item->channel == 2);
  CHECK(item->buffer.barrier()->id == 4);
  CHECK_FALSE(gate.pollBarrier().has_value());
  // A priority barrier goes to the head and is taken.
  gate.pushPriority(0, Buffer::barrier(barrier));
  CHECK(told == 4);
  item = gate.pollBarrier();
  REQUIRE(item.has_value());
  CHECK(item->channel == 0);
  CHECK(item->buffer.overtaken() == 1);
  gate.unblockAll();
  CHECK(gate.pollBarrier()->channel == 1);
  // Everything else is still there, in order.
  std::vector<std::string> got;
  while (auto next = gate.poll(Clock::now(), cancelled)) {
    got.push_back(std::to_string(next->channel) + ":" +
                  (next->buffer.kind() == Buffer::Kind::kBarrier
                       ? std::string("b")
                       : std::to_string(next->buffer.bytes()[0])));
  }
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"0:1", "2:2", "3:3", "3:b"});
}

TEST_CASE("input gate: pollBarrier leaves an aligned barrier behind a buffer read in part") {
  InputGate gate(2);
  auto pool = std::make_shared<BufferPool>(16, 4);
  auto aligned = std::make_shared<const CheckpointBarrier>(CheckpointBarrier{5, 0});
  auto unaligned = std::make_shared<CheckpointBarrier>(CheckpointBarrier{6, 0});
  unaligned->unaligned = true;
  gate.push(0, Buffer::barrier(aligned));
  // The task is reading a buffer of channel 0: the aligned barrier there comes after its rest.
  CHECK_FALSE(gate.pollBarrier(0).has_value());
  gate.push(1, Buffer::barrier(aligned));
  auto item = gate.pollBarrier(0);
  REQUIRE(item.has_value());
  CHECK(item->channel == 1);
  CHECK_FALSE(gate.pollBarrier(0).has_value());
  // The buffer was read to its end.
  item = gate.pollBarrier();
  REQUIRE(item.has_value());
  CHECK(item->channel == 0);
  // An unaligned barrier overtakes the rest of the buffer being read as well as the queued data.
  gate.push(0, oneByte(pool, 1));
  gate.pushPriority(0, Buffer::barrier(unaligned));
  item = gate.pollBarrier(0);
  REQUIRE(item.has_value());
  CHECK(item->channel == 0);
  CHECK(item->buffer.barrier()->id == 6);
  CHECK(item->buffer.overtaken() == 1);
  CHECK(gate.queued() == 1);
}

TEST_CASE("exchange: a record cut at a snapshot is reassembled from its partial frame") {
  // Records larger than a buffer: every cut between buffers falls inside a record.
  std::vector<std::string> records;
  for (int i = 0; i < 40; ++i)
    records.push_back(
        std::string(static_cast<std::size_t>(50 + i * 7), static_cast<char>('a' + i % 26)));
  std::atomic<bool> cancelled{false};
  StateTimer backpressured;
  InputGate gate(1);
  auto pool = std::make_shared<BufferPool>(64, 1000);
  ResultPartition partition(pool, {std::make_shared<LocalChannelSink>(&gate, 0)}, &cancelled,
                            &backpressured);
  weir::NetworkOutputSpec spec;
  spec.partitioner = weir::Partitioner::kForward;
  weir::detail::ExchangeWriter<std::string> writer(partition, spec, 0, {});
  weir::RecordBatch<std::string> batch;
  for (std::size_t i = 0; i < records.size(); ++i) {
    batch.nextSlot() = records[i];
    batch.commit(i % 2 == 0 ? weir::kNoTimestamp : static_cast<std::int64_t>(i));
  }
  writer.consume(batch);
  partition.finish();
  std::vector<std::string> buffers;
  while (auto item = gate.poll(Clock::now(), cancelled)) {
    if (item->buffer.kind() != Buffer::Kind::kData) break;
    buffers.emplace_back(reinterpret_cast<const char*>(item->buffer.bytes()), item->buffer.size());
  }
  REQUIRE(buffers.size() > 20);
  auto bytes = [](const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); };
  for (std::size_t cut = 1; cut < buffers.size(); ++cut) {
    Collect<std::string> before;
    weir::detail::InputReader<std::string> first(1, &before);
    for (std::size_t i = 0; i < cut; ++i)
      REQUIRE(first.read(0, bytes(buffers[i]), buffers[i].size()).empty());
    std::string partial;
    first.partialFrame(0, partial);
    CHECK(partial.empty() == !first.hasPartialRecord());
    // A fresh reader given the partial frame and then the rest gets the remaining records.
    Collect<std::string> after;
    weir::detail::InputReader<std::string> second(1, &after);
    REQUIRE(second.read(0, bytes(partial), partial.size()).empty());
    for (std::size_t i = cut; i < buffers.size(); ++i)
      REQUIRE(second.read(0, bytes(buffers[i]), buffers[i].size()).empty());
    CHECK_FALSE(second.hasPartialRecord());
    std::vector<std::string> all = before.values;
    all.insert(all.end(), after.values.begin(), after.values.end());
    CHECK(all == records);
    std::vector<std::int64_t> stamps = before.timestamps;
    stamps.insert(stamps.end(), after.timestamps.begin(), after.timestamps.end());
    REQUIRE(stamps.size() == records.size());
    for (std::size_t i = 0; i < records.size(); ++i)
      CHECK(stamps[i] == (i % 2 == 0 ? weir::kNoTimestamp : static_cast<std::int64_t>(i)));
  }
}

TEST_CASE("exchange: a reader hands a buffer over one batch at a time") {
  // Small records: a 64 KiB buffer holds several batches of them.
  constexpr std::size_t kBatch = weir::RecordBatch<std::int64_t>::kCapacity;
  const std::size_t count = 2 * kBatch + kBatch / 2;
  std::string buffer;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint8_t frame[weir::kFrameHeaderSize + sizeof(std::int64_t)];
    weir::detail::storeFrameHeader(frame, sizeof(std::int64_t));
    const auto value = static_cast<std::int64_t>(i);
    std::memcpy(frame + weir::kFrameHeaderSize, &value, sizeof value);
    buffer.append(reinterpret_cast<const char*>(frame), sizeof frame);
  }
  // The first 5 of the 12 bytes of one more record: it ends in the next buffer.
  std::string next_buffer = buffer.substr(0, 12);
  buffer += next_buffer.substr(0, 5);
  next_buffer.erase(0, 5);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());

  Collect<std::int64_t> got;
  weir::detail::InputReader<std::int64_t> reader(1, &got);
  weir::InputProgress progress;
  // At most as many records as asked for.
  REQUIRE(reader.readBatch(0, data, buffer.size(), 10, progress).empty());
  CHECK(progress.records == 10);
  CHECK(progress.bytes == 10 * 12);
  REQUIRE(reader.readBatch(0, data + 120, buffer.size() - 120, 0, progress).empty());
  CHECK(progress.records == 1);  // at least one
  CHECK(progress.bytes == 12);
  CHECK(got.values == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  got.values.clear();
  got.batches = 0;
  // Else at most one batch: the first one takes the rest of the first batch's worth.
  std::size_t offset = 132;
  std::vector<std::size_t> sizes;
  while (offset < buffer.size()) {
    REQUIRE(reader.readBatch(0, data + offset, buffer.size() - offset, 1 << 20, progress).empty());
    REQUIRE(progress.bytes > 0);
    CHECK(progress.records == got.values.size() - (sizes.empty() ? 0 : sizes.back()));
    offset += progress.bytes;
    sizes.push_back(got.values.size());
    if (offset < buffer.size()) {
      // A batch ended early: the rest starts with a record frame, and no record is held back.
      CHECK_FALSE(reader.hasPartialRecord());
      std::string partial;
      reader.partialFrame(0, partial);
      CHECK(partial.empty());
      CHECK(weir::detail::loadFrameHeader(data + offset) == sizeof(std::int64_t));
    }
  }
  CHECK(sizes == std::vector<std::size_t>{kBatch, 2 * kBatch, count - 11});
  CHECK(got.batches == 3);
  CHECK(offset == buffer.size());
  CHECK(reader.hasPartialRecord());  // the cut record counts as read
  const auto* rest = reinterpret_cast<const std::uint8_t*>(next_buffer.data());
  REQUIRE(reader.readBatch(0, rest, next_buffer.size(), 1, progress).empty());
  CHECK(progress.bytes == next_buffer.size());
  CHECK(progress.records == 1);
  REQUIRE(got.values.size() == count - 11 + 1);
  for (std::size_t i = 0; i + 11 < count; ++i)
    CHECK(got.values[i] == static_cast<std::int64_t>(i + 11));
  CHECK(got.values.back() == 0);

  // read() takes every batch of a buffer in one call.
  Collect<std::int64_t> all;
  weir::detail::InputReader<std::int64_t> whole(1, &all);
  REQUIRE(whole.read(0, data, buffer.size() - 5).empty());
  CHECK(all.values.size() == count);
  CHECK(all.batches == 3);
}

TEST_CASE("input gate: barriers waiting too long behind data are promoted to unaligned ones") {
  const std::atomic<bool> cancelled{false};
  InputGate gate(3);
  auto pool = std::make_shared<BufferPool>(16, 16);
  auto data = [&](std::uint8_t value) { return oneByte(pool, value); };
  auto barrier = [](std::int64_t id, std::int64_t timestamp_ms, bool savepoint) {
    return Buffer::barrier(std::make_shared<const CheckpointBarrier>(
        CheckpointBarrier{id, timestamp_ms, savepoint, false, false, ""}));
  };
  gate.push(0, data(1));
  gate.push(0, data(2));
  gate.push(0, barrier(5, 1000, false));
  gate.push(0, data(3));
  gate.push(1, data(10));
  gate.push(1, barrier(6, 2000, false));  // triggered after the cutoff
  gate.push(2, data(20));
  gate.push(2, barrier(7, 1000, true));  // a savepoint stays aligned
  CHECK(gate.promoteBarriers(1500) == 1);
  CHECK(gate.promoteBarriers(1500) == 0);  // already at the front
  auto first = gate.poll(Clock::now(), cancelled);
  REQUIRE(first.has_value());
  CHECK(first->channel == 0);
  REQUIRE(first->buffer.kind() == Buffer::Kind::kBarrier);
  CHECK(first->buffer.barrier()->id == 5);
  CHECK(first->buffer.barrier()->unaligned);
  CHECK(first->buffer.overtaken() == 2);
  std::vector<std::string> got;
  while (auto item = gate.poll(Clock::now(), cancelled)) {
    got.push_back(std::to_string(item->channel) + ":" +
                  (item->buffer.kind() == Buffer::Kind::kBarrier
                       ? "b" + std::to_string(item->buffer.barrier()->id)
                       : std::to_string(item->buffer.bytes()[0])));
  }
  CHECK(got == std::vector<std::string>{"1:10", "2:20", "0:1", "1:b6", "2:b7", "0:2", "0:3"});
}

namespace {

// A result partition of `channels` local channels into one gate, drawing on a pool of `segments`
// buffers of 128 bytes.
struct LocalPartition {
  LocalPartition(int channels, std::size_t segments)
      : gate(channels), pool(std::make_shared<BufferPool>(128, segments)) {
    std::vector<std::shared_ptr<ChannelSink>> sinks;
    for (int i = 0; i < channels; ++i)
      sinks.push_back(std::make_shared<LocalChannelSink>(&gate, i));
    partition = std::make_unique<ResultPartition>(pool, sinks, &cancelled, &backpressured);
  }
  std::atomic<bool> cancelled{false};
  StateTimer backpressured;
  InputGate gate;
  std::shared_ptr<BufferPool> pool;
  std::unique_ptr<ResultPartition> partition;
};

}  // namespace

TEST_CASE("result partition: emitPriorityBarrier flushes, then overtakes what is queued") {
  LocalPartition local(2, 4);
  auto& cancelled = local.cancelled;
  auto& gate = local.gate;
  auto& partition = *local.partition;
  REQUIRE(partition.advance(0));
  *partition.cursors()[0].pos++ = 1;
  REQUIRE(partition.advance(0));  // hands the first buffer over
  *partition.cursors()[0].pos++ = 2;
  auto barrier =
      std::make_shared<CheckpointBarrier>(CheckpointBarrier{4, 0, false, false, false, ""});
  barrier->unaligned = true;
  int persisted = 0;  // local channels: the consumer persists what the barrier overtakes
  partition.emitPriorityBarrier(barrier, [&](int, const Buffer&) { ++persisted; });
  CHECK(persisted == 0);
  CHECK_FALSE(partition.hasPendingData());
  std::vector<std::string> got;
  while (auto item = gate.poll(Clock::now(), cancelled)) {
    if (item->buffer.kind() == Buffer::Kind::kBarrier) {
      got.push_back(std::to_string(item->channel) + ":b/" +
                    std::to_string(item->buffer.overtaken()));
    } else {
      got.push_back(std::to_string(item->channel) + ":" + std::to_string(item->buffer.bytes()[0]));
    }
  }
  CHECK(got == std::vector<std::string>{"0:b/2", "1:b/0", "0:1", "0:2"});
}

TEST_CASE("remote output channel: an aligned barrier waiting for credit overtakes after the timeout") {
  auto pool = std::make_shared<BufferPool>(16, 8);
  auto data = [&](std::uint8_t value) { return oneByte(pool, value); };
  auto barrier = [](std::int64_t id, std::int64_t timestamp_ms) {
    auto b = std::make_shared<CheckpointBarrier>();
    b->id = id;
    b->timestamp_ms = timestamp_ms;
    return Buffer::barrier(std::move(b));
  };
  // Not bound to a connection: nothing leaves the queue.
  auto channel = std::make_shared<RemoteOutputChannel>("key", "peer", nullptr);
  std::string persisted;
  auto persist = [&](const Buffer& b) { persisted += std::to_string(b.bytes()[0]); };
  channel->push(data(1));
  channel->push(barrier(1, 100));
  channel->push(data(2));
  channel->push(Buffer::watermark(5));
  channel->push(data(3));
  channel->push(barrier(2, 200));
  CHECK(channel->settleBarrier(3, 1000, persist) == false);  // not here
  // Triggered after the cutoff: it keeps waiting.
  CHECK(channel->settleBarrier(2, 199, persist) == true);
  CHECK(persisted.empty());
  // At the cutoff: it overtakes the data after barrier 1, which is persisted, in order.
  CHECK(channel->settleBarrier(2, 200, persist) == false);
  CHECK(persisted == "23");
  CHECK(channel->queued() == 6);
  // Promoted once: it is an unaligned barrier now, and nothing more is persisted.
  persisted.clear();
  CHECK(channel->settleBarrier(2, 1000, persist) == false);
  CHECK(persisted.empty());
  // At the front, with nothing to overtake, a barrier just waits to be sent.
  auto front = std::make_shared<RemoteOutputChannel>("key2", "peer", nullptr);
  front->push(barrier(7, 0));
  front->push(data(4));
  CHECK(front->settleBarrier(7, 1000, persist) == true);
  CHECK(persisted.empty());
}

TEST_CASE("result partition: recovered output goes out first, as it was persisted") {
  LocalPartition local(2, 4);
  auto& cancelled = local.cancelled;
  auto& gate = local.gate;
  auto& partition = *local.partition;
  auto& pool = local.pool;
  const std::uint8_t recovered[] = {7, 8};
  partition.emitRecovered(1, recovered, sizeof recovered);
  CHECK(pool->inUse() == 0);  // a copy on the heap: restoring takes nothing from the pool
  REQUIRE(partition.advance(1));
  *partition.cursors()[1].pos++ = 9;
  partition.flushAll();
  std::vector<std::string> got;
  while (auto item = gate.poll(Clock::now(), cancelled)) {
    std::string bytes;
    for (std::size_t i = 0; i < item->buffer.size(); ++i)
      bytes += std::to_string(item->buffer.bytes()[i]);
    got.push_back(std::to_string(item->channel) + ":" + bytes);
  }
  CHECK(got == std::vector<std::string>{"1:78", "1:9"});
}

TEST_CASE("result partition: emitBarrier flushes partial buffers, then sends one barrier to all") {
  std::atomic<bool> cancelled{false};
  StateTimer backpressured;
  InputGate gate(3);
  // Two segments, both taken by partly filled buffers: the barrier must not need a third.
  auto pool = std::make_shared<BufferPool>(128, 2);
  std::vector<std::shared_ptr<ChannelSink>> sinks;
  for (int i = 0; i < 3; ++i)
    sinks.push_back(std::make_shared<LocalChannelSink>(&gate, i));
  ResultPartition partition(pool, sinks, &cancelled, &backpressured);
  REQUIRE(partition.advance(0));
  REQUIRE(partition.advance(2));
  *partition.cursors()[0].pos++ = 10;
  *partition.cursors()[2].pos++ = 20;
  *partition.cursors()[2].pos++ = 21;
  CHECK(pool->tryRequest() == nullptr);

  auto barrier = std::make_shared<const CheckpointBarrier>(
      CheckpointBarrier{3, 99, false, false, false, "/chk/3"});
  partition.emitBarrier(barrier);
  CHECK_FALSE(partition.hasPendingData());
  CHECK(gate.queued() == 5);

  std::vector<std::vector<std::string>> got(3);
  while (auto item = gate.poll(Clock::now(), cancelled)) {
    auto& seen = got[static_cast<std::size_t>(item->channel)];
    if (item->buffer.kind() == Buffer::Kind::kBarrier) {
      CHECK(item->buffer.barrier() == barrier);  // the same object on every channel
      seen.push_back("barrier");
    } else {
      REQUIRE(item->buffer.kind() == Buffer::Kind::kData);
      std::string bytes;
      for (std::size_t i = 0; i < item->buffer.size(); ++i)
        bytes += std::to_string(item->buffer.bytes()[i]) + " ";
      seen.push_back(bytes);
    }
  }
  CHECK(got[0] == std::vector<std::string>{"10 ", "barrier"});
  CHECK(got[1] == std::vector<std::string>{"barrier"});
  CHECK(got[2] == std::vector<std::string>{"20 21 ", "barrier"});
  CHECK(pool->inUse() == 0);
  CHECK(barrier.use_count() == 1);
}
