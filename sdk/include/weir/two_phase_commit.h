// Two-phase-commit sinks (Flink's TwoPhaseCommitSinkFunction): output that becomes visible exactly
// once, even when the job fails and resumes from a checkpoint.
//
// A sink derives from TwoPhaseCommitSink<T, Txn> and implements the transaction:
//
//   struct Txn { std::string path; WEIR_SERDE_FIELDS(path) };   // needs a weir::Serde
//   class MySink : public weir::TwoPhaseCommitSink<Event, Txn> {
//     Txn beginTransaction() override { ... }
//     void invoke(Txn& txn, const Event& e) override { ... }   // write into the transaction
//     void preCommit(Txn& txn) override { ... }   // flush: the transaction now survives a crash
//     void commit(const Txn& txn) override { ... }   // make it visible; idempotent
//     void abort(const Txn& txn) override { ... }    // discard it; idempotent
//   };
//   stream.addSink(MySink{...});
//
// How the framework drives it, on the task thread:
//   - records go into the current transaction;
//   - at checkpoint n (snapshotState) the current transaction is pre-committed and becomes pending
//     for n, and a new one begins. The pending transactions and the new current one are the sink's
//     operator state (union list state "weir.2pc-pending", each element naming its subtask);
//   - when checkpoint n completes, every pending transaction of checkpoints <= n is committed, in
//     order. An aborted checkpoint leaves its transaction pending: it commits with a later one;
//   - on restore, at open(), each subtask commits the pending transactions that the checkpoint
//     recorded for it, and aborts the transaction that was current then (records written after the
//     checkpoint are replayed by the sources). After rescaling, the transactions of an old subtask
//     s are recovered by the new subtask s % parallelism;
//   - without checkpointing (RuntimeContext::isCheckpointingEnabled() false) the current
//     transaction is pre-committed and committed when the input ends;
//   - close() without end of input (cancellation, failure) commits nothing and aborts the current
//     transaction, best effort. With checkpointing, after the end of input the engine takes a final
//     checkpoint, which pre-commits the last transaction, and notifies its completion before
//     close().
// The framework methods (open, invoke(value), endInput, snapshotState, notifyCheckpointComplete,
// notifyCheckpointAborted, close) are not virtual and not meant to be redefined; a sink that needs
// its own setup or teardown overrides openSink() and closeSink().
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weir/context.h"
#include "weir/serde.h"
#include "weir/state.h"
#include "weir/task_api.h"

namespace weir {

// What TwoPhaseCommitSink keeps in its operator state: one transaction with its owner.
template <class Txn>
struct TwoPhaseCommitEntry {
  std::int32_t subtask = 0;  // the subtask index that owned it when the checkpoint was taken
  bool pending = false;      // pre-committed for checkpoint_id; false: the current transaction
  std::int64_t checkpoint_id = 0;
  Txn txn{};
  WEIR_SERDE_FIELDS(subtask, pending, checkpoint_id, txn)
};

// The name of the union list state of every TwoPhaseCommitSink.
inline constexpr const char* kTwoPhaseCommitStateName = "weir.2pc-pending";

// preCommitCheckpointId() while a transaction is pre-committed to be committed at once, without a
// checkpoint.
inline constexpr std::int64_t kNoCheckpoint = -1;

template <class T, class Txn>
class TwoPhaseCommitSink {
  static_assert(Serializable<Txn>,
                "TwoPhaseCommitSink<T, Txn>: Txn is kept in operator state and needs a "
                "weir::Serde<Txn> (e.g. a struct with WEIR_SERDE_FIELDS)");

 public:
  using RecordType = T;
  using TransactionType = Txn;
  // Lets the SDK recognise a class derived from a TwoPhaseCommitSink.
  using TwoPhaseCommitBase = TwoPhaseCommitSink;

  virtual ~TwoPhaseCommitSink() = default;

  // ---- implemented by the sink ----
  // A new transaction; called at open() and after every pre-commit.
  virtual Txn beginTransaction() = 0;
  // Writes one record into the transaction.
  virtual void invoke(Txn& txn, const T& value) = 0;
  // Flushes the transaction: once this returns, the transaction must survive a crash and commit
  // later. It may update `txn` (the framework stores it afterwards).
  virtual void preCommit(Txn& txn) = 0;
  // Makes a pre-committed transaction visible. Idempotent: after recovery it may be called again
  // for a transaction that was already committed.
  virtual void commit(const Txn& txn) = 0;
  // Discards a transaction. Idempotent, and also called for transactions restored from a
  // checkpoint, which this instance did not begin.
  virtual void abort(const Txn& txn) = 0;
  // Called first in open(), before any transaction is recovered or begun.
  virtual void openSink(const RuntimeContext& /*ctx*/) {}
  // Called last in close().
  virtual void closeSink() {}

  // ---- the framework (called by the operator; not to be redefined) ----
  void open(const RuntimeContext& ctx) {
    ctx_ = &ctx;
    checkpointing_ = ctx.isCheckpointingEnabled();
    openSink(ctx);
    state_ = &ctx.getUnionListState(ListStateDescriptor<Entry>(kTwoPhaseCommitStateName));
    if (ctx.operatorStateStore().isRestored()) recover(ctx);
    state_->clear();
    current_ = beginTransaction();
    has_current_ = true;
  }

  void invoke(const T& value) {
    if (!has_current_) {
      throw std::logic_error("two-phase-commit sink: record after the end of its input");
    }
    invoke(current_, value);
  }

  void endInput() {
    // With checkpointing the engine's final checkpoint pre-commits the current transaction.
    if (!checkpointing_) commitCurrentDirectly();
  }

  void snapshotState(const CheckpointOptions& options) {
    if (has_current_) {
      pre_commit_checkpoint_ = options.checkpoint_id;
      preCommit(current_);
      pre_commit_checkpoint_ = kNoCheckpoint;
      pending_.push_back({options.checkpoint_id, std::move(current_)});
      current_ = beginTransaction();
    }
    std::vector<Entry> entries;
    entries.reserve(pending_.size() + 1);
    for (const Pending& p : pending_)
      entries.push_back({subtask(), true, p.checkpoint_id, p.txn});
    if (has_current_) entries.push_back({subtask(), false, 0, current_});
    state_->update(entries);
  }

  void notifyCheckpointComplete(std::int64_t checkpoint_id) {
    // Commits in checkpoint order; a failing commit keeps itself and later ones pending.
    auto it = pending_.begin();
    try {
      for (; it != pending_.end() && it->checkpoint_id <= checkpoint_id; ++it)
        commit(it->txn);
    } catch (...) {
      pending_.erase(pending_.begin(), it);
      throw;
    }
    pending_.erase(pending_.begin(), it);
  }

  // The transaction stays pending and commits with the next completed checkpoint.
  void notifyCheckpointAborted(std::int64_t /*checkpoint_id*/) {}

  void close() {
    // Input that did not end (cancellation, failure) is never committed: without checkpoints the
    // output appears only when the input ended; with them, only what a checkpoint covered.
    if (has_current_) {
      has_current_ = false;
      try {
        abort(current_);
      } catch (...) {
        // Best effort: a restore aborts it again, or it is left over.
      }
    }
    closeSink();
  }

  // Pre-committed transactions not committed yet, oldest first (for tests and monitoring).
  std::size_t pendingTransactions() const { return pending_.size(); }

 protected:
  TwoPhaseCommitSink() = default;
  TwoPhaseCommitSink(const TwoPhaseCommitSink&) = default;
  TwoPhaseCommitSink& operator=(const TwoPhaseCommitSink&) = default;
  TwoPhaseCommitSink(TwoPhaseCommitSink&&) = default;
  TwoPhaseCommitSink& operator=(TwoPhaseCommitSink&&) = default;

  // The context of the running instance (from open() until close()).
  const RuntimeContext& runtimeContext() const {
    if (ctx_ == nullptr) throw std::logic_error("two-phase-commit sink: not open");
    return *ctx_;
  }
  // During preCommit(): the checkpoint the transaction is pre-committed for, or kNoCheckpoint when
  // it is committed right after (no checkpointing).
  std::int64_t preCommitCheckpointId() const { return pre_commit_checkpoint_; }

 private:
  using Entry = TwoPhaseCommitEntry<Txn>;
  struct Pending {
    std::int64_t checkpoint_id = 0;
    Txn txn;
  };

  std::int32_t subtask() const { return static_cast<std::int32_t>(ctx_->subtaskIndex()); }

  // Commits the restored pending transactions of this subtask (and of old subtasks mapped to it),
  // in checkpoint order, and aborts the restored current ones.
  void recover(const RuntimeContext& ctx) {
    const int p = ctx.parallelism();
    std::vector<const Entry*> pending;
    std::vector<const Entry*> current;
    for (const Entry& e : state_->get()) {
      if (e.subtask < 0 || e.subtask % p != ctx.subtaskIndex()) continue;
      (e.pending ? pending : current).push_back(&e);
    }
    std::stable_sort(pending.begin(), pending.end(), [](const Entry* a, const Entry* b) {
      return a->checkpoint_id < b->checkpoint_id;
    });
    for (const Entry* e : pending)
      commit(e->txn);
    for (const Entry* e : current)
      abort(e->txn);
  }

  void commitCurrentDirectly() {
    if (!has_current_) return;
    has_current_ = false;
    pre_commit_checkpoint_ = kNoCheckpoint;
    preCommit(current_);
    commit(current_);
  }

  const RuntimeContext* ctx_ = nullptr;
  ListState<Entry>* state_ = nullptr;
  std::vector<Pending> pending_;  // oldest first
  Txn current_{};
  bool has_current_ = false;
  bool checkpointing_ = false;
  std::int64_t pre_commit_checkpoint_ = kNoCheckpoint;
};

// Whether S is a class derived from a TwoPhaseCommitSink.
template <class S>
concept TwoPhaseCommitSinkClass = requires {
  typename S::TwoPhaseCommitBase;
}
&&std::derived_from<S, typename S::TwoPhaseCommitBase>;

namespace detail {

// The sink function the operator runs for a TwoPhaseCommitSink-derived S: calls the framework
// methods of the base (which S's own invoke(Txn&, const T&) hides).
template <class S>
class TwoPhaseCommitFunction {
  using Base = typename S::TwoPhaseCommitBase;

 public:
  explicit TwoPhaseCommitFunction(S sink) : sink_(std::move(sink)) {}
  void open(const RuntimeContext& ctx) { base().open(ctx); }
  void invoke(const typename Base::RecordType& value) { base().invoke(value); }
  void endInput() { base().endInput(); }
  void snapshotState(const CheckpointOptions& options) { base().snapshotState(options); }
  void notifyCheckpointComplete(std::int64_t id) { base().notifyCheckpointComplete(id); }
  void notifyCheckpointAborted(std::int64_t id) { base().notifyCheckpointAborted(id); }
  void close() { base().close(); }
  S& sink() { return sink_; }

 private:
  Base& base() { return static_cast<Base&>(sink_); }
  S sink_;
};

}  // namespace detail

}  // namespace weir
