#include "checkpoint/checkpoint_coordinator.h"

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "engine/checkpoint/checkpoint_test_util.h"
#include "process_util.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using weir::engine::CheckpointCoordinator;
using weir::engine::CheckpointStorage;
using weir::engine::CoordinatorTask;
using weir::engine::CoordinatorVertex;
using weir::testing::TempDir;
using weir::testing::writeStateFile;
namespace thrift = weir::thrift;

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kJob = "job-coord";
constexpr auto kWait = 5s;

// Records every callback; tests wait on its condition variable with a bounded timeout.
class Recorder {
 public:
  struct Trigger {
    int attempt = 0;
    thrift::CheckpointTrigger trigger;
    std::vector<thrift::SubtaskId> subtasks;
    Clock::time_point at;
  };

  CheckpointCoordinator::Callbacks callbacks() {
    CheckpointCoordinator::Callbacks c;
    c.trigger = [this](int attempt, const thrift::CheckpointTrigger& trigger,
                       const std::vector<thrift::SubtaskId>& subtasks) {
      record([&] { triggers_.push_back({attempt, trigger, subtasks, Clock::now()}); });
    };
    c.notify_complete = [this](int attempt, int64_t id) {
      record([&] { completed_.emplace_back(attempt, id); });
    };
    c.notify_aborted = [this](int attempt, int64_t id) {
      record([&] { aborted_.emplace_back(attempt, id); });
    };
    c.fail_job = [this](const std::string& reason) {
      record([&] { failures_.push_back(reason); });
    };
    return c;
  }

  // Waits until trigger number `n` (1-based) arrived and returns it.
  Trigger waitTrigger(std::size_t n) {
    std::unique_lock lock(mutex_);
    const bool arrived = cv_.wait_for(lock, kWait, [&] { return triggers_.size() >= n; });
    REQUIRE_MESSAGE(arrived, "trigger " << n << " did not arrive");
    return triggers_[n - 1];
  }
  void waitCompleted(std::size_t n) {
    std::unique_lock lock(mutex_);
    REQUIRE_MESSAGE(cv_.wait_for(lock, kWait, [&] { return completed_.size() >= n; }),
                    "completion " << n << " did not arrive");
  }
  void waitAborted(std::size_t n) {
    std::unique_lock lock(mutex_);
    REQUIRE_MESSAGE(cv_.wait_for(lock, kWait, [&] { return aborted_.size() >= n; }),
                    "abort " << n << " did not arrive");
  }
  void waitFailures(std::size_t n) {
    std::unique_lock lock(mutex_);
    REQUIRE_MESSAGE(cv_.wait_for(lock, kWait, [&] { return failures_.size() >= n; }),
                    "fail_job " << n << " did not arrive");
  }

  // True when no trigger beyond the first `n` arrives within `d`.
  bool noTriggerAfter(std::size_t n, Clock::duration d) {
    std::unique_lock lock(mutex_);
    return !cv_.wait_for(lock, d, [&] { return triggers_.size() > n; });
  }

  std::size_t triggerCount() {
    std::lock_guard lock(mutex_);
    return triggers_.size();
  }
  std::vector<std::pair<int, int64_t>> completed() {
    std::lock_guard lock(mutex_);
    return completed_;
  }
  std::vector<std::pair<int, int64_t>> aborted() {
    std::lock_guard lock(mutex_);
    return aborted_;
  }
  std::vector<std::string> failures() {
    std::lock_guard lock(mutex_);
    return failures_;
  }

 private:
  template <class Fn>
  void record(Fn&& fn) {
    {
      std::lock_guard lock(mutex_);
      fn();
    }
    cv_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Trigger> triggers_;
  std::vector<std::pair<int, int64_t>> completed_;
  std::vector<std::pair<int, int64_t>> aborted_;
  std::vector<std::string> failures_;
};

// A source chain (0, parallelism 1) feeding a chain of map and sink (1, parallelism 2).
std::vector<CoordinatorTask> tasks() {
  return {{0, 0, true}, {1, 0, false}, {1, 1, false}};
}

CheckpointCoordinator::Options options(const TempDir& tmp) {
  CheckpointCoordinator::Options o;
  o.job_id = kJob;
  o.settings.interval = 30ms;
  o.settings.timeout = 10s;
  o.settings.checkpoints_dir = tmp.path() + "/checkpoints";
  o.settings.tolerable_failed_checkpoints = 10;
  o.vertices = {{"source", 0, 1, 128}, {"map", 1, 2, 128}, {"sink", 1, 2, 128}};
  o.state_backend = "heap";
  return o;
}

std::unique_ptr<CheckpointCoordinator> make(const CheckpointCoordinator::Options& o,
                                            Recorder& recorder) {
  auto created = CheckpointCoordinator::create(o, recorder.callbacks());
  REQUIRE_MESSAGE(created.isOk(), created.status().message());
  return std::move(*created);
}

CheckpointStorage storage(const TempDir& tmp) {
  auto opened = CheckpointStorage::open(tmp.path() + "/checkpoints");
  REQUIRE(opened.isOk());
  return std::move(*opened);
}

thrift::CheckpointAck ack(int attempt, int64_t id, int chain, int subtask) {
  thrift::CheckpointAck a;
  a.jobId = kJob;
  a.attempt = attempt;
  a.checkpointId = id;
  a.chainId = chain;
  a.subtask = subtask;
  a.stats.checkpointedSize = 10;
  a.stats.stateSize = 100;
  return a;
}

std::string stateOf(const std::string& uid, int subtask, int64_t id) {
  return uid + "-" + std::to_string(subtask) + "@" + std::to_string(id);
}

// Acknowledges checkpoint `id` from every subtask: the source and the maps carry operator state
// (the maps also a keyed handle with a file in `files_base`, when given); the sinks none.
void ackAll(CheckpointCoordinator& coordinator, int attempt, int64_t id,
            const std::optional<fs::path>& files_base = std::nullopt) {
  for (const auto& task : tasks()) {
    auto a = ack(attempt, id, task.chain_id, task.subtask);
    thrift::VertexSubtaskState vertex;
    vertex.uid = task.chain_id == 0 ? "source" : "map";
    vertex.operatorState = stateOf(vertex.uid, task.subtask, id);
    if (task.chain_id == 1 && files_base) {
      thrift::KeyedStateHandle handle;
      handle.keyGroupStart = task.subtask * 64;
      handle.keyGroupEnd = task.subtask * 64 + 63;
      handle.kind = thrift::KeyedStateKind::HEAP_FULL;
      handle.privateFiles.push_back(writeStateFile(
          *files_base, "chk-" + std::to_string(id) + "/map-" + std::to_string(task.subtask),
          "keyed state " + std::to_string(task.subtask)));
      vertex.keyed.push_back(handle);
    }
    a.vertices.push_back(vertex);
    REQUIRE(coordinator.acknowledge(a).isOk());
  }
}

// Takes checkpoints until `n` have completed, acknowledging each trigger (every trigger so far
// completed).
void completeCheckpoints(CheckpointCoordinator& coordinator, Recorder& recorder, int attempt,
                         std::size_t n) {
  for (std::size_t i = recorder.completed().size() + 1; i <= n; ++i) {
    const auto t = recorder.waitTrigger(i);
    ackAll(coordinator, attempt, t.trigger.checkpointId);
    recorder.waitCompleted(i);
  }
}

std::optional<thrift::CheckpointInfo> findInfo(const std::vector<thrift::CheckpointInfo>& history,
                                               int64_t id) {
  for (const auto& info : history) {
    if (info.id == id) return info;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("checkpoint coordinator: periodic checkpoints trigger at the sources with rising ids") {
  TempDir tmp;
  Recorder recorder;
  auto coordinator = make(options(tmp), recorder);
  const auto started = Clock::now();
  coordinator->startAttempt(0, tasks());

  const auto first = recorder.waitTrigger(1);
  CHECK(first.at - started >= 30ms);
  CHECK(first.attempt == 0);
  CHECK(first.trigger.checkpointId == 1);
  CHECK_FALSE(first.trigger.savepoint);
  CHECK(first.trigger.targetDir == storage(tmp).checkpointDir(kJob, 1).string());
  CHECK(fs::is_directory(first.trigger.targetDir));
  REQUIRE(first.subtasks.size() == 1);
  CHECK(first.subtasks[0].chainId == 0);
  CHECK(first.subtasks[0].subtask == 0);

  int64_t previous = 0;
  for (std::size_t n = 1; n <= 3; ++n) {
    const auto t = recorder.waitTrigger(n);
    CHECK(t.trigger.checkpointId > previous);
    previous = t.trigger.checkpointId;
    ackAll(*coordinator, 0, t.trigger.checkpointId);
  }
  recorder.waitCompleted(3);
  CHECK(recorder.completed() == std::vector<std::pair<int, int64_t>>{{0, 1}, {0, 2}, {0, 3}});
  CHECK(coordinator->lastCompletedId() >= 3);
}

TEST_CASE("checkpoint coordinator: completion writes metadata from the acknowledgements") {
  TempDir tmp;
  Recorder recorder;
  auto coordinator = make(options(tmp), recorder);
  coordinator->startAttempt(0, tasks());
  const auto t = recorder.waitTrigger(1);
  CHECK(coordinator->lastCompletedId() == 0);
  ackAll(*coordinator, 0, 1, storage(tmp).jobDir(kJob));
  recorder.waitCompleted(1);
  CHECK(recorder.completed().front() == std::pair<int, int64_t>{0, 1});
  CHECK(coordinator->lastCompletedId() == 1);

  auto md = storage(tmp).loadMetadata(kJob, 1, /*verify_files=*/true);
  REQUIRE_MESSAGE(md.isOk(), md.status().message());
  CHECK(md->formatVersion == weir::engine::kCheckpointFormatVersion);
  CHECK(md->jobId == kJob);
  CHECK(md->checkpointId == 1);
  CHECK(md->timestampMs == t.trigger.timestampMs);
  CHECK_FALSE(md->isSavepoint);
  CHECK(md->stateBackend == "heap");
  REQUIRE(md->operators.size() == 3);

  const auto& source = md->operators[0];
  CHECK(source.uid == "source");
  CHECK(source.parallelism == 1);
  CHECK(source.maxParallelism == 128);
  REQUIRE(source.subtasks.size() == 1);
  CHECK(source.subtasks[0].operatorState == stateOf("source", 0, 1));

  const auto& map = md->operators[1];
  CHECK(map.uid == "map");
  REQUIRE(map.subtasks.size() == 2);
  for (int i = 0; i < 2; ++i) {
    CHECK(map.subtasks[i].subtask == i);
    CHECK(map.subtasks[i].operatorState == stateOf("map", i, 1));
    REQUIRE(map.subtasks[i].keyed.size() == 1);
    CHECK(map.subtasks[i].keyed[0].keyGroupStart == i * 64);
    REQUIRE(map.subtasks[i].keyed[0].privateFiles.size() == 1);
    CHECK(map.subtasks[i].keyed[0].privateFiles[0].path == "chk-1/map-" + std::to_string(i));
  }

  // No acknowledgement mentions the sink: its subtasks are there, with empty state.
  const auto& sink = md->operators[2];
  CHECK(sink.uid == "sink");
  CHECK(sink.parallelism == 2);
  REQUIRE(sink.subtasks.size() == 2);
  for (int i = 0; i < 2; ++i) {
    CHECK(sink.subtasks[i].subtask == i);
    CHECK(sink.subtasks[i].operatorState.empty());
    CHECK(sink.subtasks[i].keyed.empty());
  }
}

TEST_CASE("checkpoint coordinator: only num_retained checkpoints are kept") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.num_retained = 2;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  completeCheckpoints(*coordinator, recorder, 0, 4);
  coordinator->stopAttempt("test over");

  const auto store = storage(tmp);
  CHECK_FALSE(fs::exists(store.checkpointDir(kJob, 1)));
  CHECK_FALSE(fs::exists(store.checkpointDir(kJob, 2)));
  CHECK(fs::exists(store.checkpointDir(kJob, 3) / "_metadata"));
  CHECK(fs::exists(store.checkpointDir(kJob, 4) / "_metadata"));
  auto completed = store.listCompleted(kJob);
  REQUIRE(completed.isOk());
  REQUIRE(completed->size() == 2);
  CHECK((*completed)[0].id == 4);
  CHECK((*completed)[1].id == 3);
}

TEST_CASE("checkpoint coordinator: an expired checkpoint is aborted and its directory removed") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.timeout = 100ms;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  const auto t = recorder.waitTrigger(1);
  REQUIRE(fs::is_directory(t.trigger.targetDir));
  // Only part of the subtasks acknowledge.
  REQUIRE(coordinator->acknowledge(ack(0, 1, 0, 0)).isOk());
  recorder.waitAborted(1);
  CHECK(weir::engine::unixMillis() - t.trigger.timestampMs >= 99);
  CHECK(recorder.aborted().front() == std::pair<int, int64_t>{0, 1});
  CHECK_FALSE(fs::exists(t.trigger.targetDir));
  CHECK(recorder.failures().empty());

  const auto info = findInfo(coordinator->history(), 1);
  REQUIRE(info);
  CHECK(info->status == thrift::CheckpointStatus::FAILED);
  CHECK(info->failure.find("timeout") != std::string::npos);
  CHECK(info->acknowledged == 1);
  CHECK(info->total == 3);
  // A late acknowledgement changes nothing.
  CHECK(coordinator->acknowledge(ack(0, 1, 1, 0)).isOk());
  CHECK(coordinator->lastCompletedId() == 0);
}

TEST_CASE("checkpoint coordinator: a decline aborts the checkpoint at once") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 1h;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  auto savepoint = coordinator->triggerSavepoint(tmp.path() + "/savepoints", false, false);
  const auto s = recorder.waitTrigger(1);
  coordinator->decline(0, s.trigger.checkpointId, 1, 1, "disk full");
  REQUIRE(savepoint.wait_for(kWait) == std::future_status::ready);
  REQUIRE_FALSE(savepoint.get().isOk());
  CHECK(savepoint.get().status().message().find("disk full") != std::string::npos);
  recorder.waitAborted(1);
  CHECK_FALSE(fs::exists(s.trigger.targetDir));
  const auto info = findInfo(coordinator->history(), s.trigger.checkpointId);
  REQUIRE(info);
  CHECK(info->status == thrift::CheckpointStatus::FAILED);
  CHECK(info->savepoint);
  CHECK(info->failure.find("disk full") != std::string::npos);
  CHECK(info->failure.find("declined") != std::string::npos);
}

TEST_CASE("checkpoint coordinator: with 0 tolerable failures the first failure fails the job") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.tolerable_failed_checkpoints = 0;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  const auto t = recorder.waitTrigger(1);
  coordinator->decline(0, t.trigger.checkpointId, 0, 0, "source not ready");
  recorder.waitFailures(1);
  const auto reason = recorder.failures().front();
  CHECK(reason.find("source not ready") != std::string::npos);
  CHECK(reason.find("tolerable") != std::string::npos);
  CHECK(recorder.aborted().size() == 1);
}

TEST_CASE("checkpoint coordinator: with 2 tolerable failures the third in a row fails the job") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.tolerable_failed_checkpoints = 2;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  std::size_t n = 0;
  auto declineNext = [&](const std::string& why) {
    const auto t = recorder.waitTrigger(++n);
    coordinator->decline(0, t.trigger.checkpointId, 1, 0, why);
    return t.trigger.checkpointId;
  };
  declineNext("first");
  declineNext("second");
  // A completed checkpoint resets the count.
  const auto t = recorder.waitTrigger(++n);
  ackAll(*coordinator, 0, t.trigger.checkpointId);
  recorder.waitCompleted(1);
  declineNext("third");
  declineNext("fourth");
  // The trigger after the fourth failure is only taken once fail_job would have been called.
  recorder.waitTrigger(n + 1);
  CHECK(recorder.failures().empty());
  const int64_t last = declineNext("fifth");
  recorder.waitFailures(1);
  const auto reason = recorder.failures().front();
  CHECK(reason.find("fifth") != std::string::npos);
  CHECK(reason.find("checkpoint " + std::to_string(last)) != std::string::npos);
  CHECK(recorder.aborted().size() == 5);
}

TEST_CASE("checkpoint coordinator: acknowledgements of an earlier attempt are ignored") {
  TempDir tmp;
  Recorder recorder;
  auto coordinator = make(options(tmp), recorder);
  coordinator->startAttempt(0, tasks());
  const auto old = recorder.waitTrigger(1);
  REQUIRE(old.attempt == 0);
  coordinator->startAttempt(1, tasks());
  // The old attempt's checkpoint is gone: its acknowledgements are ignored.
  ackAll(*coordinator, 0, old.trigger.checkpointId);

  const auto t = recorder.waitTrigger(2);
  CHECK(t.attempt == 1);
  CHECK(t.trigger.checkpointId > old.trigger.checkpointId);
  // Acknowledgements naming the old attempt, or an unknown subtask, do not count.
  ackAll(*coordinator, 0, t.trigger.checkpointId);
  CHECK(coordinator->acknowledge(ack(1, t.trigger.checkpointId, 7, 0)).isOk());
  auto other_job = ack(1, t.trigger.checkpointId, 0, 0);
  other_job.jobId = "another-job";
  CHECK_FALSE(coordinator->acknowledge(other_job).isOk());
  CHECK(recorder.completed().empty());
  // Duplicates are harmless.
  ackAll(*coordinator, 1, t.trigger.checkpointId);
  ackAll(*coordinator, 1, t.trigger.checkpointId);
  recorder.waitCompleted(1);
  CHECK(recorder.completed().front() == std::pair<int, int64_t>{1, t.trigger.checkpointId});
  // The old attempt's checkpoint was aborted without a notification (its tasks are gone).
  CHECK(recorder.aborted().empty());
  const auto info = findInfo(coordinator->history(), old.trigger.checkpointId);
  REQUIRE(info);
  CHECK(info->status == thrift::CheckpointStatus::FAILED);
  CHECK(info->failure.find("superseded") != std::string::npos);
}

TEST_CASE("checkpoint coordinator: end of data of every subtask triggers a checkpoint at once") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 1h;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  coordinator->endOfData(0, 0, 0);
  coordinator->endOfData(0, 1, 0);
  coordinator->endOfData(5, 1, 1);  // another attempt: ignored
  coordinator->endOfData(0, 1, 0);  // again: ignored
  CHECK(recorder.triggerCount() == 0);
  coordinator->endOfData(0, 1, 1);
  const auto t = recorder.waitTrigger(1);
  CHECK(t.trigger.checkpointId == 1);
  REQUIRE(t.subtasks.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(t.subtasks[i].chainId == tasks()[i].chain_id);
    CHECK(t.subtasks[i].subtask == tasks()[i].subtask);
  }
  ackAll(*coordinator, 0, 1);
  recorder.waitCompleted(1);
  CHECK(coordinator->lastCompletedId() == 1);
}

TEST_CASE("checkpoint coordinator: nothing is triggered once the job's last checkpoint completed") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 20ms;
  o.settings.min_pause = 0ms;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  for (const auto& task : tasks())
    coordinator->endOfData(0, task.chain_id, task.subtask);
  const auto last = recorder.waitTrigger(1);
  CHECK(last.trigger.stop);
  ackAll(*coordinator, 0, last.trigger.checkpointId);
  recorder.waitCompleted(1);
  // The subtasks are finishing: a trigger now would find them gone and fail the job.
  auto savepoint = coordinator->triggerSavepoint("file://" + tmp.file("sp"),
                                                 /*stop=*/false, /*drain=*/false);
  REQUIRE(savepoint.wait_for(kWait) == std::future_status::ready);
  REQUIRE_FALSE(savepoint.get().isOk());
  CHECK(savepoint.get().status().message().find("is finishing") != std::string::npos);
  CHECK(recorder.noTriggerAfter(1, 10 * o.settings.interval));
  // A new attempt (a restart from that checkpoint) triggers again.
  coordinator->startAttempt(1, tasks());
  CHECK(recorder.waitTrigger(2).attempt == 1);
}

TEST_CASE("checkpoint coordinator: end of data waits for the checkpoint in flight") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 30ms;
  o.settings.min_pause = 1h;  // no periodic checkpoint after the first
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  const auto first = recorder.waitTrigger(1);
  for (const auto& task : tasks())
    coordinator->endOfData(0, task.chain_id, task.subtask);
  // No barrier of the checkpoint in flight reaches a subtask whose input ended: the two that are
  // not sources are triggered for it directly, one by one.
  for (std::size_t i = 2; i <= 3; ++i) {
    const auto late = recorder.waitTrigger(i);
    CHECK(late.trigger.checkpointId == first.trigger.checkpointId);
    REQUIRE(late.subtasks.size() == 1);
    CHECK(late.subtasks[0].chainId == 1);
  }
  CHECK(recorder.triggerCount() == 3);
  ackAll(*coordinator, 0, first.trigger.checkpointId);
  const auto final_trigger = recorder.waitTrigger(4);
  CHECK(final_trigger.trigger.checkpointId == first.trigger.checkpointId + 1);
  CHECK(final_trigger.subtasks.size() == 3);
  recorder.waitCompleted(1);
}

TEST_CASE("checkpoint coordinator: a savepoint completes into the target directory") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 1h;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  const std::string target = tmp.path() + "/savepoints";
  auto future = coordinator->triggerSavepoint("file://" + target, /*stop=*/true, /*drain=*/true);
  const auto t = recorder.waitTrigger(1);
  CHECK(t.trigger.savepoint);
  CHECK(t.trigger.stop);
  CHECK(t.trigger.drain);
  CHECK(t.trigger.targetDir.rfind(target + "/savepoint-", 0) == 0);
  CHECK(t.subtasks.size() == 1);
  ackAll(*coordinator, 0, t.trigger.checkpointId);
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  const auto result = future.get();
  REQUIRE_MESSAGE(result.isOk(), result.status().message());
  CHECK(*result == t.trigger.targetDir);

  auto md = weir::engine::loadSavepoint(*result, /*verify_files=*/true);
  REQUIRE_MESSAGE(md.isOk(), md.status().message());
  CHECK(md->isSavepoint);
  CHECK(md->checkpointId == t.trigger.checkpointId);
  REQUIRE(md->operators.size() == 3);
  CHECK(md->operators[1].subtasks[1].operatorState == stateOf("map", 1, t.trigger.checkpointId));
  // Tasks hear of completed savepoints as of checkpoints.
  recorder.waitCompleted(1);
  CHECK(recorder.completed().front().second == t.trigger.checkpointId);
  // A savepoint is not a checkpoint to restore from.
  CHECK(coordinator->lastCompletedId() == 0);
  const auto info = findInfo(coordinator->history(), t.trigger.checkpointId);
  REQUIRE(info);
  CHECK(info->savepoint);
  CHECK(info->status == thrift::CheckpointStatus::COMPLETED);
  CHECK(info->path == t.trigger.targetDir);
}

TEST_CASE("checkpoint coordinator: savepoints go to state.savepoints.dir by default") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 1h;
  o.settings.savepoints_dir = tmp.path() + "/default-savepoints";
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  auto future = coordinator->triggerSavepoint("", false, false);
  const auto t = recorder.waitTrigger(1);
  CHECK(t.trigger.targetDir.rfind(o.settings.savepoints_dir + "/savepoint-", 0) == 0);
  CHECK_FALSE(t.trigger.stop);
  ackAll(*coordinator, 0, t.trigger.checkpointId);
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  CHECK(future.get().isOk());
}

TEST_CASE("checkpoint coordinator: a savepoint without any directory is an error") {
  TempDir tmp;
  Recorder recorder;
  auto coordinator = make(options(tmp), recorder);
  coordinator->startAttempt(0, tasks());
  auto future = coordinator->triggerSavepoint("", false, false);
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  REQUIRE_FALSE(future.get().isOk());
  CHECK(future.get().status().message().find("savepoint") != std::string::npos);
}

TEST_CASE("checkpoint coordinator: latestForRestore skips a corrupt checkpoint") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.num_retained = 3;
  auto coordinator = make(o, recorder);
  {
    auto none = coordinator->latestForRestore();
    REQUIRE(none.isOk());
    CHECK_FALSE(none->has_value());
  }
  coordinator->startAttempt(0, tasks());
  completeCheckpoints(*coordinator, recorder, 0, 2);
  coordinator->stopAttempt("test over");
  {
    auto latest = coordinator->latestForRestore();
    REQUIRE(latest.isOk());
    REQUIRE(latest->has_value());
    CHECK((*latest)->id == 2);
  }
  const fs::path metadata = storage(tmp).checkpointDir(kJob, 2) / "_metadata";
  {
    std::fstream file(metadata, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(file.good());
    file.seekg(5);
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5a);
    file.seekp(5);
    file.write(&byte, 1);
  }
  auto latest = coordinator->latestForRestore();
  REQUIRE(latest.isOk());
  REQUIRE(latest->has_value());
  CHECK((*latest)->id == 1);
  CHECK((*latest)->metadata.checkpointId == 1);
  CHECK((*latest)->dir == storage(tmp).checkpointDir(kJob, 1));
}

TEST_CASE("checkpoint coordinator: the next trigger waits min_pause after a completion") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 20ms;
  o.settings.min_pause = 200ms;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  const auto first = recorder.waitTrigger(1);
  const auto before_last_ack = Clock::now();
  ackAll(*coordinator, 0, first.trigger.checkpointId);
  const auto second = recorder.waitTrigger(2);
  CHECK(second.at - before_last_ack >= 200ms);
  recorder.waitCompleted(1);
}

TEST_CASE("checkpoint coordinator: history shows completed and failed checkpoints with sizes") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.num_retained = 2;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  const auto first = recorder.waitTrigger(1);
  ackAll(*coordinator, 0, first.trigger.checkpointId);
  recorder.waitCompleted(1);
  const auto second = recorder.waitTrigger(2);
  REQUIRE(coordinator->acknowledge(ack(0, second.trigger.checkpointId, 0, 0)).isOk());
  coordinator->decline(0, second.trigger.checkpointId, 1, 0, "snapshot failed");
  recorder.waitAborted(1);
  coordinator->markRestoredFrom(first.trigger.checkpointId);

  const auto history = coordinator->history();
  for (std::size_t i = 1; i < history.size(); ++i)
    CHECK(history[i - 1].id > history[i].id);
  const auto completed = findInfo(history, first.trigger.checkpointId);
  REQUIRE(completed);
  CHECK(completed->status == thrift::CheckpointStatus::COMPLETED);
  CHECK_FALSE(completed->savepoint);
  CHECK(completed->acknowledged == 3);
  CHECK(completed->total == 3);
  CHECK(completed->checkpointedSize == 30);
  CHECK(completed->stateSize == 300);
  CHECK(completed->durationMs >= 0);
  CHECK(completed->triggeredAtMs == first.trigger.timestampMs);
  CHECK(completed->path == first.trigger.targetDir);
  CHECK(completed->restoredFrom);

  const auto failed = findInfo(history, second.trigger.checkpointId);
  REQUIRE(failed);
  CHECK(failed->status == thrift::CheckpointStatus::FAILED);
  CHECK(failed->acknowledged == 1);
  CHECK(failed->total == 3);
  CHECK(failed->checkpointedSize == 10);
  CHECK(failed->stateSize == 100);
  CHECK(failed->failure.find("snapshot failed") != std::string::npos);
  CHECK_FALSE(failed->restoredFrom);

  // A checkpoint in progress is listed first.
  const auto third = recorder.waitTrigger(3);
  const auto later = coordinator->history();
  REQUIRE_FALSE(later.empty());
  CHECK(later.front().id == third.trigger.checkpointId);
  CHECK(later.front().status == thrift::CheckpointStatus::IN_PROGRESS);
}

TEST_CASE("checkpoint coordinator: a new coordinator continues after the checkpoints it finds") {
  TempDir tmp;
  auto o = options(tmp);
  o.settings.num_retained = 2;
  {
    Recorder recorder;
    auto coordinator = make(o, recorder);
    coordinator->startAttempt(0, tasks());
    completeCheckpoints(*coordinator, recorder, 0, 2);
  }
  Recorder recorder;
  auto coordinator = make(o, recorder);
  CHECK(coordinator->lastCompletedId() == 2);
  const auto info = findInfo(coordinator->history(), 2);
  REQUIRE(info);
  CHECK(info->status == thrift::CheckpointStatus::COMPLETED);
  auto latest = coordinator->latestForRestore();
  REQUIRE(latest.isOk());
  REQUIRE(latest->has_value());
  CHECK((*latest)->id == 2);
  coordinator->startAttempt(0, tasks());
  const auto t = recorder.waitTrigger(1);
  CHECK(t.trigger.checkpointId > 2);
}

TEST_CASE("checkpoint coordinator: stopAttempt aborts silently and pauses triggering") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 1h;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  auto savepoint = coordinator->triggerSavepoint(tmp.path() + "/savepoints", false, false);
  const auto t = recorder.waitTrigger(1);
  coordinator->stopAttempt("task failed");
  REQUIRE(savepoint.wait_for(kWait) == std::future_status::ready);
  REQUIRE_FALSE(savepoint.get().isOk());
  CHECK(savepoint.get().status().message().find("task failed") != std::string::npos);
  CHECK(recorder.aborted().empty());
  CHECK(recorder.failures().empty());
  CHECK_FALSE(fs::exists(t.trigger.targetDir));
  // Not running: savepoints are refused at once.
  auto refused = coordinator->triggerSavepoint(tmp.path() + "/savepoints", false, false);
  REQUIRE(refused.wait_for(kWait) == std::future_status::ready);
  CHECK_FALSE(refused.get().isOk());
}

TEST_CASE("checkpoint coordinator: destruction resolves a pending savepoint with an error") {
  TempDir tmp;
  Recorder recorder;
  auto o = options(tmp);
  o.settings.interval = 1h;
  auto coordinator = make(o, recorder);
  coordinator->startAttempt(0, tasks());
  auto savepoint = coordinator->triggerSavepoint(tmp.path() + "/savepoints", false, false);
  const auto t = recorder.waitTrigger(1);
  coordinator.reset();
  REQUIRE(savepoint.wait_for(kWait) == std::future_status::ready);
  CHECK_FALSE(savepoint.get().isOk());
  CHECK_FALSE(fs::exists(t.trigger.targetDir));
  CHECK(recorder.aborted().empty());
}
