// A slow consumer back-pressures its producer: the producer blocks on its bounded buffer pool, the
// records in flight stay bounded, and the blocked time is reported.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>

#include "engine/job_test_util.h"
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

  void take() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return open || permits > 0; });
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
};

// Opens the valve when the test ends, however it ends, so the blocked sink lets its task stop.
struct ReleaseOnExit {
  std::shared_ptr<Valve> valve;
  ~ReleaseOnExit() { valve->release(); }
};

struct SlowSink {
  std::shared_ptr<Valve> valve;
  void invoke(const std::string&) { valve->take(); }
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
    job.fromGenerator([](std::uint64_t i) { return std::string(100, char('a' + i % 26)); })
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
    return valve->consumedSoFar() == 1000 && src->buffers_in_use == src->max_buffers &&
           src->backpressured_ns > 0;
  }));
  const TaskSnapshot* src = find(tasks, 0);
  const std::uint64_t emitted = src->vertices[0].records_out;
  // Frames are 4 + 1 + 100 bytes: 39 per 4 KiB buffer. What the source emitted beyond what the sink
  // consumed must fit in the pool's buffers plus one batch in the writer.
  const std::uint64_t per_buffer = 4096 / 105;
  const std::uint64_t bound =
      src->max_buffers * per_buffer + weir::RecordBatch<std::string>::kCapacity;
  CHECK(src->max_buffers == 1 * 2 + 8);
  CHECK(emitted > 1000);
  CHECK(emitted - 1000 <= bound);
  CHECK(src->peak_buffers_in_use <= src->max_buffers);

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
