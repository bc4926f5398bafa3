// Windows: assigners, triggers, evictors, window functions, allowed lateness and late output,
// checked case by case and against a brute-force reference on random out-of-order streams.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "operator_harness.h"
#include "weir/weir.h"

namespace {

using std::chrono::milliseconds;
using weir::kNoTimestamp;
using weir::TimeWindow;
using weir::test::Harness;
using weir::test::HarnessOptions;

struct Event {
  std::string key;
  long value = 0;
  WEIR_SERDE_FIELDS(key, value)
};

std::string keyOf(const Event& e) {
  return e.key;
}

// Builds `window_fn(keyed stream)` in a job and instantiates its last vertex for the harness.
template <class Out, class Build>
Harness<Event, Out> windowHarness(Build build, HarnessOptions options = {}) {
  weir::JobBuilder job;
  auto keyed = job.fromCollection(std::vector<Event>{}).keyBy(&keyOf);
  auto stream = build(keyed);
  return Harness<Event, Out>(stream.builderState()->nodes.back()->instantiate(), options);
}

std::string joinSorted(std::vector<long> values) {
  std::sort(values.begin(), values.end());
  std::string s;
  for (long v : values) {
    if (!s.empty()) s += ',';
    s += std::to_string(v);
  }
  return s;
}

std::string describe(const std::string& key, std::int64_t start, std::int64_t end,
                     const std::vector<long>& values) {
  return key + " [" + std::to_string(start) + "," + std::to_string(end) + ") " + joinSorted(values);
}

// Process window function: one line per firing naming key, window and elements.
struct Describe {
  template <class W>
  void process(const std::string& key, weir::WindowContext<W>& ctx,
               const std::vector<Event>& elements, weir::Collector<std::string>& out) const {
    std::vector<long> values;
    for (const Event& e : elements)
      values.push_back(e.value);
    if constexpr (std::is_same_v<W, TimeWindow>) {
      out.collect(describe(key, ctx.window().start, ctx.window().end, values));
    } else {
      out.collect(describe(key, 0, 0, values));
    }
  }
};

struct SumEvents {
  Event reduce(const Event& a, const Event& b) const { return {a.key, a.value + b.value}; }
};

// Count and sum, as an aggregate function.
struct CountSum {
  std::pair<long, long> createAccumulator() const { return {0, 0}; }
  void add(const Event& e, std::pair<long, long>& acc) const {
    ++acc.first;
    acc.second += e.value;
  }
  std::pair<long, long> getResult(const std::pair<long, long>& acc) const { return acc; }
  void merge(const std::pair<long, long>& from, std::pair<long, long>& into) const {
    into.first += from.first;
    into.second += from.second;
  }
};

struct DescribeCountSum {
  void process(const std::string& key, weir::WindowContext<TimeWindow>& ctx,
               const std::vector<std::pair<long, long>>& results,
               weir::Collector<std::string>& out) const {
    REQUIRE(results.size() == 1);
    out.collect(key + " [" + std::to_string(ctx.window().start) + "," +
                std::to_string(ctx.window().end) + ") n=" + std::to_string(results[0].first) +
                " sum=" + std::to_string(results[0].second));
  }
};

// EventTimeTrigger under another name: forces the general (non-slicing) operator for sliding
// windows, which must give the same results.
struct CustomEventTimeTrigger : weir::EventTimeTrigger {};

// The backends every reference test runs on: heap, RocksDB, RocksDB with timers on the heap.
std::vector<HarnessOptions> backends() {
  HarnessOptions heap;
  HarnessOptions rocks;
  rocks.backend = weir::StateBackendKind::kRocksDb;
  HarnessOptions rocks_heap_timers = rocks;
  rocks_heap_timers.timers_in_kv_store = false;
  return {heap, rocks, rocks_heap_timers};
}

std::string backendName(const HarnessOptions& o) {
  if (o.backend == weir::StateBackendKind::kHeap) return "heap";
  return o.timers_in_kv_store ? "rocksdb" : "rocksdb, heap timers";
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// The lines only one side has, for failure messages.
std::string difference(std::vector<std::string> got, std::vector<std::string> want) {
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  std::vector<std::string> extra;
  std::vector<std::string> missing;
  std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
  std::set_difference(want.begin(), want.end(), got.begin(), got.end(),
                      std::back_inserter(missing));
  std::string s;
  for (std::size_t i = 0; i < extra.size() && i < 5; ++i)
    s += "\n  unexpected: " + extra[i];
  for (std::size_t i = 0; i < missing.size() && i < 5; ++i)
    s += "\n  missing:    " + missing[i];
  return s;
}

TEST_CASE("tumbling event-time windows fire when the watermark passes their end") {
  auto h = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::TumblingEventTimeWindows::of(milliseconds(10)))
        .template process<std::string>(Describe{});
  });
  h.open();
  h.push({"a", 1}, 1);
  h.push({"a", 2}, 9);
  h.push({"b", 3}, 5);
  h.push({"a", 4}, 12);
  h.watermark(8);
  CHECK(h.output().records.empty());
  h.watermark(9);
  CHECK(sorted(h.output().records) == std::vector<std::string>{"a [0,10) 1,2", "b [0,10) 3"});
  CHECK(h.output().timestamps == std::vector<std::int64_t>{9, 9});
  CHECK(h.output().watermarks == std::vector<std::int64_t>{8, 9});
  h.output().clear();
  h.endInput();
  CHECK(h.output().records == std::vector<std::string>{"a [10,20) 4"});
}

TEST_CASE("reduce and aggregate windows emit one value per window with its max timestamp") {
  auto r = windowHarness<Event>([](auto keyed) {
    return keyed.window(weir::TumblingEventTimeWindows::of(milliseconds(100), milliseconds(10)))
        .reduce(SumEvents{});
  });
  r.open();
  r.push({"k", 5}, 10);
  r.push({"k", 7}, 109);
  r.push({"k", 1}, 110);
  r.watermark(300);
  REQUIRE(r.output().records.size() == 2);
  CHECK(r.output().records[0].value == 12);
  CHECK(r.output().timestamps[0] == 109);
  CHECK(r.output().records[1].value == 1);
  CHECK(r.output().timestamps[1] == 209);

  auto a = windowHarness<std::pair<long, long>>([](auto keyed) {
    return keyed.window(weir::TumblingEventTimeWindows::of(milliseconds(100)))
        .aggregate(CountSum{});
  });
  a.open();
  a.push({"k", 5}, 10);
  a.push({"k", 7}, 20);
  a.endInput();
  CHECK(a.output().records == std::vector<std::pair<long, long>>{{2, 12}});
}

TEST_CASE("allowed lateness re-fires a window for each late record and late data goes aside") {
  const weir::OutputTag<Event> late_tag("late");
  auto h = windowHarness<std::string>([&](auto keyed) {
    auto w = keyed.window(weir::TumblingEventTimeWindows::of(milliseconds(10)));
    w.allowedLateness(milliseconds(5)).sideOutputLateData(late_tag);
    return w.template process<std::string>(Describe{});
  });
  auto& late = h.sideOutput(late_tag);
  h.open();
  h.push({"a", 1}, 3);
  h.watermark(10);
  CHECK(h.output().records == std::vector<std::string>{"a [0,10) 1"});
  h.push({"a", 2}, 4);  // late, but within lateness: fires again with both
  CHECK(h.output().records == std::vector<std::string>{"a [0,10) 1", "a [0,10) 1,2"});
  h.watermark(14);  // cleanup time is 9 + 5 = 14: state gone
  h.push({"a", 3}, 5);
  CHECK(h.output().records.size() == 2);
  REQUIRE(late.records.size() == 1);
  CHECK(late.records[0].value == 3);
  CHECK(late.timestamps[0] == 5);
  CHECK(h.op().counters.late_records.load() == 2);
}

TEST_CASE("sliding windows combine slices and match the per-window operator") {
  auto build_sliced = [](auto keyed) {
    return keyed.window(weir::SlidingEventTimeWindows::of(milliseconds(30), milliseconds(20)))
        .template process<std::string>(Describe{});
  };
  auto build_general = [](auto keyed) {
    return keyed.window(weir::SlidingEventTimeWindows::of(milliseconds(30), milliseconds(20)))
        .trigger(CustomEventTimeTrigger{})
        .template process<std::string>(Describe{});
  };
  auto sliced = windowHarness<std::string>(build_sliced);
  auto general = windowHarness<std::string>(build_general);
  sliced.open();
  general.open();
  for (auto* h : {&sliced, &general}) {
    h->push({"a", 1}, 5);
    h->push({"a", 2}, 25);
    h->push({"a", 3}, 45);
    h->endInput();
  }
  const std::vector<std::string> expected{"a [-20,10) 1", "a [0,30) 1,2", "a [20,50) 2,3",
                                          "a [40,70) 3"};
  CHECK(sorted(sliced.output().records) == expected);
  CHECK(sorted(general.output().records) == expected);
}

TEST_CASE("session windows merge and fire after the gap") {
  auto h = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::EventTimeSessionWindows::withGap(milliseconds(10)))
        .template process<std::string>(Describe{});
  });
  h.open();
  h.push({"a", 1}, 0);
  h.push({"a", 2}, 25);
  h.push({"a", 3}, 12);  // bridges nothing yet: [12,22) touches neither [0,10) nor [25,35)
  h.push({"a", 4}, 8);   // [8,18) joins [0,10) and [12,22) into [0,22)
  h.push({"b", 5}, 30);
  h.watermark(21);
  CHECK(h.output().records == std::vector<std::string>{"a [0,22) 1,3,4"});
  h.endInput();
  CHECK(sorted(h.output().records) ==
        std::vector<std::string>{"a [0,22) 1,3,4", "a [25,35) 2", "b [30,40) 5"});
}

TEST_CASE("aggregate with a process function sees the one result and the window") {
  auto h = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::EventTimeSessionWindows::withGap(milliseconds(10)))
        .aggregate(CountSum{}, DescribeCountSum{});
  });
  h.open();
  h.push({"a", 1}, 0);
  h.push({"a", 2}, 15);
  h.push({"a", 3}, 7);
  h.endInput();
  CHECK(h.output().records == std::vector<std::string>{"a [0,25) n=3 sum=6"});
}

TEST_CASE("count windows, purging and evicting") {
  auto tumbling = windowHarness<std::string>(
      [](auto keyed) { return keyed.countWindow(3).template process<std::string>(Describe{}); });
  tumbling.open();
  for (long v = 1; v <= 7; ++v)
    tumbling.push({"a", v});
  CHECK(tumbling.output().records == std::vector<std::string>{"a [0,0) 1,2,3", "a [0,0) 4,5,6"});

  auto sliding = windowHarness<std::string>(
      [](auto keyed) { return keyed.countWindow(3, 2).template process<std::string>(Describe{}); });
  sliding.open();
  for (long v = 1; v <= 6; ++v)
    sliding.push({"a", v});
  CHECK(sliding.output().records ==
        std::vector<std::string>{"a [0,0) 1,2", "a [0,0) 2,3,4", "a [0,0) 4,5,6"});

  auto global = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::GlobalWindows::create())
        .trigger(weir::CountTrigger::of(2))
        .template process<std::string>(Describe{});
  });
  global.open();
  for (long v = 1; v <= 4; ++v)
    global.push({"b", v});
  CHECK(global.output().records == std::vector<std::string>{"b [0,0) 1,2", "b [0,0) 1,2,3,4"});
}

TEST_CASE("time evictor keeps the newest elements") {
  auto h = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::TumblingEventTimeWindows::of(milliseconds(100)))
        .evictor(weir::TimeEvictor::of(milliseconds(10)))
        .template process<std::string>(Describe{});
  });
  h.open();
  h.push({"a", 1}, 10);
  h.push({"a", 2}, 86);
  h.push({"a", 3}, 95);
  h.endInput();
  CHECK(h.output().records == std::vector<std::string>{"a [0,100) 2,3"});
}

TEST_CASE("continuous event-time trigger fires early results") {
  auto h = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::TumblingEventTimeWindows::of(milliseconds(100)))
        .trigger(weir::ContinuousEventTimeTrigger::of(milliseconds(30)))
        .template process<std::string>(Describe{});
  });
  h.open();
  h.push({"a", 1}, 5);
  h.watermark(29);
  CHECK(h.output().records.empty());
  h.watermark(30);
  CHECK(h.output().records == std::vector<std::string>{"a [0,100) 1"});
  h.push({"a", 2}, 40);
  h.watermark(61);  // fires at 60
  h.endInput();     // at 90, and at the window's end
  CHECK(h.output().records ==
        std::vector<std::string>{"a [0,100) 1", "a [0,100) 1,2", "a [0,100) 1,2", "a [0,100) 1,2"});
}

TEST_CASE("processing-time windows fire on the clock") {
  HarnessOptions options;
  options.start_time = 1000;
  auto h = windowHarness<std::string>(
      [](auto keyed) {
        return keyed.window(weir::TumblingProcessingTimeWindows::of(milliseconds(100)))
            .template process<std::string>(Describe{});
      },
      options);
  h.open();
  h.push({"a", 1});
  h.advanceProcessingTime(1050);
  h.push({"a", 2});
  CHECK(h.op().nextProcessingTime() == 1099);
  h.advanceProcessingTime(1098);
  CHECK(h.output().records.empty());
  h.advanceProcessingTime(1100);
  CHECK(h.output().records == std::vector<std::string>{"a [1000,1100) 1,2"});
  CHECK(h.op().nextProcessingTime() == weir::kNoDeadline);
}

TEST_CASE("event-time windows reject records without timestamps") {
  auto h = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::TumblingEventTimeWindows::of(milliseconds(10)))
        .template process<std::string>(Describe{});
  });
  h.open();
  CHECK_THROWS_WITH_AS(h.push({"a", 1}), doctest::Contains("without a timestamp"),
                       weir::detail::OperatorFailure);
}

TEST_CASE("window state leaves no keys behind") {
  auto h = windowHarness<std::string>([](auto keyed) {
    return keyed.window(weir::EventTimeSessionWindows::withGap(milliseconds(5)))
        .template process<std::string>(Describe{});
  });
  h.open();
  for (int i = 0; i < 1000; ++i)
    h.push({"k" + std::to_string(i), i}, i);
  h.endInput();
  CHECK(h.output().records.size() == 1000);
}

// ---- brute-force reference ----

struct Op {
  enum Kind { kElement, kAdvance } kind = kElement;
  std::string key;
  long value = 0;
  std::int64_t time = 0;  // element: event time; advance: watermark or processing time
};

std::vector<Op> randomOps(unsigned seed, bool event_time) {
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Op> ops;
  std::int64_t base = 0;
  std::int64_t mark = -1'000'000;
  const char* keys[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 600; ++i) {
    if (uniform(0, 9) < 2) {
      if (event_time) {
        const std::int64_t w = base - uniform(0, 40);
        if (w > mark) {
          mark = w;
          ops.push_back({Op::kAdvance, "", 0, w});
        }
      } else {
        base += uniform(0, 25);
        ops.push_back({Op::kAdvance, "", 0, base});
      }
      continue;
    }
    if (event_time) base += uniform(0, 6);
    ops.push_back({Op::kElement, keys[uniform(0, 4)], uniform(0, 99),
                   event_time ? base - uniform(0, 60) : 0});
  }
  return ops;
}

// Windows of a key as plain data; the model keeps every element of every live window.
class Reference {
 public:
  enum class Kind { kTumbling, kSliding, kSession };
  Reference(Kind kind, std::int64_t size, std::int64_t slide, std::int64_t lateness,
            bool event_time)
      : kind_(kind),
        size_(size),
        slide_(slide),
        lateness_(lateness),
        event_time_(event_time),
        now_(event_time ? std::numeric_limits<std::int64_t>::min() / 2 : 0) {}

  void element(const std::string& key, long value, std::int64_t event_ts) {
    // A record arriving after the windows ending at its millisecond fired counts toward the next.
    const std::int64_t ts = event_time_ ? event_ts : std::max(now_, fired_max_ + 1);
    auto late = [&](std::int64_t max_ts) { return event_time_ && max_ts + lateness_ <= now_; };
    auto& windows = live_[key];
    if (kind_ == Kind::kSession) {
      TimeWindow cover{ts, ts + size_};
      std::vector<long> values{value};
      bool merged = false;
      for (auto it = windows.begin(); it != windows.end();) {
        if (it->first.intersects(cover) || cover.intersects(it->first)) {
          cover = cover.cover(it->first);
          values.insert(values.end(), it->second.begin(), it->second.end());
          it = windows.erase(it);
          merged = true;
        } else {
          ++it;
        }
      }
      if (!merged && late(cover.maxTimestamp())) {
        late_.push_back(key + " " + std::to_string(value));
        return;
      }
      windows.emplace_back(cover, values);
      if (event_time_ && cover.maxTimestamp() <= now_) fire(key, cover, values);
      return;
    }
    bool accepted = false;
    const std::int64_t step = kind_ == Kind::kTumbling ? size_ : slide_;
    const std::int64_t last = ts - (((ts % step) + step) % step);
    for (std::int64_t start = last; start > ts - size_; start -= step) {
      const TimeWindow w{start, start + size_};
      if (late(w.maxTimestamp())) continue;
      accepted = true;
      auto it =
          std::find_if(windows.begin(), windows.end(), [&](const auto& e) { return e.first == w; });
      if (it == windows.end()) {
        windows.emplace_back(w, std::vector<long>{});
        it = std::prev(windows.end());
      }
      it->second.push_back(value);
      if (event_time_ && w.maxTimestamp() <= now_) fire(key, w, it->second);
    }
    if (!accepted && event_time_ && ts + lateness_ <= now_) {
      late_.push_back(key + " " + std::to_string(value));
    }
  }

  void advance(std::int64_t t) {
    for (auto& [key, windows] : live_) {
      for (auto it = windows.begin(); it != windows.end();) {
        const std::int64_t max_ts = it->first.maxTimestamp();
        if (event_time_ ? (max_ts > now_ && max_ts <= t) : max_ts <= t) {
          fire(key, it->first, it->second);
        }
        const std::int64_t cleanup = event_time_ ? max_ts + lateness_ : max_ts;
        it = cleanup <= t ? windows.erase(it) : std::next(it);
      }
    }
    now_ = t;
  }

  std::vector<std::string> fired;
  std::vector<std::string> fired_sums;  // key, max timestamp and sum, as reduce emits them
  std::vector<std::string> late_;

 private:
  void fire(const std::string& key, const TimeWindow& w, const std::vector<long>& values) {
    fired_max_ = std::max(fired_max_, w.maxTimestamp());
    fired.push_back(describe(key, w.start, w.end, values));
    long sum = 0;
    for (long v : values)
      sum += v;
    fired_sums.push_back(key + " " + std::to_string(w.maxTimestamp()) + " " + std::to_string(sum));
  }

  Kind kind_;
  std::int64_t size_;
  std::int64_t slide_;
  std::int64_t lateness_;
  bool event_time_;
  std::int64_t now_;
  std::int64_t fired_max_ = std::numeric_limits<std::int64_t>::min() / 2;
  std::map<std::string, std::vector<std::pair<TimeWindow, std::vector<long>>>> live_;
};

struct Scenario {
  std::string name;
  Reference::Kind kind;
  std::int64_t size;
  std::int64_t slide;
  bool event_time;
};

template <class A, class Tr>
void checkAgainstReference(const Scenario& sc, A assigner, Tr trigger, bool custom_trigger,
                           std::int64_t lateness, unsigned seed, HarnessOptions options) {
  CAPTURE(sc.name);
  CAPTURE(seed);
  CAPTURE(lateness);
  CAPTURE(custom_trigger);
  const std::string backend = backendName(options);
  CAPTURE(backend);
  const weir::OutputTag<Event> late_tag("late");
  options.start_time = 0;
  auto configure = [&](auto keyed) {
    if constexpr (std::is_same_v<Tr, std::nullptr_t>) {
      auto w = keyed.window(assigner);
      w.allowedLateness(milliseconds(lateness)).sideOutputLateData(late_tag);
      return w;
    } else {
      auto w = keyed.window(assigner).trigger(trigger);
      w.allowedLateness(milliseconds(lateness)).sideOutputLateData(late_tag);
      return w;
    }
  };
  auto described = windowHarness<std::string>(
      [&](auto keyed) { return configure(keyed).template process<std::string>(Describe{}); },
      options);
  auto summed = windowHarness<Event>(
      [&](auto keyed) { return configure(keyed).reduce(SumEvents{}); }, options);
  auto& late = described.sideOutput(late_tag);
  described.open();
  summed.open();
  Reference ref(sc.kind, sc.size, sc.slide, lateness, sc.event_time);
  for (const Op& op : randomOps(seed, sc.event_time)) {
    if (op.kind == Op::kElement) {
      ref.element(op.key, op.value, op.time);
      described.push({op.key, op.value}, sc.event_time ? op.time : kNoTimestamp);
      summed.push({op.key, op.value}, sc.event_time ? op.time : kNoTimestamp);
    } else if (sc.event_time) {
      ref.advance(op.time);
      described.watermark(op.time);
      summed.watermark(op.time);
    } else {
      ref.advance(op.time);
      described.advanceProcessingTime(op.time);
      summed.advanceProcessingTime(op.time);
    }
  }
  if (sc.event_time) {
    ref.advance(std::numeric_limits<std::int64_t>::max() / 2);
    described.endInput();
    summed.endInput();
  } else {
    ref.advance(1'000'000'000);
    described.advanceProcessingTime(1'000'000'000);
    summed.advanceProcessingTime(1'000'000'000);
  }
  CHECK_MESSAGE(sorted(described.output().records) == sorted(ref.fired),
                difference(described.output().records, ref.fired));
  std::vector<std::string> sums;
  for (std::size_t i = 0; i < summed.output().records.size(); ++i) {
    sums.push_back(summed.output().records[i].key + " " +
                   std::to_string(summed.output().timestamps[i]) + " " +
                   std::to_string(summed.output().records[i].value));
  }
  CHECK_MESSAGE(sorted(sums) == sorted(ref.fired_sums), difference(sums, ref.fired_sums));
  std::vector<std::string> late_seen;
  for (const Event& e : late.records)
    late_seen.push_back(e.key + " " + std::to_string(e.value));
  CHECK_MESSAGE(sorted(late_seen) == sorted(ref.late_), difference(late_seen, ref.late_));
  CHECK(!ref.fired.empty());
}

TEST_CASE("windows match a brute-force reference on random out-of-order streams") {
  for (const HarnessOptions& backend : backends()) {
    for (unsigned seed : {1u, 2u, 3u}) {
      for (std::int64_t lateness : {0, 35}) {
        {
          const Scenario sc{"tumbling", Reference::Kind::kTumbling, 50, 50, true};
          checkAgainstReference(sc, weir::TumblingEventTimeWindows::of(milliseconds(50)), nullptr,
                                false, lateness, seed, backend);
        }
        {
          const Scenario sc{"sliding", Reference::Kind::kSliding, 50, 20, true};
          const auto a = weir::SlidingEventTimeWindows::of(milliseconds(50), milliseconds(20));
          checkAgainstReference(sc, a, nullptr, false, lateness, seed, backend);
          checkAgainstReference(sc, a, CustomEventTimeTrigger{}, true, lateness, seed, backend);
        }
        {
          const Scenario sc{"session", Reference::Kind::kSession, 25, 0, true};
          checkAgainstReference(sc, weir::EventTimeSessionWindows::withGap(milliseconds(25)),
                                nullptr, false, lateness, seed, backend);
        }
      }
      {
        const Scenario sc{"processing tumbling", Reference::Kind::kTumbling, 50, 50, false};
        checkAgainstReference(sc, weir::TumblingProcessingTimeWindows::of(milliseconds(50)),
                              nullptr, false, 0, seed, backend);
      }
      {
        const Scenario sc{"processing sliding", Reference::Kind::kSliding, 60, 20, false};
        checkAgainstReference(
            sc, weir::SlidingProcessingTimeWindows::of(milliseconds(60), milliseconds(20)), nullptr,
            false, 0, seed, backend);
      }
      {
        const Scenario sc{"processing session", Reference::Kind::kSession, 30, 0, false};
        checkAgainstReference(sc, weir::ProcessingTimeSessionWindows::withGap(milliseconds(30)),
                              nullptr, false, 0, seed, backend);
      }
    }
  }
}

}  // namespace

namespace {

// Count windows against the obvious model: per key, every `every` records, the last `keep`
// records (all of them when keep is 0), forgetting what was emitted when `purge`.
template <class Build>
void checkCountWindows(unsigned seed, std::int64_t every, std::size_t keep, bool purge,
                       const HarnessOptions& options, Build build) {
  const std::string backend = backendName(options);
  CAPTURE(backend);
  CAPTURE(seed);
  CAPTURE(every);
  CAPTURE(keep);
  CAPTURE(purge);
  auto h = windowHarness<std::string>(build, options);
  h.open();
  std::mt19937 rng(seed);
  std::map<std::string, std::vector<long>> held;
  std::map<std::string, std::int64_t> counts;
  std::vector<std::string> expected;
  const char* keys[] = {"a", "b", "c"};
  for (int i = 0; i < 500; ++i) {
    const std::string key = keys[std::uniform_int_distribution<int>(0, 2)(rng)];
    const long value = std::uniform_int_distribution<long>(0, 99)(rng);
    h.push({key, value});
    auto& values = held[key];
    values.push_back(value);
    if (++counts[key] % every != 0) continue;
    if (keep != 0 && values.size() > keep) {
      values.erase(values.begin(), values.end() - static_cast<std::ptrdiff_t>(keep));
    }
    expected.push_back(describe(key, 0, 0, values));
    if (purge) values.clear();
  }
  CHECK_MESSAGE(sorted(h.output().records) == sorted(expected),
                difference(h.output().records, expected));
}

TEST_CASE("global windows with count triggers and evictors match a brute-force reference") {
  for (const HarnessOptions& backend : backends()) {
    for (unsigned seed : {1u, 2u, 3u}) {
      checkCountWindows(seed, 4, 0, true, backend, [](auto keyed) {
        return keyed.countWindow(4).template process<std::string>(Describe{});
      });
      checkCountWindows(seed, 2, 5, false, backend, [](auto keyed) {
        return keyed.countWindow(5, 2).template process<std::string>(Describe{});
      });
      checkCountWindows(seed, 3, 0, false, backend, [](auto keyed) {
        return keyed.window(weir::GlobalWindows::create())
            .trigger(weir::CountTrigger::of(3))
            .template process<std::string>(Describe{});
      });
    }
  }
}

}  // namespace
