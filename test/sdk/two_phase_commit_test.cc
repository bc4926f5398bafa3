// Two-phase-commit sinks and the exactly-once file sink, driven through real chains in-process:
// checkpoints, their completion and abortion, crashes and restores, the path without
// checkpointing; and the checkpoint hooks of user functions.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <algorithm>
#include <limits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "operator_harness.h"
#include "weir/weir.h"

namespace {

namespace fs = std::filesystem;

using weir::ChainInstance;
using weir::ChainRestore;
using weir::ChainSnapshot;
using weir::CheckpointOptions;
using weir::ListStateDescriptor;
using weir::RuntimeContext;

// A fresh temporary directory, removed when destroyed.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "weir-2pc-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string out() const { return path_ + "/out"; }

 private:
  std::string path_;
};

// Emits subtask, subtask + parallelism, ... below `limit`, one record per poll; keeps its next
// value in operator state, brought up to date by its snapshotState hook.
struct SteppingSource {
  explicit SteppingSource(std::int64_t limit) : limit(limit) {}
  void open(const RuntimeContext& ctx) {
    step = ctx.parallelism();
    next = ctx.subtaskIndex();
    position = &ctx.getOperatorListState(ListStateDescriptor<std::int64_t>("position"));
    if (!position->get().empty()) next = position->get().front();
  }
  weir::SourceStatus pollNext(weir::Collector<std::int64_t>& out) {
    if (next >= limit) return weir::SourceStatus::kEndOfInput;
    out.collect(next);
    next += step;
    return next >= limit ? weir::SourceStatus::kEndOfInput : weir::SourceStatus::kMoreAvailable;
  }
  void snapshotState(const CheckpointOptions&) { position->update({next}); }

  std::int64_t limit;
  std::int64_t step = 1;
  std::int64_t next = 0;
  weir::ListState<std::int64_t>* position = nullptr;
};

// What the checkpoint hooks of a map function saw.
struct HookLog {
  std::vector<std::int64_t> snapshots;
  std::vector<bool> savepoints;
  std::vector<std::int64_t> completed;
  std::vector<std::int64_t> aborted;
};

struct ObservedMap {
  std::int64_t map(const std::int64_t& v) const { return v; }
  void snapshotState(const CheckpointOptions& options) {
    log->snapshots.push_back(options.checkpoint_id);
    log->savepoints.push_back(options.savepoint);
  }
  void notifyCheckpointComplete(std::int64_t id) { log->completed.push_back(id); }
  void notifyCheckpointAborted(std::int64_t id) { log->aborted.push_back(id); }
  std::shared_ptr<HookLog> log;
};

struct JobOptions {
  std::string dir;
  std::int64_t limit = 20;
  bool checkpointing = true;
  int subtask = 0;
  int parallelism = 1;
  std::shared_ptr<HookLog> log;  // set: a map with checkpoint hooks runs before the sink
};

JobOptions options(std::string dir, std::int64_t limit, bool checkpointing = true, int subtask = 0,
                   int parallelism = 1, std::shared_ptr<HookLog> log = nullptr) {
  JobOptions o;
  o.dir = std::move(dir);
  o.limit = limit;
  o.checkpointing = checkpointing;
  o.subtask = subtask;
  o.parallelism = parallelism;
  o.log = std::move(log);
  return o;
}

// The job source -> [map] -> exactly-once file sink as one chain of one subtask.
class Job {
 public:
  explicit Job(const JobOptions& options) {
    auto program = weir::makeProgram([&](weir::JobBuilder& job) {
      auto stream = job.addSource<std::int64_t>(SteppingSource(options.limit), "source");
      if (options.log) stream = stream.map(ObservedMap{options.log});
      stream.addSink(weir::ExactlyOnceFileSink<std::int64_t>(options.dir), "files");
    });
    REQUIRE_MESSAGE(program.isOk(), program.status().message());
    program_ = std::move(*program);
    weir::ChainSpec spec;
    spec.job_name = "2pc";
    spec.subtask_index = options.subtask;
    spec.parallelism = options.parallelism;
    spec.checkpointing = options.checkpointing;
    for (const auto& v : program_->graph().vertices) {
      spec.vertex_ids.push_back(v.id);
      spec.max_parallelism.push_back(128);
      spec.vertex_uids.push_back(v.uid);
    }
    REQUIRE(program_->createChain(spec, env_, chain_).isOk());
  }

  ChainInstance& chain() { return *chain_; }
  // Polls the source `n` times (or until its end).
  void poll(int n) {
    for (int i = 0; i < n && !ended_; ++i) {
      weir::SourceStatus status = weir::SourceStatus::kMoreAvailable;
      std::size_t emitted = 0;
      REQUIRE(chain_->pollSource(std::numeric_limits<std::size_t>::max(), status, emitted).isOk());
      ended_ = status == weir::SourceStatus::kEndOfInput;
    }
  }
  void drain() { poll(1 << 20); }
  ChainSnapshot snapshot(std::int64_t id) {
    ChainSnapshot snap;
    CheckpointOptions options;
    options.checkpoint_id = id;
    const weir::Status s = chain_->snapshotState(options, snap);
    REQUIRE_MESSAGE(s.isOk(), s.message());
    return snap;
  }
  void complete(std::int64_t id) {
    const weir::Status s = chain_->notifyCheckpointComplete(id);
    REQUIRE_MESSAGE(s.isOk(), s.message());
  }
  // Destroys the chain without closing it, as a crashed process would.
  void crash() { chain_.reset(); }

 private:
  weir::test::ManualEnvironment env_;
  std::unique_ptr<weir::JobProgram> program_;
  std::unique_ptr<ChainInstance> chain_;
  bool ended_ = false;
};

ChainRestore restoreFrom(const ChainSnapshot& snap, std::int64_t checkpoint_id) {
  ChainRestore restore;
  restore.checkpoint_id = checkpoint_id;
  for (const auto& v : snap.vertices) {
    std::vector<std::string> key_groups = v.key_groups;
    if (v.key_groups_writer != nullptr) {
      const weir::Status s = v.key_groups_writer->write(key_groups);
      REQUIRE_MESSAGE(s.isOk(), s.message());
    }
    restore.vertices.push_back({v.vertex_id, v.operator_state, v.key_group_start, key_groups});
  }
  return restore;
}

// Names of the files in `dir`: committed ones, or the hidden in-progress ones.
std::vector<std::string> files(const std::string& dir, bool hidden = false) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if ((name[0] == '.') == hidden) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every line of every committed file, as numbers, sorted.
std::vector<std::int64_t> committed(const std::string& dir) {
  std::vector<std::int64_t> out;
  for (const std::string& name : files(dir)) {
    std::ifstream in(dir + "/" + name);
    std::string line;
    while (std::getline(in, line))
      out.push_back(std::stoll(line));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::int64_t> range(std::int64_t end) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(end));
  std::iota(out.begin(), out.end(), 0);
  return out;
}

}  // namespace

TEST_CASE("two-phase commit: records are committed only when their checkpoint completes") {
  TempDir tmp;
  Job job(options(tmp.out(), 12));
  REQUIRE(job.chain().open().isOk());
  job.poll(5);
  job.snapshot(1);
  CHECK(committed(tmp.out()).empty());
  CHECK(files(tmp.out(), true).size() == 1);  // pre-committed, hidden
  job.complete(1);
  CHECK(committed(tmp.out()) == range(5));
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-1"});

  job.poll(3);
  job.snapshot(2);
  CHECK(committed(tmp.out()) == range(5));
  job.complete(2);
  CHECK(committed(tmp.out()) == range(8));

  // The end of input, then the engine's final checkpoint.
  job.drain();
  REQUIRE(job.chain().endInput().isOk());
  CHECK(committed(tmp.out()) == range(8));
  job.snapshot(3);
  job.complete(3);
  REQUIRE(job.chain().close().isOk());
  CHECK(committed(tmp.out()) == range(12));
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-1", "part-0-2", "part-0-3"});
  CHECK(files(tmp.out(), true).empty());
}

TEST_CASE("two-phase commit: after a crash the restored chain commits the pending transaction") {
  TempDir tmp;
  ChainSnapshot snap2;
  {
    Job job(options(tmp.out(), 20));
    REQUIRE(job.chain().open().isOk());
    job.poll(5);
    job.snapshot(1);
    job.complete(1);
    job.poll(5);
    snap2 = job.snapshot(2);
    job.poll(3);  // after the checkpoint: replayed after the restore
    job.crash();  // checkpoint 2 completes, but its notification never arrives
  }
  CHECK(committed(tmp.out()) == range(5));
  CHECK(files(tmp.out(), true).size() == 2);  // pre-committed for 2, and the current one

  Job job(options(tmp.out(), 20));
  REQUIRE(job.chain().restoreState(restoreFrom(snap2, 2)).isOk());
  REQUIRE(job.chain().open().isOk());
  CHECK(committed(tmp.out()) == range(10));
  CHECK(files(tmp.out(), true).empty());  // the transaction current at 2 was aborted
  job.drain();
  REQUIRE(job.chain().endInput().isOk());
  job.snapshot(3);
  job.complete(3);
  REQUIRE(job.chain().close().isOk());
  CHECK(committed(tmp.out()) == range(20));  // every record exactly once
  CHECK(files(tmp.out(), true).empty());
}

TEST_CASE("two-phase commit: a transaction of an aborted checkpoint commits with the next") {
  TempDir tmp;
  Job job(options(tmp.out(), 20));
  REQUIRE(job.chain().open().isOk());
  job.poll(3);
  job.snapshot(1);
  REQUIRE(job.chain().notifyCheckpointAborted(1).isOk());
  CHECK(committed(tmp.out()).empty());
  job.poll(3);
  job.snapshot(2);
  job.poll(2);
  job.snapshot(3);
  job.complete(2);  // commits 1 and 2, not 3
  CHECK(committed(tmp.out()) == range(6));
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-1", "part-0-2"});
  job.complete(3);
  CHECK(committed(tmp.out()) == range(8));
  job.poll(2);
  CHECK(files(tmp.out(), true).size() == 1);
  REQUIRE(job.chain().close().isOk());  // cancelled: the current transaction is dropped
  CHECK(committed(tmp.out()) == range(8));
  CHECK(files(tmp.out(), true).empty());
}

TEST_CASE("two-phase commit: without checkpointing the output commits at the end of input") {
  TempDir tmp;
  Job job(options(tmp.out(), 7, false));
  REQUIRE(job.chain().open().isOk());
  job.drain();
  CHECK(committed(tmp.out()).empty());
  REQUIRE(job.chain().endInput().isOk());
  CHECK(committed(tmp.out()) == range(7));
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-final"});
  REQUIRE(job.chain().close().isOk());
  CHECK(committed(tmp.out()) == range(7));
  CHECK(files(tmp.out(), true).empty());

  // A second run into the same directory keeps the first run's file.
  Job again(options(tmp.out(), 3, false));
  REQUIRE(again.chain().open().isOk());
  again.drain();
  REQUIRE(again.chain().endInput().isOk());
  REQUIRE(again.chain().close().isOk());
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-final", "part-0-final-1"});
}

TEST_CASE("two-phase commit: a longer in-progress file is cut to its pre-committed size") {
  TempDir tmp;
  ChainSnapshot snap1;
  {
    Job job(options(tmp.out(), 20));
    REQUIRE(job.chain().open().isOk());
    job.poll(4);
    snap1 = job.snapshot(1);
    job.crash();
  }
  const std::vector<std::string> in_progress = files(tmp.out(), true);
  REQUIRE(in_progress.size() == 1);  // the current transaction has no records, hence no file
  {
    std::ofstream out(tmp.out() + "/" + in_progress[0], std::ios::app);
    out << "999\n1000\n";
  }
  Job job(options(tmp.out(), 20));
  REQUIRE(job.chain().restoreState(restoreFrom(snap1, 1)).isOk());
  REQUIRE(job.chain().open().isOk());
  CHECK(committed(tmp.out()) == range(4));
  CHECK(files(tmp.out(), true).empty());
  REQUIRE(job.chain().close().isOk());
}

TEST_CASE("two-phase commit: committing again after recovery is harmless, a lost file is not") {
  TempDir tmp;
  ChainSnapshot snap1;
  {
    Job job(options(tmp.out(), 20));
    REQUIRE(job.chain().open().isOk());
    job.poll(6);
    snap1 = job.snapshot(1);
    job.complete(1);  // committed; the checkpoint still lists it as pending
    job.crash();
  }
  CHECK(committed(tmp.out()) == range(6));
  {
    Job job(options(tmp.out(), 20));
    REQUIRE(job.chain().restoreState(restoreFrom(snap1, 1)).isOk());
    REQUIRE(job.chain().open().isOk());
    CHECK(committed(tmp.out()) == range(6));
    CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-1"});
    job.crash();
  }
  // The committed file vanished: restoring again reports the loss instead of ignoring it.
  fs::remove(tmp.out() + "/part-0-1");
  Job job(options(tmp.out(), 20));
  REQUIRE(job.chain().restoreState(restoreFrom(snap1, 1)).isOk());
  const weir::Status s = job.chain().open();
  CHECK_FALSE(s.isOk());
  CHECK(s.message().find("data lost") != std::string::npos);
  (void)job.chain().close();
}

TEST_CASE("two-phase commit: direct commit and abort of the exactly-once file sink") {
  TempDir tmp;
  using Sink = weir::ExactlyOnceFileSink<std::string>;
  Sink sink(tmp.out());
  weir::detail::OperatorStateStore store;
  RuntimeContext ctx("job", "files", 0, 1, 128, nullptr);
  ctx.setOperatorStateStore(&store);
  auto& base = static_cast<weir::TwoPhaseCommitSink<std::string, Sink::Txn>&>(sink);
  base.open(ctx);  // no checkpointing

  Sink::Txn empty = sink.beginTransaction();
  sink.preCommit(empty);
  sink.commit(empty);  // no records: no file
  CHECK(files(tmp.out()).empty());

  Sink::Txn txn = sink.beginTransaction();
  sink.invoke(txn, "a");
  sink.invoke(txn, "bc");
  CHECK(txn.size == 5);
  sink.preCommit(txn);
  CHECK(txn.final_path == tmp.out() + "/part-0-final");
  sink.commit(txn);
  sink.commit(txn);  // idempotent
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-final"});

  Sink::Txn dropped = sink.beginTransaction();
  sink.invoke(dropped, "x");
  sink.preCommit(dropped);
  CHECK(files(tmp.out(), true).size() == 1);
  sink.abort(dropped);
  sink.abort(dropped);  // idempotent
  CHECK(files(tmp.out(), true).empty());
  base.close();
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-final"});
}

TEST_CASE("two-phase commit: each subtask writes its own files, and recovers after rescaling") {
  TempDir tmp;
  ChainSnapshot snaps[2];
  for (int subtask = 0; subtask < 2; ++subtask) {
    Job job(options(tmp.out(), 20, true, subtask, 2));
    REQUIRE(job.chain().open().isOk());
    job.poll(3);
    job.snapshot(1);
    job.complete(1);
    job.poll(2);
    snaps[subtask] = job.snapshot(2);
    job.crash();
  }
  CHECK(files(tmp.out()) == std::vector<std::string>{"part-0-1", "part-1-1"});
  CHECK(committed(tmp.out()) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});

  // Restored at parallelism 1: subtask 0 commits what both old subtasks pre-committed for 2.
  const int sink_index = 1;
  std::vector<std::vector<weir::detail::OperatorStateSnapshot>> old_states;
  for (const auto& snap : snaps) {
    old_states.push_back(
        weir::detail::decodeOperatorState(snap.vertices[sink_index].operator_state));
  }
  const auto new_states = weir::detail::redistributeOperatorState(old_states, 1);
  ChainRestore restore;
  restore.checkpoint_id = 2;
  weir::VertexRestore sink_restore;
  sink_restore.vertex_id = snaps[0].vertices[sink_index].vertex_id;
  sink_restore.operator_state = weir::detail::encodeOperatorState(new_states[0]);
  restore.vertices.push_back(sink_restore);
  Job job(options(tmp.out(), 0));
  REQUIRE(job.chain().restoreState(restore).isOk());
  REQUIRE(job.chain().open().isOk());
  CHECK(committed(tmp.out()) == range(10));
  CHECK(files(tmp.out()) ==
        std::vector<std::string>{"part-0-1", "part-0-2", "part-1-1", "part-1-2"});
  CHECK(files(tmp.out(), true).empty());
  REQUIRE(job.chain().close().isOk());
}

TEST_CASE("checkpoint hooks: user functions hear of snapshots, completions and aborts") {
  TempDir tmp;
  auto log = std::make_shared<HookLog>();
  Job job(options(tmp.out(), 20, true, 0, 1, log));
  REQUIRE(job.chain().open().isOk());
  job.poll(2);
  ChainSnapshot snap;
  CheckpointOptions options;
  options.checkpoint_id = 7;
  options.savepoint = true;
  REQUIRE(job.chain().snapshotState(options, snap).isOk());
  REQUIRE(job.chain().notifyCheckpointAborted(7).isOk());
  job.snapshot(8);
  job.complete(8);
  CHECK(log->snapshots == std::vector<std::int64_t>{7, 8});
  CHECK(log->savepoints == std::vector<bool>{true, false});
  CHECK(log->aborted == std::vector<std::int64_t>{7});
  CHECK(log->completed == std::vector<std::int64_t>{8});
  // The source's hook wrote its position into its operator state.
  const auto states = weir::detail::decodeOperatorState(snap.vertices[0].operator_state);
  REQUIRE(states.size() == 1);
  CHECK(states[0].name == "position");
  CHECK(committed(tmp.out()) == range(2));
  REQUIRE(job.chain().close().isOk());
}
