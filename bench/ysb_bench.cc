// weir_ysb_bench: the YSB-like job (plugins/examples/ysb.h) on one thread, against the same logic
// in a hand-written loop with a hash map, in the same process.
//
//   weir_ysb_bench [--events N] [--runs R] [--backend heap|rocksdb|both] [--campaigns C]
//
// The job side instantiates the job's real operators (timestamps and watermarks -> filter views
// -> map ad to campaign -> keyed 10 s tumbling event-time window aggregate -> counting sink),
// wires them in one thread as a chain would, and feeds them batches from the job's generator;
// a periodic-watermark tick (the TaskManager's auto-watermark timer) runs every 65536 events.
// The baseline runs the generator, the filter, the campaign table and a hash map of
// (campaign, window) counts, emitting windows at the same watermark ticks.
//
// Both sides check their results against each other (count and checksum of every window result)
// and the program exits non-zero on a mismatch. Throughput is events (generated records) per
// second of wall time, best of R runs.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "../plugins/examples/ysb.h"
#include "state/rocksdb_kv_store.h"
#include "weir/weir.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kTickEvents = 65'536;

struct Result {
  std::uint64_t windows = 0;
  std::uint64_t views = 0;
  std::uint64_t checksum = 0;
  double seconds = 0;

  void add(std::int32_t campaign, std::int64_t window_end, std::int64_t count) {
    ++windows;
    views += static_cast<std::uint64_t>(count);
    checksum += ysb::mix((static_cast<std::uint64_t>(campaign) << 40) ^
                         static_cast<std::uint64_t>(window_end)) *
                static_cast<std::uint64_t>(count);
  }
  bool sameAs(const Result& o) const {
    return windows == o.windows && views == o.views && checksum == o.checksum;
  }
};

// The hand-written version of the job.
Result runBaseline(const ysb::Params& p, std::uint64_t events) {
  Result r;
  const auto start = Clock::now();
  const ysb::Generator gen{p};
  ysb::AdToCampaign campaigns(p);
  campaigns.buildTable();
  std::unordered_map<std::uint64_t, std::int64_t> counts;  // (campaign, window index) -> views
  std::int64_t max_ts = std::numeric_limits<std::int64_t>::min();
  auto emitUpTo = [&](std::int64_t watermark) {
    for (auto it = counts.begin(); it != counts.end();) {
      const auto window = static_cast<std::int64_t>(it->first & 0xffffffffULL);
      const std::int64_t end = (window + 1) * p.window_ms;
      if (end - 1 <= watermark) {
        r.add(static_cast<std::int32_t>(it->first >> 32), end, it->second);
        it = counts.erase(it);
      } else {
        ++it;
      }
    }
  };
  for (std::uint64_t i = 0; i < events; ++i) {
    const ysb::AdEvent e = gen(i);
    max_ts = std::max(max_ts, e.event_time);
    if (e.event_type == ysb::kView) {
      const ysb::CampaignView v = campaigns.map(e);
      const std::uint64_t window = static_cast<std::uint64_t>(v.event_time / p.window_ms);
      ++counts[(static_cast<std::uint64_t>(v.campaign_id) << 32) | window];
    }
    if ((i + 1) % kTickEvents == 0) emitUpTo(max_ts - p.max_out_of_orderness_ms - 1);
  }
  emitUpTo(std::numeric_limits<std::int64_t>::max());
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

// A task environment with a manual clock and, for RocksDB, the TaskManager's store resources.
class BenchEnvironment final : public weir::TaskEnvironment {
 public:
  explicit BenchEnvironment(weir::engine::RocksDbResources* rocks) : rocks_(rocks) {}
  const weir::JobArgs& args() const noexcept override { return args_; }
  weir::OutputGate& outputGate(std::size_t) noexcept override { std::abort(); }
  std::int64_t currentProcessingTime() const noexcept override { return now; }
  weir::Status openKvStore(int vertex_id, weir::KvStore*& out) noexcept override {
    if (rocks_ == nullptr) return weir::Status::invalidArgument("no RocksDB in this run");
    auto store = rocks_->openStore(weir::engine::rocksDbStoreName(
        "bench-" + std::to_string(++opened_), "vertex-" + std::to_string(vertex_id), 0));
    if (!store) return store.status();
    store_ = std::move(*store);
    out = store_.get();
    return weir::Status();
  }
  std::int64_t now = 0;

 private:
  weir::JobArgs args_;
  weir::engine::RocksDbResources* rocks_;
  std::unique_ptr<weir::engine::RocksDbKvStore> store_;
  static inline int opened_ = 0;
};

struct CountingSink {
  Result* result;
  void invoke(const ysb::WindowCount& c) const {
    result->add(c.campaign_id, c.window_end, c.count);
  }
};

Result runJob(const ysb::Params& p, std::uint64_t events, weir::StateBackendKind backend,
              weir::engine::RocksDbResources* rocks) {
  Result r;
  weir::JobBuilder job;
  auto source = job.fromGenerator(ysb::Generator{p}, events);
  ysb::counts(source, p).addSink(CountingSink{&r});
  auto& nodes = source.builderState()->nodes;
  std::vector<std::unique_ptr<weir::detail::OperatorInstance>> ops;
  for (std::size_t i = 1; i < nodes.size(); ++i)  // every operator but the source
    ops.push_back(nodes[i]->instantiate());

  BenchEnvironment env(rocks);
  weir::RuntimeContext ctx("ysb bench", "ysb", 0, 1, 128, &env.args());
  weir::RuntimeContext::Internals internals;
  internals.env = &env;
  internals.auto_watermark_interval_ms = 200;
  internals.state_backend = backend;
  internals.timers_in_kv_store = backend == weir::StateBackendKind::kRocksDb;
  for (std::size_t i = 0; i + 1 < ops.size(); ++i)
    ops[i]->addOutput(ops[i + 1]->inputPort());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    internals.vertex_id = static_cast<int>(i + 1);
    ctx.setInternals(internals);
    ops[i]->name = nodes[i + 1]->def.name;
    ops[i]->finishWiring();
    ops[i]->open(ctx);
  }
  auto* input = static_cast<weir::BatchConsumer<ysb::AdEvent>*>(ops.front()->inputPort());
  weir::detail::OperatorInstance& watermarks = *ops.front();

  const auto start = Clock::now();
  const ysb::Generator gen{p};
  weir::RecordBatch<ysb::AdEvent> batch;
  std::uint64_t since_tick = 0;
  for (std::uint64_t i = 0; i < events;) {
    batch.clear();
    ysb::AdEvent* slots = batch.data();
    const std::uint64_t n =
        std::min<std::uint64_t>(weir::RecordBatch<ysb::AdEvent>::kCapacity, events - i);
    for (std::uint64_t k = 0; k < n; ++k)
      slots[k] = gen(i + k);
    batch.setSize(n);
    input->consume(batch);
    i += n;
    since_tick += n;
    if (since_tick >= kTickEvents) {
      since_tick = 0;
      env.now += internals.auto_watermark_interval_ms;
      watermarks.onProcessingTime(env.now);
    }
  }
  input->consumeWatermark(weir::kMaxWatermark);
  for (auto& op : ops)
    op->endInput();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& op : ops)
    op->close();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("The YSB-like job on one thread against a hand-written loop");
  std::uint64_t events = 50'000'000;
  int runs = 3;
  std::string backend = "both";
  ysb::Params p;
  app.add_option("--events", events, "generated events per run")->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "runs per side (the best counts)")->check(CLI::PositiveNumber);
  app.add_option("--backend", backend, "state backend of the job side")
      ->check(CLI::IsMember({"heap", "rocksdb", "both"}));
  app.add_option("--campaigns", p.campaigns, "campaigns")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<weir::engine::RocksDbResources> rocks;
  std::filesystem::path rocks_dir;
  if (backend != "heap") {
    rocks_dir = std::filesystem::temp_directory_path();
    weir::engine::RocksDbOptions options;
    options.local_dir = rocks_dir.string();
    auto created = weir::engine::RocksDbResources::create(options);
    if (!created) {
      std::fprintf(stderr, "RocksDB: %s\n", created.status().message().c_str());
      return 1;
    }
    rocks = std::move(*created);
  }

  Result best_base;
  for (int i = 0; i < runs; ++i) {
    Result r = runBaseline(p, events);
    if (i == 0 || r.seconds < best_base.seconds) best_base = r;
  }
  std::printf("events %llu, %lld campaigns, %llu views in %llu window results\n",
              static_cast<unsigned long long>(events), static_cast<long long>(p.campaigns),
              static_cast<unsigned long long>(best_base.views),
              static_cast<unsigned long long>(best_base.windows));
  const double base_rate = static_cast<double>(events) / best_base.seconds;
  std::printf("%-28s %8.2f M events/s\n", "baseline (hash map loop)", base_rate / 1e6);

  bool ok = true;
  for (const char* name : {"heap", "rocksdb"}) {
    if (backend != "both" && backend != name) continue;
    const bool is_rocks = std::string(name) == "rocksdb";
    const std::uint64_t n = is_rocks ? std::max<std::uint64_t>(events / 10, 1) : events;
    Result best;
    for (int i = 0; i < runs; ++i) {
      Result r =
          runJob(p, n, is_rocks ? weir::StateBackendKind::kRocksDb : weir::StateBackendKind::kHeap,
                 rocks.get());
      if (i == 0 || r.seconds < best.seconds) best = r;
    }
    Result expected = n == events ? best_base : runBaseline(p, n);
    if (!best.sameAs(expected)) {
      std::fprintf(stderr, "MISMATCH (%s): %llu windows / %llu views vs baseline %llu / %llu\n",
                   name, static_cast<unsigned long long>(best.windows),
                   static_cast<unsigned long long>(best.views),
                   static_cast<unsigned long long>(expected.windows),
                   static_cast<unsigned long long>(expected.views));
      ok = false;
    }
    const double rate = static_cast<double>(n) / best.seconds;
    const double base = n == events ? base_rate : static_cast<double>(n) / expected.seconds;
    std::printf("%-28s %8.2f M events/s   ratio to baseline %.3f%s\n",
                (std::string("weir, ") + name + " state").c_str(), rate / 1e6, rate / base,
                n == events ? "" : "   (on events/10)");
  }
  return ok ? 0 : 1;
}
