// Keyed state and timers below the operators: namespaces and merging (windows) on every backend,
// timer queues of every kind under stress, and what only the RocksDB backend has to get right:
// key layout (key groups contiguous, map prefixes exact), list appends without reads, large
// values, store errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <map>
#include <new>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "operator_harness.h"
#include "weir/weir.h"

// Counts this thread's allocations (for the steady-state test below).
namespace {
thread_local std::size_t t_allocations = 0;
}  // namespace

// GCC 12 pairs the malloc below with the free in delete across inlining and warns.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  ++t_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace {

using weir::KeyGroupRange;
using weir::StateBackendKind;
using weir::detail::HeapKeyedBackend;
using weir::detail::KeyedBackendBase;
using weir::detail::RocksKeyedBackend;
using weir::test::CountingKvStore;
using weir::test::ManualEnvironment;
using weir::test::TempRocksDb;

// A window-like namespace: two int64, as a time window is.
struct Window {
  std::int64_t start = 0;
  std::int64_t end = 0;
  bool operator==(const Window&) const = default;
  WEIR_SERDE_FIELDS(start, end)
};

// A keyed backend of either kind for keys K, with the current key kept alive here.
template <class K>
class AnyBackend {
 public:
  explicit AnyBackend(StateBackendKind kind, KeyGroupRange range = {0, 127},
                      int max_parallelism = 128)
      : max_parallelism_(max_parallelism) {
    if (kind == StateBackendKind::kHeap) {
      auto heap = std::make_unique<HeapKeyedBackend<K>>(&env_, range, max_parallelism);
      heap_ = heap.get();
      backend_ = std::move(heap);
    } else {
      db_ = std::make_unique<TempRocksDb>();
      store_ = db_->open("test/backend_0");
      auto rocks = std::make_unique<RocksKeyedBackend<K>>(&env_, range, max_parallelism, *store_);
      rocks_ = rocks.get();
      backend_ = std::move(rocks);
    }
  }
  ~AnyBackend() { backend_.reset(); }

  void select(const K& key) {
    keys_.push_back(key);  // stays put: current keys are referenced, not copied
    const int kg = weir::keyGroupOf(key, max_parallelism_);
    if (heap_ != nullptr) {
      heap_->setCurrentKey(keys_.back(), kg);
    } else {
      rocks_->setCurrentKey(keys_.back(), kg);
    }
  }
  const K& currentKey() const {
    return heap_ != nullptr ? heap_->currentKey() : rocks_->currentKey();
  }
  KeyedBackendBase& base() { return *backend_; }
  HeapKeyedBackend<K>* heap() { return heap_; }
  RocksKeyedBackend<K>* rocks() { return rocks_; }
  CountingKvStore* store() { return store_.get(); }
  ManualEnvironment& env() { return env_; }

 private:
  int max_parallelism_;
  ManualEnvironment env_;
  std::unique_ptr<TempRocksDb> db_;
  std::unique_ptr<CountingKvStore> store_;
  std::unique_ptr<KeyedBackendBase> backend_;
  HeapKeyedBackend<K>* heap_ = nullptr;
  RocksKeyedBackend<K>* rocks_ = nullptr;
  std::deque<K> keys_;
};

struct Heap {
  static constexpr StateBackendKind kKind = StateBackendKind::kHeap;
};
struct RocksDb {
  static constexpr StateBackendKind kKind = StateBackendKind::kRocksDb;
};

struct Average {
  std::pair<long, long> createAccumulator() const { return {0, 0}; }
  void add(long v, std::pair<long, long>& acc) const {
    acc.first += v;
    ++acc.second;
  }
  long getResult(const std::pair<long, long>& acc) const {
    return acc.second == 0 ? 0 : acc.first / acc.second;
  }
  void merge(const std::pair<long, long>& from, std::pair<long, long>& into) const {
    into.first += from.first;
    into.second += from.second;
  }
};

}  // namespace

TYPE_TO_STRING(Heap);
TYPE_TO_STRING(RocksDb);

TEST_CASE_TEMPLATE("namespaced state: windows hold separate state and merge on every backend", B,
                   Heap, RocksDb) {
  AnyBackend<std::string> b(B::kKind);
  using weir::detail::createState;
  auto& list = createState<Window>(b.base(), weir::ListStateDescriptor<long>("list"));
  auto& sum = createState<Window>(b.base(),
                                  weir::ReducingStateDescriptor<long, std::plus<long>>("sum", {}));
  auto& avg =
      createState<Window>(b.base(), weir::AggregatingStateDescriptor<long, Average>("avg", {}));
  auto& value = createState<Window>(b.base(), weir::ValueStateDescriptor<std::string>("value"));
  auto& map = createState<Window>(b.base(), weir::MapStateDescriptor<std::string, long>("map"));

  const Window w1{0, 10};
  const Window w2{5, 15};
  const Window w3{20, 30};
  const Window merged{0, 30};
  auto use = [&](const Window& w) {
    list.setNamespace(w);
    sum.setNamespace(w);
    avg.setNamespace(w);
    value.setNamespace(w);
    map.setNamespace(w);
  };
  b.select("k");
  long v = 1;
  for (const Window& w : {w1, w2, w3}) {
    use(w);
    list.add(v);
    list.add(v * 10);
    sum.add(v);
    sum.add(v * 10);
    avg.add(v);
    avg.add(v * 10);
    value.update("w" + std::to_string(v));
    map.put("x", v);
    ++v;
  }
  b.select("other");  // another key with the same windows stays apart
  use(w1);
  list.add(1000);
  sum.add(1000);

  b.select("k");
  use(w2);
  CHECK(list.get() == std::vector<long>{2, 20});
  CHECK(*sum.get() == 22);
  CHECK(*value.get() == "w2");
  CHECK(map.entries() == std::vector<std::pair<std::string, long>>{{"x", 2}});

  const std::vector<Window> sources = {w1, w2, w3, merged};  // the target among them is skipped
  list.mergeNamespaces(merged, sources);
  sum.mergeNamespaces(merged, sources);
  avg.mergeNamespaces(merged, sources);
  use(merged);
  std::vector<long> all = list.get();
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<long>{1, 2, 3, 10, 20, 30});
  CHECK(*sum.get() == 66);
  REQUIRE(avg.accumulator() != nullptr);
  CHECK(*avg.accumulator() == std::pair<long, long>{66, 6});
  CHECK(avg.get() == 11);
  for (const Window& w : {w1, w2, w3}) {
    use(w);
    CHECK(list.get().empty());
    CHECK(sum.get() == nullptr);
    CHECK(avg.accumulator() == nullptr);
  }
  // Merging into a window that already holds state adds to it.
  use(w1);
  sum.add(4);
  list.add(4);
  sum.mergeNamespaces(w1, {merged});
  list.mergeNamespaces(w1, {merged});
  CHECK(*sum.get() == 70);
  CHECK(list.get().size() == 7);
  CHECK(list.get().front() == 4);  // the target's elements first

  b.select("other");
  use(w1);
  CHECK(list.get() == std::vector<long>{1000});
  CHECK(*sum.get() == 1000);
}

namespace {

// A timer queue of either kind with its backend: heap (HeapTimerQueue), RocksDB with timers in the
// store (RocksTimerQueue), RocksDB with timers on the heap (HeapBytesTimerQueue).
enum class QueueKind { kHeap, kRocksDb, kRocksDbHeap };

template <class N>
struct TimerFixture {
  explicit TimerFixture(QueueKind kind, KeyGroupRange range = {0, 127})
      : backend(kind == QueueKind::kHeap ? StateBackendKind::kHeap : StateBackendKind::kRocksDb,
                range) {
    switch (kind) {
      case QueueKind::kHeap:
        queue = std::make_unique<weir::detail::HeapTimerQueue<std::string, N>>(*backend.heap());
        break;
      case QueueKind::kRocksDb:
        queue = std::make_unique<weir::detail::RocksTimerQueue<std::string, N>>(*backend.rocks(),
                                                                                "timers.test");
        break;
      case QueueKind::kRocksDbHeap:
        queue =
            std::make_unique<weir::detail::HeapBytesTimerQueue<std::string, N>>(*backend.rocks());
        break;
    }
  }
  ~TimerFixture() { queue.reset(); }
  AnyBackend<std::string> backend;
  std::unique_ptr<weir::detail::TimerQueue<N>> queue;
};

const QueueKind kAllQueues[] = {QueueKind::kHeap, QueueKind::kRocksDb, QueueKind::kRocksDbHeap};

const char* queueName(QueueKind k) {
  switch (k) {
    case QueueKind::kHeap:
      return "heap";
    case QueueKind::kRocksDb:
      return "rocksdb";
    case QueueKind::kRocksDbHeap:
      return "rocksdb, heap timers";
  }
  return "?";
}

}  // namespace

TEST_CASE("timer queues: many keys and key groups fire in time order, each once, with its key") {
  for (QueueKind kind : kAllQueues) {
    const std::string queue_name = queueName(kind);
    CAPTURE(queue_name);
    TimerFixture<weir::VoidNamespace> f(kind);
    std::mt19937 rng(42);
    std::multiset<std::pair<std::int64_t, std::string>> expected;
    for (int i = 0; i < 3000; ++i) {
      const std::string key = "key" + std::to_string(i % 400);
      const std::int64_t t = static_cast<std::int64_t>(rng() % 5000) - 2500;  // negative too
      f.backend.select(key);
      const bool added = f.queue->add(t, {});
      CHECK(added == (expected.count({t, key}) == 0));
      if (added) expected.emplace(t, key);
    }
    // Extremes: the earliest and latest possible times.
    f.backend.select("min");
    CHECK(f.queue->add(weir::kMinWatermark, {}));
    expected.emplace(weir::kMinWatermark, "min");
    f.backend.select("max");
    CHECK(f.queue->add(weir::kMaxWatermark, {}));
    expected.emplace(weir::kMaxWatermark, "max");
    CHECK(f.queue->size() == expected.size());
    CHECK(f.queue->peekTime() == weir::kMinWatermark);

    std::vector<std::pair<std::int64_t, std::string>> fired;
    auto record = [&](std::int64_t t, const weir::VoidNamespace&) {
      fired.emplace_back(t, f.backend.currentKey());
    };
    f.queue->fireUntil(0, record);
    for (std::size_t i = 1; i < fired.size(); ++i)
      CHECK(fired[i - 1].first <= fired[i].first);
    CHECK(f.queue->peekTime() > 0);
    f.queue->fireUntil(weir::kMaxWatermark, record);
    CHECK(f.queue->size() == 0);
    CHECK(f.queue->peekTime() == weir::kNoDeadline);
    std::multiset<std::pair<std::int64_t, std::string>> got(fired.begin(), fired.end());
    CHECK(got == expected);
    for (std::size_t i = 1; i < fired.size(); ++i)
      CHECK(fired[i - 1].first <= fired[i].first);
  }
}

TEST_CASE("timer queues: timers added, deleted and re-added while firing") {
  for (QueueKind kind : kAllQueues) {
    const std::string queue_name = queueName(kind);
    CAPTURE(queue_name);
    TimerFixture<Window> f(kind);
    // 500 timers of one key (one key group: more than a RocksDB batch) and some of others.
    f.backend.select("busy");
    for (int t = 0; t < 500; ++t)
      CHECK(f.queue->add(t, Window{t, t + 1}));
    // Beyond what a RocksDB queue caches of one key group: answered by the store.
    CHECK_FALSE(f.queue->add(450, Window{450, 451}));
    CHECK(f.queue->remove(460, Window{460, 461}));
    CHECK_FALSE(f.queue->remove(460, Window{460, 461}));
    CHECK(f.queue->add(460, Window{460, 461}));
    CHECK(f.queue->remove(460, Window{460, 461}));
    f.backend.select("quiet");
    CHECK(f.queue->add(250, Window{0, 0}));
    CHECK_FALSE(f.queue->add(250, Window{0, 0}));  // deduplicated
    CHECK(f.queue->add(250, Window{0, 1}));        // another namespace: another timer
    CHECK(f.queue->remove(250, Window{0, 1}));
    CHECK_FALSE(f.queue->remove(250, Window{0, 1}));
    std::vector<std::string> fired;
    f.queue->fireUntil(1000, [&](std::int64_t t, const Window& w) {
      const std::string key = f.backend.currentKey();
      fired.push_back(key + "@" + std::to_string(t) + "/" + std::to_string(w.end));
      if (key != "busy") return;
      if (t == 10) {
        // Delete a pending timer of the same key, and add an earlier-than-pending one.
        CHECK(f.queue->remove(11, Window{11, 12}));
        CHECK(f.queue->add(12, Window{12, 99}));
      }
      if (t == 300) {
        // A timer of another key that is due: it fires in this call, before later ones.
        f.backend.select("late");
        CHECK(f.queue->add(301, Window{0, 7}));
        f.backend.select("busy");
      }
      if (t == 499) CHECK(f.queue->add(2000, Window{}));  // beyond the limit: stays
    });
    CHECK(fired.size() == 501);  // 500 - two deleted + one added + quiet + late
    CHECK(std::find(fired.begin(), fired.end(), "busy@460/461") == fired.end());
    CHECK(std::find(fired.begin(), fired.end(), "busy@11/12") == fired.end());
    const auto at12 = std::find(fired.begin(), fired.end(), "busy@12/99");
    REQUIRE(at12 != fired.end());
    const auto late = std::find(fired.begin(), fired.end(), "late@301/7");
    REQUIRE(late != fired.end());
    CHECK(*(late - 1) == "busy@301/302");  // equal times: either order, both before 302
    CHECK(*(late + 1) == "busy@302/303");
    CHECK(std::find(fired.begin(), fired.end(), "quiet@250/0") != fired.end());
    CHECK(f.queue->size() == 1);
    CHECK(f.queue->peekTime() == 2000);
  }
}

TEST_CASE("RocksDB state: state and timers of a key group are contiguous, key groups in order") {
  const int max_parallelism = 128;
  const KeyGroupRange range = weir::keyGroupRangeForSubtask(1, 4, max_parallelism);  // [32, 63]
  AnyBackend<std::string> b(StateBackendKind::kRocksDb, range, max_parallelism);
  auto& value = weir::detail::createState<weir::VoidNamespace>(
      b.base(), weir::ValueStateDescriptor<long>("v"));
  weir::detail::RocksTimerQueue<std::string, weir::VoidNamespace> timers(*b.rocks(), "timers");
  weir::detail::HeapBytesTimerQueue<std::string, weir::VoidNamespace> heap_timers(*b.rocks());
  std::map<int, std::set<std::string>> keys_by_group;
  int n = 0;
  for (int i = 0; n < 500; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const int kg = weir::keyGroupOf(key, max_parallelism);
    if (!range.contains(kg)) continue;
    ++n;
    keys_by_group[kg].insert(key);
    b.select(key);
    value.update(i);
    timers.add(1000 - i % 7, {});
    timers.add(i % 5, {});
    heap_timers.add(i % 3, {});
  }
  CHECK(keys_by_group.size() > 20);
  const int column =
      static_cast<weir::detail::RocksValueState<weir::VoidNamespace, long>&>(value).column();
  std::size_t seen = 0;
  for (int kg = range.start; kg <= range.end; ++kg) {
    std::set<std::string> state_keys;
    b.rocks()->forEachInGroup(
        column, kg,
        [&](weir::KvSlice k, weir::KvSlice) {
          std::string key;
          RocksKeyedBackend<std::string>::decodeKey(
              k, key, [&](int group, const std::string&) { CHECK(group == kg); });
          CHECK(weir::keyGroupOf(key, max_parallelism) == kg);
          state_keys.insert(key);
        },
        "test");
    CHECK(state_keys == keys_by_group[kg]);
    seen += state_keys.size();

    std::set<std::string> timer_keys;
    std::int64_t last = weir::kMinWatermark;
    timers.forEachInGroup(kg,
                          [&](std::int64_t t, const std::string& key, const weir::VoidNamespace&) {
                            CHECK(t >= last);  // in time order within the key group
                            last = t;
                            CHECK(weir::keyGroupOf(key, max_parallelism) == kg);
                            timer_keys.insert(key);
                          });
    CHECK(timer_keys == keys_by_group[kg]);
    std::set<std::string> heap_timer_keys;
    heap_timers.forEachInGroup(
        kg, [&](std::int64_t, const std::string& key, const weir::VoidNamespace&) {
          heap_timer_keys.insert(key);
        });
    CHECK(heap_timer_keys == keys_by_group[kg]);
  }
  CHECK(seen == 500);
  CHECK(timers.size() == 1000);
}

TEST_CASE("RocksDB state: a map never sees the entries of a neighbouring key or namespace") {
  // One key group, so every key and namespace shares the same first bytes.
  AnyBackend<std::string> b(StateBackendKind::kRocksDb, {0, 0}, 1);
  auto& map = weir::detail::createState<std::string>(
      b.base(), weir::MapStateDescriptor<std::string, long>("m"));
  const std::vector<std::string> keys = {"a", "ab", "", "b", std::string("a\0", 2)};
  const std::vector<std::string> namespaces = {"", "x", "xy", "y"};
  long v = 0;
  for (const auto& key : keys) {
    b.select(key);
    for (const auto& ns : namespaces) {
      map.setNamespace(ns);
      map.put("e1", ++v);
      map.put("e2", ++v);
    }
  }
  v = 0;
  for (const auto& key : keys) {
    b.select(key);
    for (const auto& ns : namespaces) {
      map.setNamespace(ns);
      CHECK(map.entries() ==
            std::vector<std::pair<std::string, long>>{{"e1", v + 1}, {"e2", v + 2}});
      v += 2;
    }
  }
  b.select("a");
  map.setNamespace(namespaces[1]);
  map.clear();
  CHECK(map.isEmpty());
  for (const auto& key : keys) {
    b.select(key);
    for (const auto& ns : namespaces) {
      map.setNamespace(ns);
      CHECK(map.isEmpty() == (key == "a" && ns == "x"));
    }
  }
}

namespace {

struct Event {
  std::string key;
  long value = 0;
};
std::string keyOf(const Event& e) {
  return e.key;
}
using KeyF = std::string (*)(const Event&);

template <class F>
auto makeRocksHarness(F fn, weir::test::HarnessOptions options = {}) {
  options.backend = StateBackendKind::kRocksDb;
  return weir::test::Harness<Event, std::string>(
      std::make_unique<
          weir::detail::KeyedProcessOperator<Event, std::string, std::string, KeyF, F>>(
          &keyOf, std::move(fn)),
      options);
}

// value > 0 adds it to the key's list; 0 reports the list's size and sum.
struct ListAdder {
  void open(const weir::RuntimeContext& ctx) {
    list = &ctx.getListState(weir::ListStateDescriptor<long>("list"));
  }
  void processElement(const Event& e, weir::KeyedContext<std::string>&,
                      weir::Collector<std::string>& out) {
    if (e.value > 0) {
      list->add(e.value);
      return;
    }
    long sum = 0;
    for (long x : list->get())
      sum += x;
    out.collect(std::to_string(list->get().size()) + " " + std::to_string(sum));
  }
  weir::ListState<long>* list = nullptr;
};

}  // namespace

TEST_CASE("RocksDB state: list add appends without reading the list") {
  auto h = makeRocksHarness(ListAdder{});
  h.open();
  REQUIRE(h.store() != nullptr);
  h.store()->resetCounts();
  std::vector<std::pair<Event, std::int64_t>> batch;
  for (long i = 1; i <= 1000; ++i)
    batch.push_back({Event{"k", i}, weir::kNoTimestamp});
  h.pushAll(batch);
  CHECK(h.store()->gets == 0);
  CHECK(h.store()->puts == 0);
  CHECK(h.store()->appends == 1000);
  h.push({"k", 0});
  CHECK(h.output().records == std::vector<std::string>{"1000 500500"});
}

TEST_CASE("RocksDB state: large values, lists and maps round-trip") {
  AnyBackend<std::string> b(StateBackendKind::kRocksDb);
  using weir::VoidNamespace;
  using weir::detail::createState;
  auto& blob =
      createState<VoidNamespace>(b.base(), weir::ValueStateDescriptor<std::string>("blob"));
  auto& numbers = createState<VoidNamespace>(
      b.base(), weir::ValueStateDescriptor<std::vector<std::int64_t>>("numbers"));
  auto& list = createState<VoidNamespace>(b.base(), weir::ListStateDescriptor<std::string>("l"));
  auto& map = createState<VoidNamespace>(b.base(),
                                         weir::MapStateDescriptor<std::int64_t, std::string>("m"));
  std::string big(16u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 131 % 251);
  std::vector<std::int64_t> many(1'000'000);
  for (std::size_t i = 0; i < many.size(); ++i)
    many[i] = static_cast<std::int64_t>(i * i);
  b.select("big");
  blob.update(big);
  numbers.update(many);
  const std::string element(1000, 'e');
  std::vector<std::string> chunk;
  for (int i = 0; i < 10000; ++i) {
    list.add(element + std::to_string(i));
    if (i % 100 == 0) chunk.push_back(std::to_string(i));
    map.put(i, std::string(500, static_cast<char>('a' + i % 26)));
  }
  list.addAll(chunk);
  b.select("neighbour");
  blob.update("small");
  b.select("big");
  REQUIRE(blob.get() != nullptr);
  CHECK(*blob.get() == big);
  CHECK(*numbers.get() == many);
  const std::vector<std::string>& got = list.get();
  REQUIRE(got.size() == 10000 + chunk.size());
  CHECK(got[9999] == element + "9999");
  CHECK(got.back() == "9900");
  std::size_t entries = 0;
  std::int64_t last = -1;
  map.forEach([&](const std::int64_t& k, const std::string& v) {
    ++entries;
    CHECK(v == std::string(500, static_cast<char>('a' + k % 26)));
    last = k;
  });
  CHECK(entries == 10000);
  CHECK(*map.get(9999) == std::string(500, static_cast<char>('a' + 9999 % 26)));
  b.select("neighbour");
  CHECK(*blob.get() == "small");
  CHECK(list.get().empty());
}

namespace {

// Value state, a timer per record; reports in onTimer.
struct CountWithTimer {
  void open(const weir::RuntimeContext& ctx) {
    last = &ctx.getState(weir::ValueStateDescriptor<long>("last"));
  }
  void processElement(const Event& e, weir::KeyedContext<std::string>& ctx,
                      weir::Collector<std::string>&) {
    last->update(e.value);
    ctx.timerService().registerEventTimeTimer(100);
    ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() + 5);
  }
  void onTimer(std::int64_t, weir::KeyedContext<std::string>& ctx,
               weir::Collector<std::string>& out) {
    out.collect(ctx.currentKey() + "=" + std::to_string(last->valueOr(-1)));
  }
  weir::ValueState<long>* last = nullptr;
};

std::string failureOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no failure";
}

}  // namespace

TEST_CASE("RocksDB state: a store error fails the operator with a message naming the state") {
  for (bool timers_in_store : {true, false}) {
    CAPTURE(timers_in_store);
    weir::test::HarnessOptions options;
    options.timers_in_kv_store = timers_in_store;
    auto h = makeRocksHarness(CountWithTimer{}, options);
    h.open();
    h.push({"a", 1}, 1);
    h.store()->fail = true;
    const std::string write = failureOf([&] { h.push({"a", 2}, 2); });
    CHECK(write.find("operator 'op under test' failed") != std::string::npos);
    CHECK(write.find("keyed state 'last'") != std::string::npos);
    CHECK(write.find("injected I/O error in put") != std::string::npos);
    // Asking for the next deadline never throws (the task asks where nothing may), firing does.
    CHECK(h.op().nextProcessingTime() <= 1'000'005);
    if (timers_in_store) {
      const std::string fire = failureOf([&] { h.watermark(200); });
      CHECK(fire.find("timers 'timers.event'") != std::string::npos);
      CHECK(fire.find("injected I/O error") != std::string::npos);
    }
    h.store()->fail = false;
  }
}

TEST_CASE("RocksDB state: the operator fails to open without a store, naming the task") {
  ManualEnvironment env;  // offers no KV store
  weir::RuntimeContext ctx("job", "counting task", 0, 1, 128, nullptr);
  weir::RuntimeContext::Internals internals;
  internals.env = &env;
  internals.state_backend = StateBackendKind::kRocksDb;
  ctx.setInternals(internals);
  weir::detail::KeyedRuntime<std::string, weir::VoidNamespace> runtime;
  CHECK_THROWS_WITH(runtime.open(ctx),
                    "cannot open the RocksDB state store of 'counting task': no KV store in this "
                    "harness");
}

namespace {

struct Opaque {  // no Serde
  std::string text;
  int n = 0;
};

}  // namespace

TEST_CASE("keyed state: a type without Serde works on the heap and is refused clearly on RocksDB") {
  AnyBackend<std::string> heap(StateBackendKind::kHeap);
  heap.select("k");
  auto& v = weir::detail::createState<weir::VoidNamespace>(
      heap.base(), weir::ValueStateDescriptor<Opaque>("opaque"));
  v.update(Opaque{"x", 1});
  CHECK(v.get()->text == "x");
  AnyBackend<std::string> rocks(StateBackendKind::kRocksDb);
  CHECK_THROWS_WITH(weir::detail::createState<weir::VoidNamespace>(
                        rocks.base(), weir::ValueStateDescriptor<Opaque>("opaque")),
                    doctest::Contains("keyed state 'opaque' cannot live in the rocksdb state "
                                      "backend: its value (or map key, or namespace) type has no "
                                      "weir::Serde"));
}

TEST_CASE("RocksDB state: the per-record path reuses its buffers") {
  // The same reads and writes many times: the store sees exactly one call per access.
  AnyBackend<long> b(StateBackendKind::kRocksDb);
  auto& value = weir::detail::createState<weir::VoidNamespace>(
      b.base(), weir::ValueStateDescriptor<std::string>("v"));
  auto& sum = weir::detail::createState<weir::VoidNamespace>(
      b.base(), weir::ReducingStateDescriptor<long, std::plus<long>>("sum", {}));
  b.store()->resetCounts();
  for (long k = 0; k < 1000; ++k) {
    b.select(k % 10);
    const std::string* before = value.get();
    value.update(before ? *before + "." : std::string("."));
    sum.add(k);
  }
  CHECK(b.store()->gets == 2000);  // value read, reducing read-modify-write
  CHECK(b.store()->puts == 2000);
  b.select(3);
  CHECK(value.get()->size() == 100);
  CHECK(*sum.get() == (3 + 993) * 100 / 2);
  // get() returns the state's own cache: valid until the next access.
  const std::string* p = value.get();
  CHECK(p == value.get());
}

namespace {

// An in-memory KvStore that does not allocate for keys it already holds (no scans).
class MemKvStore final : public weir::KvStore {
 public:
  weir::Status openColumn(const std::string&, int& column) noexcept override {
    columns_.emplace_back();
    column = static_cast<int>(columns_.size()) - 1;
    return weir::Status::ok();
  }
  weir::Status get(int column, weir::KvSlice key, std::string& value,
                   bool& found) noexcept override {
    auto& c = columns_[static_cast<std::size_t>(column)];
    auto it = c.find(key.view());
    found = it != c.end();
    if (found) value.assign(it->second);
    return weir::Status::ok();
  }
  weir::Status put(int column, weir::KvSlice key, weir::KvSlice value) noexcept override {
    auto& c = columns_[static_cast<std::size_t>(column)];
    auto it = c.find(key.view());
    if (it == c.end()) it = c.emplace(std::string(key.view()), std::string()).first;
    it->second.assign(value.view());
    return weir::Status::ok();
  }
  weir::Status append(int column, weir::KvSlice key, weir::KvSlice value) noexcept override {
    auto& c = columns_[static_cast<std::size_t>(column)];
    auto it = c.find(key.view());
    if (it == c.end()) it = c.emplace(std::string(key.view()), std::string()).first;
    it->second.append(value.view());
    return weir::Status::ok();
  }
  weir::Status remove(int column, weir::KvSlice key) noexcept override {
    auto& c = columns_[static_cast<std::size_t>(column)];
    if (auto it = c.find(key.view()); it != c.end()) c.erase(it);
    return weir::Status::ok();
  }
  weir::Status scan(int, weir::KvSlice, weir::KvSlice,
                    std::unique_ptr<weir::KvIterator>&) noexcept override {
    return weir::Status::internal("no scans here");
  }

 private:
  std::deque<std::map<std::string, std::string, std::less<>>> columns_;
};

}  // namespace

TEST_CASE("RocksDB state: reads and writes of known keys do not allocate once warm") {
  ManualEnvironment env;
  MemKvStore store;
  RocksKeyedBackend<std::string> backend(&env, {0, 127}, 128, store);
  using weir::VoidNamespace;
  using weir::detail::createState;
  auto& value = createState<VoidNamespace>(backend, weir::ValueStateDescriptor<std::string>("v"));
  weir::ValueStateDescriptor<long> ttl_d("ttl");
  ttl_d.enableTimeToLive(weir::StateTtlConfig::of(std::chrono::hours(1))
                             .setUpdateType(weir::StateTtlConfig::UpdateType::kOnReadAndWrite));
  auto& ttl = createState<VoidNamespace>(backend, ttl_d);
  auto& sum = createState<VoidNamespace>(
      backend, weir::ReducingStateDescriptor<long, std::plus<long>>("sum", {}));
  auto& avg =
      createState<VoidNamespace>(backend, weir::AggregatingStateDescriptor<long, Average>("a", {}));
  auto& map = createState<VoidNamespace>(backend, weir::MapStateDescriptor<long, long>("m"));
  auto& list = createState<Window>(backend, weir::ListStateDescriptor<long>("l"));
  weir::detail::RocksTimerQueue<std::string, VoidNamespace> timers(backend, "timers");
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i)
    keys.push_back("a key that is long enough not to fit the small string buffer " +
                   std::to_string(i));
  const Window w{0, 100};
  const std::vector<long> elements = {1, 2, 3};
  auto round = [&] {
    for (const std::string& k : keys) {
      backend.setCurrentKey(k, weir::keyGroupOf(k, 128));
      const std::string* v = value.get();
      value.update(v != nullptr ? *v : k);
      ttl.update(ttl.valueOr(0) + 1);
      sum.add(1);
      avg.add(2);
      (void)avg.get();
      const long* m = map.get(7);
      map.put(7, m != nullptr ? *m + 1 : 1);
      list.setNamespace(w);
      list.update(elements);
      (void)list.get();
      timers.add(5, {});  // already there after the first round: a lookup
    }
  };
  round();
  round();
  t_allocations = 0;
  for (int i = 0; i < 100; ++i)
    round();
  CHECK(t_allocations == 0);
  backend.setCurrentKey(keys[0], weir::keyGroupOf(keys[0], 128));
  CHECK(*sum.get() == 102);
}
