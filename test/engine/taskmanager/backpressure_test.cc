// A slow consumer back-pressures its producer: the producer blocks on its bounded buffer pool, the
// records in flight stay bounded (by the pool and its overdraft), and the blocked time is reported.
// A back-pressured task waits for an output buffer between records, where checkpoint barriers
// still reach it.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "checkpoint/channel_state_file.h"
#include "engine/job_test_util.h"
#include "process_util.h"
#include "weir/weir.h"

using weir::JobBuilder;
using weir::engine::TaskSnapshot;

namespace {

// Lets the sink consume only as many records as the test permits.
struct Valve {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t permits = 0;
  std::uint64_t consumed = 0;
  bool open = false;
  bool waiting = false;  // the sink waits for a permit
  // The sink's snapshots: how many records it had taken by each.
  std::vector<std::uint64_t> consumed_at_snapshots;

  void take() {
    std::unique_lock<std::mutex> lock(mu);
    waiting = true;
    cv.wait(lock, [&] { return open || permits > 0; });
    waiting = false;
    if (!open) --permits;
    ++consumed;
  }
  void grant(std::uint64_t n) {
    {
      std::lock_guard<std::mutex> lock(mu);
      permits += n;
    }
    cv.notify_all();
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      open = true;
    }
    cv.notify_all();
  }
  std::uint64_t consumedSoFar() {
    std::lock_guard<std::mutex> lock(mu);
    return consumed;
  }
  // True when the sink took `n` records and waits for the next permit.
  bool waitingAfter(std::uint64_t n) {
    std::lock_guard<std::mutex> lock(mu);
    return waiting && consumed == n;
  }
  void snapshotTaken() {
    std::lock_guard<std::mutex> lock(mu);
    consumed_at_snapshots.push_back(consumed);
  }
  std::optional<std::uint64_t> consumedAtSnapshot(std::size_t n) {
    std::lock_guard<std::mutex> lock(mu);
    if (consumed_at_snapshots.size() < n) return std::nullopt;
    return consumed_at_snapshots[n - 1];
  }
};

// Opens the valve when the test ends, however it ends, so the blocked sink lets its task stop.
struct ReleaseOnExit {
  std::shared_ptr<Valve> valve;
  ~ReleaseOnExit() { valve->release(); }
};

// Record i of the jobs below: 100 bytes (frames of 4 + 1 + 100 bytes).
std::string letters(std::uint64_t i) { return std::string(100, char('a' + i % 26)); }

struct SlowSink {
  std::shared_ptr<Valve> valve;
  std::chrono::milliseconds work{0};  // spent on each record after its permit
  void invoke(const std::string&) {
    valve->take();
    if (work.count() > 0) std::this_thread::sleep_for(work);
  }
  void snapshotState(const weir::CheckpointOptions&) { valve->snapshotTaken(); }
};

const TaskSnapshot* find(const std::vector<TaskSnapshot>& tasks, int chain) {
  for (const auto& t : tasks) {
    if (t.chain_id == chain) return &t;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("back-pressure: an unbounded source behind a stalled sink stays bounded") {
  auto valve = std::make_shared<Valve>();
  auto build = [valve](JobBuilder& job) {
    job.fromGenerator(letters)
        .name("source")
        .rebalance()
        .addSink(SlowSink{valve})
        .name("slow sink");
  };
  weir::engine::TaskExecutorOptions options;
  options.segment_size = 4096;
  auto job = weir::testing::startJob(build, 1, {}, options);
  REQUIRE(job.isOk());
  ReleaseOnExit release_on_exit{valve};  // destroyed before the job
  valve->grant(1000);

  // Wait until the source is blocked: every buffer of its pool is in use and it is waiting.
  std::vector<TaskSnapshot> tasks;
  REQUIRE(weir::testing::eventually([&] {
    tasks = (*job)->snapshot();
    const TaskSnapshot* src = find(tasks, 0);
    return valve->consumedSoFar() == 1000 && src->buffers_in_use >= src->max_buffers &&
           src->backpressured_ns > 0;
  }));
  const TaskSnapshot* src = find(tasks, 0);
  const std::uint64_t emitted = src->vertices[0].records_out;
  // Frames are 4 + 1 + 100 bytes: 39 per 4 KiB buffer. What the source emitted beyond what the sink
  // consumed must fit in the pool's buffers and its overdraft plus one batch in the writer.
  const std::uint64_t per_buffer = 4096 / 105;
  const std::uint64_t buffers = src->max_buffers + src->max_overdraft;
  const std::uint64_t bound = buffers * per_buffer + weir::RecordBatch<std::string>::kCapacity;
  CHECK(src->max_buffers == 1 * 2 + 8);
  CHECK(src->max_overdraft == 5);
  CHECK(emitted > 1000);
  CHECK(emitted - 1000 <= bound);
  CHECK(src->peak_buffers_in_use <= buffers);

  // Still blocked a while later: the emitted count cannot grow while the sink consumes nothing.
  REQUIRE(weir::testing::eventually([&] {
    return find((*job)->snapshot(), 0)->backpressured_ns > src->backpressured_ns + 20'000'000;
  }));
  CHECK(find((*job)->snapshot(), 0)->vertices[0].records_out == emitted);

  // Letting the sink go releases the source.
  valve->grant(5000);
  REQUIRE(weir::testing::eventually(
      [&] { return find((*job)->snapshot(), 0)->vertices[0].records_out > emitted + 3000; }));
  valve->release();
  (*job)->cancel();
  CHECK((*job)->wait().code() == weir::Status::Code::kCancelled);
}

namespace {

// The acknowledgements and declines of the tasks' checkpoints, as the executor reports them.
struct Acks {
  std::mutex mu;
  std::vector<weir::thrift::CheckpointAck> acks;
  std::vector<std::string> declines;

  void checkNoneDeclined() {
    std::lock_guard<std::mutex> lock(mu);
    CHECK_MESSAGE(declines.empty(), declines.front());
  }
  std::optional<weir::thrift::CheckpointAck> of(int chain, std::int64_t checkpoint = 1) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& a : acks) {
      if (a.chainId == chain && a.checkpointId == checkpoint) return a;
    }
    return std::nullopt;
  }
};

// Unaligned checkpoints into `dir`/job, reported to `acks`.
weir::engine::ExecutorCheckpointing unalignedCheckpoints(const weir::testing::TempDir& dir,
                                                         const std::shared_ptr<Acks>& acks) {
  weir::engine::ExecutorCheckpointing checkpointing;
  checkpointing.enabled = true;
  checkpointing.job_dir = dir.file("job");
  checkpointing.unaligned = true;
  checkpointing.acknowledge = [acks](weir::thrift::CheckpointAck ack) {
    std::lock_guard<std::mutex> lock(acks->mu);
    acks->acks.push_back(std::move(ack));
  };
  checkpointing.decline = [acks](std::int64_t, int chain, int, const std::string& reason) {
    std::lock_guard<std::mutex> lock(acks->mu);
    acks->declines.push_back("chain " + std::to_string(chain) + ": " + reason);
  };
  return checkpointing;
}

// Checkpoint `id` of `dir`/job, triggered now.
weir::engine::CheckpointBarrier barrierNow(const weir::testing::TempDir& dir, std::int64_t id) {
  weir::engine::CheckpointBarrier barrier;
  barrier.id = id;
  barrier.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  barrier.target_dir = dir.file("job/chk-" + std::to_string(id));
  return barrier;
}

// Grants the sink one record at a time (`granted` so far) until it took snapshot n.
void grantUntilSnapshot(Valve& valve, std::uint64_t& granted, std::size_t n) {
  while (!valve.consumedAtSnapshot(n) && granted < 1000) {
    valve.grant(1);
    ++granted;
    REQUIRE(weir::testing::eventually(
        [&] { return valve.waitingAfter(granted) || valve.consumedAtSnapshot(n).has_value(); }));
  }
  REQUIRE(valve.consumedAtSnapshot(n).has_value());
}

}  // namespace

TEST_CASE("back-pressure: a task waiting for an output buffer takes an unaligned checkpoint") {
  // source -> relay -> stalled sink: the relay's output pool is exhausted and stays so, as long as
  // the sink takes nothing. The relay must still pass the barrier on and acknowledge.
  auto valve = std::make_shared<Valve>();
  auto build = [valve](JobBuilder& job) {
    job.fromGenerator(letters)
        .name("source")
        .rebalance()
        .map([](const std::string& s) { return s; })
        .name("relay")
        .rebalance()
        .addSink(SlowSink{valve})
        .name("stalled sink");
  };
  weir::testing::TempDir dir;
  auto acks = std::make_shared<Acks>();
  // Buffers of 32 KiB: a poll of the generator (at most 256 records of 105 bytes) needs at most
  // two, so that the source never blocks inside one either.
  auto job = weir::testing::startJob(build, 1, {}, {}, unalignedCheckpoints(dir, acks));
  REQUIRE(job.isOk());
  ReleaseOnExit release_on_exit{valve};
  REQUIRE((*job)->plan().tasks.size() == 3);

  // The relay (chain 1) is back-pressured: its pool is used up, and it waits. The sink waits in
  // its first record (had it not taken a buffer yet, the barrier could reach it first).
  REQUIRE(weir::testing::eventually([&] {
    const auto tasks = (*job)->snapshot();
    const TaskSnapshot* relay = find(tasks, 1);
    return relay->buffers_in_use >= relay->max_buffers && relay->backpressured_ns > 0 &&
           valve->waitingAfter(0);
  }));

  REQUIRE((*job)->triggerCheckpoint(barrierNow(dir, 1), {{0, 0}}).isOk());

  // Source and relay acknowledge while the sink still takes nothing.
  REQUIRE(weir::testing::eventually([&] { return acks->of(0) && acks->of(1); },
                                    std::chrono::seconds(10)));
  CHECK_FALSE(acks->of(2));
  acks->checkNoneDeclined();

  // Once the sink moves, it meets the barrier ahead of the data it overtook, and persists that
  // data as its in-flight input.
  valve->release();
  REQUIRE(weir::testing::eventually([&] { return acks->of(2).has_value(); }));
  const auto sink = *acks->of(2);
  REQUIRE(sink.vertices.size() == 1);
  CHECK_FALSE(sink.vertices[0].inputChannelState.empty());
  (*job)->cancel();
  CHECK((*job)->wait().code() == weir::Status::Code::kCancelled);
}

TEST_CASE("back-pressure: a slow task takes an unaligned barrier between two records") {
  // source -> slow sink over one channel. The sink takes one record at a time, as the test grants
  // them, and spends 2 ms on each, so its task hands the chain one record per call (what takes
  // about a millisecond; the first call takes one anyway). A barrier reaching it in the middle of
  // a buffer is taken after the record in progress, and the rest of the buffer becomes in-flight
  // input.
  auto valve = std::make_shared<Valve>();
  auto build = [valve](JobBuilder& job) {
    job.fromGenerator(letters)
        .name("source")
        .rebalance()
        .addSink(SlowSink{valve, std::chrono::milliseconds(2)})
        .name("slow sink");
  };
  weir::testing::TempDir dir;
  auto acks = std::make_shared<Acks>();
  weir::engine::TaskExecutorOptions options;
  options.buffer_timeout = std::chrono::seconds(60);  // buffers leave full
  auto job = weir::testing::startJob(build, 1, {}, options, unalignedCheckpoints(dir, acks));
  REQUIRE(job.isOk());
  ReleaseOnExit release_on_exit{valve};
  std::uint64_t granted = 1;
  valve->grant(1);
  REQUIRE(weir::testing::eventually([&] { return valve->waitingAfter(1); }));
  REQUIRE((*job)->triggerCheckpoint(barrierNow(dir, 1), {{0, 0}}).isOk());
  REQUIRE(weir::testing::eventually([&] { return acks->of(0).has_value(); }));
  grantUntilSnapshot(*valve, granted, 1);
  CHECK(*valve->consumedAtSnapshot(1) == 2);

  REQUIRE(weir::testing::eventually([&] { return acks->of(1).has_value(); }));
  acks->checkNoneDeclined();
  const auto sink = *acks->of(1);
  REQUIRE(sink.vertices.size() == 1);
  REQUIRE(sink.vertices[0].inputChannelState.size() == 1);
  // The in-flight input starts with the rest of that buffer: frames of 4 + 1 + 100 bytes, 312 in
  // a 32 KiB buffer, of which the sink had taken two.
  std::vector<std::size_t> sizes;
  REQUIRE(weir::engine::readChannelStateFile(
              dir.file("job"), sink.vertices[0].inputChannelState[0],
              [&](int channel, const std::uint8_t*, std::size_t size) {
                CHECK(channel == 0);
                sizes.push_back(size);
                return weir::Status::ok();
              })
              .isOk());
  REQUIRE_FALSE(sizes.empty());
  CHECK(sizes.front() == (32 * 1024 / 105 - 2) * 105);

  // Again: the sink waits for the permit of record `granted` + 1, in a call for that record alone.
  REQUIRE(weir::testing::eventually([&] { return valve->waitingAfter(granted); }));
  const std::uint64_t at_trigger = granted;
  REQUIRE((*job)->triggerCheckpoint(barrierNow(dir, 2), {{0, 0}}).isOk());
  REQUIRE(weir::testing::eventually([&] { return acks->of(0, 2).has_value(); }));
  grantUntilSnapshot(*valve, granted, 2);
  CHECK(*valve->consumedAtSnapshot(2) == at_trigger + 1);
  REQUIRE(weir::testing::eventually([&] { return acks->of(1, 2).has_value(); }));
  valve->release();
  (*job)->cancel();
  CHECK((*job)->wait().code() == weir::Status::Code::kCancelled);
}

TEST_CASE("back-pressure: a source chained to a slow operator is triggered between two records") {
  // generator -> slow sink, chained into one task. The task asks each poll of the generator for
  // about a millisecond's worth of records: after the first poll (one record) that is one record
  // here, so a trigger is handled after the record in progress rather than after a poll of 1024.
  auto valve = std::make_shared<Valve>();
  auto build = [valve](JobBuilder& job) {
    job.fromGenerator(letters)
        .name("source")
        .addSink(SlowSink{valve, std::chrono::milliseconds(2)})
        .name("slow sink");
  };
  weir::testing::TempDir dir;
  auto acks = std::make_shared<Acks>();
  auto job = weir::testing::startJob(build, 1, {}, {}, unalignedCheckpoints(dir, acks));
  REQUIRE(job.isOk());
  ReleaseOnExit release_on_exit{valve};
  REQUIRE((*job)->plan().tasks.size() == 1);
  std::uint64_t granted = 5;
  valve->grant(granted);
  REQUIRE(weir::testing::eventually([&] { return valve->waitingAfter(granted); }));
  REQUIRE((*job)->triggerCheckpoint(barrierNow(dir, 1), {{0, 0}}).isOk());
  grantUntilSnapshot(*valve, granted, 1);
  CHECK(*valve->consumedAtSnapshot(1) == 6);
  REQUIRE(weir::testing::eventually([&] { return acks->of(0).has_value(); }));
  acks->checkNoneDeclined();
  valve->release();
  (*job)->cancel();
  CHECK((*job)->wait().code() == weir::Status::Code::kCancelled);
}
