#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/job_test_util.h"
#include "weir/weir.h"

using weir::JobBuilder;
using weir::testing::runJob;
using weir::testing::startJob;
using WordCount = std::pair<std::string, std::int64_t>;

namespace {

const std::vector<std::string> kLines = {
    "the quick brown fox",
    "jumps over the lazy dog",
    "The dog barks",
    "a fox, a dog; the end",
    "",
    "   spaces   everywhere  ",
};

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::string w;
  for (char c : line) {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      out.push_back(w);
      w.clear();
    }
  }
  if (!w.empty()) out.push_back(w);
  return out;
}

// The running counts word count must emit: for each word w seen n times, (w,1) ... (w,n).
std::vector<WordCount> expectedRunningCounts(const std::vector<std::string>& lines, int copies) {
  std::map<std::string, std::int64_t> totals;
  for (int i = 0; i < copies; ++i) {
    for (const auto& l : lines) {
      for (const auto& w : words(l))
        ++totals[w];
    }
  }
  std::vector<WordCount> out;
  for (const auto& [w, n] : totals) {
    for (std::int64_t k = 1; k <= n; ++k)
      out.emplace_back(w, k);
  }
  return out;
}

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("executor: word count gives exact running counts at parallelism 1, 2 and 4") {
  for (int parallelism : {1, 2, 4}) {
    CAPTURE(parallelism);
    weir::CollectSink<WordCount> sink;
    std::vector<std::string> input;
    for (int i = 0; i < 50; ++i)
      input.insert(input.end(), kLines.begin(), kLines.end());
    auto build = [sink, input](JobBuilder& job) {
      job.fromCollection(input)
          .flatMap([](const std::string& line, weir::Collector<std::string>& out) {
            for (auto& w : words(line))
              out.collect(std::move(w));
          })
          .map([](const std::string& w) { return WordCount(w, 1); })
          .keyBy([](const WordCount& wc) { return wc.first; })
          .reduce([](const WordCount& a, const WordCount& b) {
            return WordCount(a.first, a.second + b.second);
          })
          .addSink(sink);
    };
    REQUIRE(runJob(build, parallelism).isOk());
    CHECK(sorted(sink.results()) == expectedRunningCounts(kLines, 50));
  }
}

TEST_CASE("executor: job arguments and the runtime context reach operators, and open and close run") {
  struct Seen {
    std::mutex mu;
    std::vector<std::string> events;
  };
  auto seen = std::make_shared<Seen>();
  class Tagger {
   public:
    explicit Tagger(std::shared_ptr<Seen> s) : seen_(std::move(s)) {}
    void open(const weir::RuntimeContext& ctx) {
      prefix_ = ctx.args().get("prefix", "?") + std::to_string(ctx.subtaskIndex());
      std::lock_guard<std::mutex> l(seen_->mu);
      seen_->events.push_back("open " + ctx.taskName() + " " + std::to_string(ctx.subtaskIndex()) +
                              "/" + std::to_string(ctx.parallelism()) + " max " +
                              std::to_string(ctx.maxParallelism()) + " job " + ctx.jobName());
    }
    std::string map(const std::int64_t& v) const { return prefix_ + ":" + std::to_string(v); }
    void close() {
      std::lock_guard<std::mutex> l(seen_->mu);
      seen_->events.push_back("close");
    }

   private:
    std::shared_ptr<Seen> seen_;
    std::string prefix_;
  };
  weir::CollectSink<std::string> sink;
  auto build = [sink, seen](JobBuilder& job) {
    job.name("ctx").maxParallelism(64);
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, 4)
        .map(Tagger(seen))
        .name("tagger")
        .addSink(sink);
  };
  weir::JobArgs args;
  args.set("prefix", "p");
  REQUIRE(runJob(build, 2, args).isOk());
  CHECK(sorted(sink.results()) == std::vector<std::string>{"p0:0", "p0:2", "p1:1", "p1:3"});
  auto events = sorted(seen->events);
  CHECK(events == std::vector<std::string>{"close", "close", "open tagger 0/2 max 64 job ctx",
                                           "open tagger 1/2 max 64 job ctx"});
}

TEST_CASE("executor: a failing user operator fails the job with its message, and close still runs") {
  auto closed = std::make_shared<std::atomic<int>>(0);
  class Fragile {
   public:
    explicit Fragile(std::shared_ptr<std::atomic<int>> c) : closed_(std::move(c)) {}
    std::int64_t map(const std::int64_t& v) const {
      if (v == 5000) throw std::runtime_error("cannot handle 5000");
      return v;
    }
    void close() { ++*closed_; }

   private:
    std::shared_ptr<std::atomic<int>> closed_;
  };
  auto build = [closed](JobBuilder& job) {
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); })  // unbounded
        .rebalance()
        .map(Fragile(closed))
        .name("fragile")
        .addSink([](const std::int64_t&) {});
  };
  const weir::Status s = runJob(build, 2);
  REQUIRE_FALSE(s.isOk());
  CHECK(s.code() == weir::Status::Code::kFailed);
  CHECK(s.message().find("operator 'fragile' failed: cannot handle 5000") != std::string::npos);
  CHECK(s.message().find("task fragile -> Sink (") != std::string::npos);
  CHECK(closed->load() == 2);  // both parallel instances were closed
}

TEST_CASE("executor: a failing job does not disturb another job running beside it") {
  weir::CollectSink<std::int64_t> sink;
  auto good = [sink](JobBuilder& job) {
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, 200000)
        .rebalance()
        .map([](const std::int64_t& v) { return v + 1; })
        .addSink(sink);
  };
  auto bad = [](JobBuilder& job) {
    job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); })
        .map([](const std::int64_t& v) -> std::int64_t {
          if (v == 1000) throw std::logic_error("bad record");
          return v;
        })
        .addSink([](const std::int64_t&) {});
  };
  auto good_job = startJob(good, 2);
  auto bad_job = startJob(bad, 2);
  REQUIRE(good_job.isOk());
  REQUIRE(bad_job.isOk());
  CHECK((*bad_job)->wait().message().find("bad record") != std::string::npos);
  REQUIRE((*good_job)->wait().isOk());
  const auto results = sink.results();
  CHECK(results.size() == 200000);
  std::int64_t sum = 0;
  for (auto v : results)
    sum += v;
  CHECK(sum == 200000LL * 200001 / 2);
}

TEST_CASE("executor: cancelling an unbounded job stops every task") {
  auto job = startJob(
      [](JobBuilder& job) {
        job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); })
            .keyBy([](const std::int64_t& v) { return v % 100; })
            .reduce([](const std::int64_t& a, const std::int64_t& b) { return a + b; })
            .addSink([](const std::int64_t&) {});
      },
      2);
  REQUIRE(job.isOk());
  REQUIRE(weir::testing::eventually([&] {
    for (const auto& t : (*job)->snapshot()) {
      if (t.chain_id == 1 && t.vertices[0].records_in > 10000) return true;
    }
    return false;
  }));
  (*job)->cancel();
  const weir::Status s = (*job)->wait();
  CHECK(s.code() == weir::Status::Code::kCancelled);
  for (const auto& t : (*job)->snapshot())
    CHECK(t.state == weir::engine::TaskState::kCanceled);
}

TEST_CASE("executor: records larger than a network buffer cross intact") {
  weir::CollectSink<std::string> sink;
  auto build = [sink](JobBuilder& job) {
    job.fromGenerator([](std::uint64_t i) { return std::string(i * 20000 + 1, char('a' + i)); }, 6)
        .rebalance()
        .addSink(sink);
  };
  REQUIRE(runJob(build, 2).isOk());
  auto results = sorted(sink.results());
  REQUIRE(results.size() == 6);
  for (std::size_t i = 0; i < 6; ++i)
    CHECK(results[i] == std::string(i * 20000 + 1, char('a' + i)));
}

TEST_CASE("executor: union merges streams, and counters count records per vertex") {
  weir::CollectSink<std::int64_t> sink;
  auto build = [sink](JobBuilder& job) {
    auto evens =
        job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(2 * i); }, 1000);
    auto odds = job.fromGenerator(
        [](std::uint64_t i) { return static_cast<std::int64_t>(2 * i + 1); }, 1000);
    evens.unionWith(odds)
        .filter([](const std::int64_t& v) { return v % 3 == 0; })
        .name("div3")
        .addSink(sink);
  };
  auto job = startJob(build, 2);
  REQUIRE(job.isOk());
  REQUIRE((*job)->wait().isOk());
  auto results = sorted(sink.results());
  REQUIRE(results.size() == 667);
  for (std::size_t i = 0; i < results.size(); ++i)
    CHECK(results[i] == static_cast<std::int64_t>(3 * i));
  std::uint64_t in = 0, out = 0;
  for (const auto& t : (*job)->snapshot()) {
    CHECK(t.state == weir::engine::TaskState::kFinished);
    for (const auto& v : t.vertices) {
      if (v.id == 2) {
        in += v.records_in;
        out += v.records_out;
      }
    }
  }
  CHECK(in == 2000);
  CHECK(out == 667);
}

TEST_CASE("executor: a bounded source reading a missing file fails the job clearly") {
  const weir::Status s =
      runJob([](JobBuilder& job) { job.readTextFile("/nonexistent/weir-input.txt").print(); }, 1);
  CHECK(s.message().find("cannot open input file '/nonexistent/weir-input.txt'") !=
        std::string::npos);
}

TEST_CASE("executor: not enough network buffers is a clear deployment error") {
  weir::engine::TaskExecutorOptions options;
  options.total_buffers = 10;
  auto job = startJob(
      [](JobBuilder& job) {
        job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, 10)
            .rebalance()
            .print();
      },
      4, {}, options);
  REQUIRE_FALSE(job.isOk());
  CHECK(job.status().message().find("insufficient network buffers") != std::string::npos);
}

namespace {

// Emits "<subtask>:<i>" for i < 5 in bursts of two, saying "nothing available" in between.
class Bursty : public weir::BoundedSource<std::string> {
 public:
  void open(const weir::RuntimeContext& ctx) override { subtask_ = ctx.subtaskIndex(); }
  weir::SourceStatus pollNext(weir::Collector<std::string>& out) override {
    if (idle_turn_ = !idle_turn_; idle_turn_) return weir::SourceStatus::kNothingAvailable;
    for (int k = 0; k < 2 && next_ < 5; ++k) {
      out.collect(std::to_string(subtask_) + ":" + std::to_string(next_++));
    }
    return next_ == 5 ? weir::SourceStatus::kEndOfInput : weir::SourceStatus::kMoreAvailable;
  }

 private:
  int subtask_ = 0;
  int next_ = 0;
  bool idle_turn_ = false;
};

// Counts forever, one record per poll.
class Ticker : public weir::UnboundedSource<std::int64_t> {
 public:
  weir::SourceStatus pollNext(weir::Collector<std::int64_t>& out) override {
    out.collect(n_++);
    return weir::SourceStatus::kMoreAvailable;
  }

 private:
  std::int64_t n_ = 0;
};

}  // namespace

TEST_CASE("executor: user sources through the bounded and unbounded source interfaces") {
  weir::CollectSink<std::string> sink;
  auto bounded = [sink](JobBuilder& job) {
    job.addSource<std::string>(Bursty{}, "bursty").rebalance().addSink(sink);
  };
  auto job = startJob(bounded, 2);
  REQUIRE(job.isOk());
  REQUIRE((*job)->wait().isOk());
  CHECK((*job)->graph().vertices[0].bounded);
  CHECK(sorted(sink.results()) == std::vector<std::string>{"0:0", "0:1", "0:2", "0:3", "0:4", "1:0",
                                                           "1:1", "1:2", "1:3", "1:4"});

  weir::CollectSink<std::int64_t> ticks;
  auto unbounded = [ticks](JobBuilder& job) {
    job.addSource<std::int64_t>(Ticker{}, "ticker").addSink(ticks);
  };
  auto forever = startJob(unbounded, 1);
  REQUIRE(forever.isOk());
  CHECK_FALSE((*forever)->graph().vertices[0].bounded);
  REQUIRE(weir::testing::eventually(
      [&] { return (*forever)->snapshot()[0].vertices[0].records_out > 10000; }));
  (*forever)->cancel();
  CHECK((*forever)->wait().code() == weir::Status::Code::kCancelled);
  const auto seen = ticks.results();  // the sink published what it saw when it closed
  REQUIRE(seen.size() > 10000);
  std::vector<std::int64_t> expected(seen.size());
  std::iota(expected.begin(), expected.end(), 0);
  CHECK(seen == expected);
}
