// Keyed process functions on every state backend (heap; RocksDB with timers in the store; RocksDB
// with timers on the heap): state of every kind per key, TTL, event- and processing-time timers
// (deduplicated, deletable), side outputs, late records. Each case runs once per backend.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "operator_harness.h"
#include "weir/weir.h"

namespace {

using weir::kNoTimestamp;
using weir::test::Harness;
using weir::test::HarnessOptions;

struct Event {
  std::string key;
  long value = 0;
};

std::string keyOf(const Event& e) {
  return e.key;
}
using KeyF = std::string (*)(const Event&);

// The backends every case runs on.
struct Heap {
  static HarnessOptions options() { return {}; }
};
struct RocksDb {
  static HarnessOptions options() {
    HarnessOptions o;
    o.backend = weir::StateBackendKind::kRocksDb;
    return o;
  }
};
struct RocksDbHeapTimers {
  static HarnessOptions options() {
    HarnessOptions o = RocksDb::options();
    o.timers_in_kv_store = false;
    return o;
  }
};

}  // namespace

TYPE_TO_STRING(Heap);
TYPE_TO_STRING(RocksDb);
TYPE_TO_STRING(RocksDbHeapTimers);

#define WEIR_BACKENDS Heap, RocksDb, RocksDbHeapTimers

namespace {

template <class F, class Out = std::string>
auto makeHarness(F fn, HarnessOptions options = {}) {
  return Harness<Event, Out>(
      std::make_unique<weir::detail::KeyedProcessOperator<Event, std::string, Out, KeyF, F>>(
          &keyOf, std::move(fn)),
      options);
}

// Uses every state kind; emits a line describing the key's state after each record.
struct AllStates {
  void open(const weir::RuntimeContext& ctx) {
    last_ = &ctx.getState(weir::ValueStateDescriptor<long>("last"));
    all_ = &ctx.getListState(weir::ListStateDescriptor<long>("all"));
    counts_ = &ctx.getMapState(weir::MapStateDescriptor<long, int>("counts"));
    sum_ = &ctx.getReducingState(weir::ReducingStateDescriptor<long, std::plus<long>>("sum", {}));
    avg_ = &ctx.getAggregatingState(weir::AggregatingStateDescriptor<long, Average>("avg", {}));
  }
  struct Average {
    std::pair<long, long> createAccumulator() const { return {0, 0}; }
    void add(long v, std::pair<long, long>& acc) const {
      acc.first += v;
      ++acc.second;
    }
    double getResult(const std::pair<long, long>& acc) const {
      return static_cast<double>(acc.first) / static_cast<double>(acc.second);
    }
    void merge(const std::pair<long, long>& from, std::pair<long, long>& into) const {
      into.first += from.first;
      into.second += from.second;
    }
  };
  void processElement(const Event& e, weir::KeyedContext<std::string>& ctx,
                      weir::Collector<std::string>& out) {
    if (e.value < 0) {  // a negative value clears the key
      last_->clear();
      all_->clear();
      counts_->clear();
      sum_->clear();
      avg_->clear();
      out.collect(ctx.currentKey() + " cleared");
      return;
    }
    const long previous = last_->valueOr(-1);
    last_->update(e.value);
    all_->add(e.value);
    const int* c = counts_->get(e.value);
    counts_->put(e.value, c ? *c + 1 : 1);
    sum_->add(e.value);
    avg_->add(e.value);
    std::string line = ctx.currentKey() + " prev=" + std::to_string(previous) +
                       " n=" + std::to_string(all_->get().size()) +
                       " sum=" + std::to_string(*sum_->get()) +
                       " avg=" + std::to_string(static_cast<int>(*avg_->get() * 10)) +
                       " count[v]=" + std::to_string(*counts_->get(e.value)) +
                       " distinct=" + std::to_string(counts_->entries().size());
    out.collect(line);
  }
  weir::ValueState<long>* last_ = nullptr;
  weir::ListState<long>* all_ = nullptr;
  weir::MapState<long, int>* counts_ = nullptr;
  weir::ReducingState<long>* sum_ = nullptr;
  weir::AggregatingState<long, double>* avg_ = nullptr;
};

}  // namespace

TEST_CASE_TEMPLATE("keyed state: every state kind is scoped to the current key", B, WEIR_BACKENDS) {
  auto h = makeHarness(AllStates{}, B::options());
  h.open();
  h.push({"a", 1});
  h.push({"b", 10});
  h.push({"a", 3});
  h.push({"a", 3});
  h.push({"b", -1});
  h.push({"b", 4});
  const std::vector<std::string> expected = {
      "a prev=-1 n=1 sum=1 avg=10 count[v]=1 distinct=1",
      "b prev=-1 n=1 sum=10 avg=100 count[v]=1 distinct=1",
      "a prev=1 n=2 sum=4 avg=20 count[v]=1 distinct=2",
      "a prev=3 n=3 sum=7 avg=23 count[v]=2 distinct=2",
      "b cleared",
      "b prev=-1 n=1 sum=4 avg=40 count[v]=1 distinct=1",
  };
  CHECK(h.output().records == expected);
}

TEST_CASE("keyed state: a key leaves the heap table with its last state and timer") {
  weir::test::ManualEnvironment env;
  const weir::KeyGroupRange range{0, 127};
  weir::detail::HeapKeyedBackend<std::string> backend(&env, range, 128);
  auto& v = weir::detail::createState<weir::VoidNamespace>(backend,
                                                           weir::ValueStateDescriptor<long>("v"));
  auto& l =
      weir::detail::createState<weir::VoidNamespace>(backend, weir::ListStateDescriptor<long>("l"));
  weir::detail::HeapTimerQueue<std::string, weir::VoidNamespace> timers(backend);
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i)
    keys.push_back("k" + std::to_string(i));
  auto select = [&](const std::string& k) { backend.setCurrentKey(k, weir::keyGroupOf(k, 128)); };
  for (const auto& k : keys) {
    select(k);
    CHECK(v.get() == nullptr);  // reading a key without state does not enter it
  }
  CHECK(backend.numKeys() == 0);
  for (const auto& k : keys) {
    select(k);
    v.update(1);
    l.add(2);
    timers.add(10, {});
  }
  CHECK(backend.numKeys() == 1000);
  // Iterable by key group: every key shows up in exactly its own group.
  std::size_t seen = 0;
  for (int kg = 0; kg < 128; ++kg) {
    backend.forEachKey(kg, [&](const std::string& k, std::uint32_t) {
      CHECK(weir::keyGroupOf(k, 128) == kg);
      ++seen;
    });
  }
  CHECK(seen == 1000);
  for (const auto& k : keys) {
    select(k);
    v.clear();
  }
  CHECK(backend.numKeys() == 1000);  // lists and timers still hold them
  for (const auto& k : keys) {
    select(k);
    l.clear();
  }
  CHECK(backend.numKeys() == 1000);
  std::vector<std::string> fired;
  timers.fireUntil(
      10, [&](std::int64_t, const weir::VoidNamespace&) { fired.push_back(backend.currentKey()); });
  CHECK(fired.size() == 1000);
  CHECK(backend.numKeys() == 0);
  // Ids are reused: the table does not grow with keys that come and go.
  const std::string again = "again";  // the current key must outlive its use
  select(again);
  v.update(5);
  CHECK(backend.numKeys() == 1);
  CHECK(*v.get() == 5);
}

TEST_CASE_TEMPLATE("state TTL: entries expire in processing time, per update type and visibility",
                   B, WEIR_BACKENDS) {
  struct Fn {
    explicit Fn(weir::StateTtlConfig c) : config(c) {}
    void open(const weir::RuntimeContext& ctx) {
      weir::ValueStateDescriptor<long> d("v");
      d.enableTimeToLive(config);
      v = &ctx.getState(d);
      weir::ListStateDescriptor<long> ld("l");
      ld.enableTimeToLive(config);
      l = &ctx.getListState(ld);
      weir::MapStateDescriptor<long, long> md("m");
      md.enableTimeToLive(config);
      m = &ctx.getMapState(md);
    }
    // value > 0: write it everywhere; 0: read and report.
    void processElement(const Event& e, weir::KeyedContext<std::string>&,
                        weir::Collector<std::string>& out) {
      if (e.value > 0) {
        v->update(e.value);
        l->add(e.value);
        m->put(e.value, e.value);
        return;
      }
      const long* x = v->get();
      std::string s = x ? std::to_string(*x) : "none";
      s += " list=" + std::to_string(l->get().size());
      s += " map=" + std::to_string(m->entries().size());
      out.collect(s);
    }
    weir::StateTtlConfig config;
    weir::ValueState<long>* v = nullptr;
    weir::ListState<long>* l = nullptr;
    weir::MapState<long, long>* m = nullptr;
  };
  using std::chrono::milliseconds;

  SUBCASE("written entries expire after the TTL; reads do not extend it by default") {
    auto h = makeHarness(Fn(weir::StateTtlConfig::of(milliseconds(100))), B::options());
    h.open();
    h.push({"a", 7});                    // t = start
    h.advanceProcessingTime(1'000'050);  // +50
    h.push({"a", 0});                    // read at +50
    h.advanceProcessingTime(1'000'060);  // +60
    h.push({"a", 8});                    // second element and value refreshed at +60
    h.advanceProcessingTime(1'000'120);  // +120: the first list/map entry expired
    h.push({"a", 0});
    h.advanceProcessingTime(1'000'200);  // +200: everything expired
    h.push({"a", 0});
    CHECK(h.output().records ==
          std::vector<std::string>{"7 list=1 map=1", "8 list=1 map=1", "none list=0 map=0"});
  }
  SUBCASE("OnReadAndWrite: reads keep entries alive") {
    auto h = makeHarness(Fn(weir::StateTtlConfig::of(milliseconds(100))
                                .setUpdateType(weir::StateTtlConfig::UpdateType::kOnReadAndWrite)),
                         B::options());
    h.open();
    h.push({"a", 7});
    for (int i = 1; i <= 5; ++i) {
      h.advanceProcessingTime(1'000'000 + i * 90);
      h.push({"a", 0});
    }
    h.advanceProcessingTime(1'000'000 + 5 * 90 + 100);
    h.push({"a", 0});
    REQUIRE(h.output().records.size() == 6);
    CHECK(h.output().records[4] == "7 list=1 map=1");
    CHECK(h.output().records[5] == "none list=0 map=0");
  }
  SUBCASE("ReturnExpiredIfNotCleanedUp: an expired value is returned once, then gone") {
    auto h = makeHarness(
        Fn(weir::StateTtlConfig::of(milliseconds(100))
               .setStateVisibility(weir::StateTtlConfig::Visibility::kReturnExpiredIfNotCleanedUp)),
        B::options());
    h.open();
    h.push({"a", 7});
    h.advanceProcessingTime(1'000'500);
    h.push({"a", 0});
    h.push({"a", 0});
    CHECK(h.output().records == std::vector<std::string>{"7 list=1 map=1", "none list=0 map=0"});
  }
  SUBCASE("ReturnExpiredIfNotCleanedUp with OnReadAndWrite: reads refresh what did not expire") {
    auto h = makeHarness(
        Fn(weir::StateTtlConfig::of(milliseconds(100))
               .setUpdateType(weir::StateTtlConfig::UpdateType::kOnReadAndWrite)
               .setStateVisibility(weir::StateTtlConfig::Visibility::kReturnExpiredIfNotCleanedUp)),
        B::options());
    h.open();
    h.push({"a", 7});
    h.advanceProcessingTime(1'000'060);
    h.push({"a", 8});
    h.advanceProcessingTime(1'000'110);  // 7 expired: returned once; 8 refreshed
    h.push({"a", 0});
    h.advanceProcessingTime(1'000'200);  // 8 lives on, refreshed again
    h.push({"a", 0});
    h.advanceProcessingTime(1'000'250);
    h.push({"a", 0});
    CHECK(h.output().records ==
          std::vector<std::string>{"8 list=2 map=2", "8 list=1 map=1", "8 list=1 map=1"});
  }
}

namespace {

// Counts records per key; an event-time timer at (timestamp rounded up to 10) + 9 emits the count,
// a processing-time timer 100 ms after the first record emits "tick"; value 99 deletes the key's
// event timer.
struct Timers {
  void open(const weir::RuntimeContext& ctx) {
    count = &ctx.getState(weir::ValueStateDescriptor<long>("count"));
  }
  void processElement(const Event& e, weir::KeyedContext<std::string>& ctx,
                      weir::Collector<std::string>& out) {
    const std::int64_t fire_at = ctx.timestamp() / 10 * 10 + 9;
    if (e.value == 99) {
      ctx.timerService().deleteEventTimeTimer(fire_at);
      return;
    }
    if (e.value == 42)
      ctx.output(kLateTag, ctx.currentKey() + "@" + std::to_string(ctx.timestamp()));
    const long n = count->valueOr(0) + 1;
    count->update(n);
    ctx.timerService().registerEventTimeTimer(fire_at);  // the same for a window: once
    if (n == 1) {
      ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() +
                                                     100);
    }
    (void)out;
  }
  void onTimer(std::int64_t time, weir::KeyedContext<std::string>& ctx,
               weir::Collector<std::string>& out) {
    if (ctx.timeDomain() == weir::TimeDomain::kProcessingTime) {
      out.collect(ctx.currentKey() + " tick");
      return;
    }
    out.collect(ctx.currentKey() + " " + std::to_string(time) +
                " count=" + std::to_string(count->valueOr(0)));
    count->clear();
  }
  static inline const weir::OutputTag<std::string> kLateTag{"tagged"};
  weir::ValueState<long>* count = nullptr;
};

}  // namespace

TEST_CASE_TEMPLATE(
    "timers: event-time timers fire once per key and time, in time order, with the key", B,
    WEIR_BACKENDS) {
  auto h = makeHarness(Timers{}, B::options());
  auto& side = h.sideOutput(Timers::kLateTag);
  h.open();
  h.push({"a", 1}, 3);
  h.push({"b", 1}, 5);
  h.push({"a", 1}, 7);
  h.push({"b", 42}, 15);  // also to the side output
  h.push({"c", 1}, 12);
  h.push({"c", 99}, 12);  // deletes c's timer at 19
  h.watermark(8);
  CHECK(h.output().records.empty());
  CHECK(h.output().watermarks == std::vector<std::int64_t>{8});
  h.watermark(9);
  // Counts are per key (not per timer): b's record at 15 counted too.
  CHECK(h.output().records == std::vector<std::string>{"a 9 count=2", "b 9 count=2"});
  CHECK(h.output().timestamps == std::vector<std::int64_t>{9, 9});
  h.output().clear();
  h.push({"a", 1}, 2);  // late: below the watermark
  CHECK(h.op().counters.late_records.load() == 1);
  h.watermark(100);
  // The late record's timer (at 9) lies behind the watermark: it fires with the next one, first.
  CHECK(h.output().records == std::vector<std::string>{"a 9 count=1", "b 19 count=0"});
  CHECK(side.records == std::vector<std::string>{"b@15"});
  CHECK(side.watermarks == std::vector<std::int64_t>{8, 9, 100});
  h.output().clear();
  h.watermark(101);
  CHECK(h.output().records.empty());
}

TEST_CASE_TEMPLATE("timers: processing-time timers fire when the clock reaches them", B,
                   WEIR_BACKENDS) {
  auto h = makeHarness(Timers{}, B::options());
  h.open();
  h.push({"a", 1}, 1);  // tick at start + 100
  h.advanceProcessingTime(1'000'050);
  h.push({"b", 1}, 1);  // tick at start + 150
  CHECK(h.op().nextProcessingTime() == 1'000'100);
  h.advanceProcessingTime(1'000'099);
  CHECK(h.output().records.empty());
  h.advanceProcessingTime(1'000'100);
  CHECK(h.output().records == std::vector<std::string>{"a tick"});
  CHECK(h.output().timestamps == std::vector<std::int64_t>{kNoTimestamp});
  h.advanceProcessingTime(1'000'500);
  CHECK(h.output().records == std::vector<std::string>{"a tick", "b tick"});
  CHECK(h.op().nextProcessingTime() == weir::kNoDeadline);
}

TEST_CASE("keyed state: a function on a non-keyed stream asking for state fails clearly") {
  weir::RuntimeContext ctx("job", "task", 0, 1, 128, nullptr);
  CHECK_THROWS_WITH_AS(ctx.getState(weir::ValueStateDescriptor<int>("x")),
                       doctest::Contains("only available in functions on a keyed stream"),
                       std::logic_error);
}

TEST_CASE_TEMPLATE("keyed state: one name cannot be two kinds of state", B, WEIR_BACKENDS) {
  struct Fn {
    void open(const weir::RuntimeContext& ctx) {
      ctx.getState(weir::ValueStateDescriptor<long>("x"));
      ctx.getListState(weir::ListStateDescriptor<long>("x"));
    }
    void processElement(const Event&, weir::KeyedContext<std::string>&,
                        weir::Collector<std::string>&) {}
  };
  auto h = makeHarness(Fn{}, B::options());
  CHECK_THROWS_WITH(h.open(), doctest::Contains("state 'x' is already registered as value"));
}
