// Keyed operators: the per-instance keyed runtime (state backend, timers, current key) and the
// keyed process operator behind KeyedStream::process.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "weir/context.h"
#include "weir/detail/keyed_backend.h"
#include "weir/detail/operators.h"
#include "weir/detail/rocks_state.h"
#include "weir/detail/rocks_timers.h"
#include "weir/detail/state_factory.h"
#include "weir/detail/timers.h"

namespace weir::detail {

// State backend and timer queues of one keyed operator instance, for keys K and timer
// namespaces N. The backend is the job's (RuntimeContext::Internals::state_backend): on the heap,
// or in the RocksDB store the task opens for this operator, with timers in that store or on the
// heap (Internals::timers_in_kv_store).
// A keyed operator's key groups on the heap backend (keyed state and both timer queues) frozen at
// a checkpoint: writeKeyGroup gives, on any thread and however the operator changed since, the
// bytes of its key groups at that moment.
class FrozenKeyGroups {
 public:
  static constexpr char kSnapshotMagic[4] = {'W', 'K', 'O', 'S'};
  static constexpr std::uint8_t kSnapshotVersion = 1;

  FrozenKeyGroups(KeyGroupRange range, std::unique_ptr<HeapBackendBase::Frozen> state,
                  std::unique_ptr<FrozenState> event_timers,
                  std::unique_ptr<FrozenState> processing_timers)
      : range_(range),
        state_(std::move(state)),
        event_timers_(std::move(event_timers)),
        processing_timers_(std::move(processing_timers)) {}

  KeyGroupRange range() const { return range_; }
  std::string writeKeyGroup(int kg) const {
    std::string out(kSnapshotMagic, sizeof(kSnapshotMagic));
    appendSerde(out, kSnapshotVersion);
    appendSerde(out, static_cast<std::int32_t>(kg));
    appendPart(out, state_->writeKeyGroup(kg));  // checks the range
    const auto g = static_cast<std::size_t>(kg - range_.start);
    std::string part;
    event_timers_->writeGroup(g, state_->keys(), part);
    appendPart(out, part);
    part.clear();
    processing_timers_->writeGroup(g, state_->keys(), part);
    appendPart(out, part);
    return out;
  }
  // Lets go of key group `kg` after it was written: the operator changes it in place from then on.
  void releaseKeyGroup(int kg) {
    const auto g = static_cast<std::size_t>(kg - range_.start);
    state_->releaseKeyGroup(kg);
    event_timers_->release(g);
    processing_timers_->release(g);
  }

 private:
  static void appendPart(std::string& out, const std::string& part) {
    appendSerde(out, static_cast<std::uint64_t>(part.size()));
    out += part;
  }

  KeyGroupRange range_;
  std::unique_ptr<HeapBackendBase::Frozen> state_;
  std::unique_ptr<FrozenState> event_timers_;
  std::unique_ptr<FrozenState> processing_timers_;
};

// A keyed operator whose key groups can be snapshotted and restored (heap backend): its keyed
// state and timers, as FrozenKeyGroups::writeKeyGroup bytes.
class KeyGroupSnapshotter {
 public:
  virtual ~KeyGroupSnapshotter() = default;
  // Quick: nothing is serialised until the result writes key groups.
  virtual std::unique_ptr<FrozenKeyGroups> freezeKeyGroups() = 0;
  virtual void restoreKeyGroup(int kg, std::span<const std::uint8_t> bytes) = 0;
  std::string snapshotKeyGroup(int kg) { return freezeKeyGroups()->writeKeyGroup(kg); }
};

template <class K, class N>
class KeyedRuntime {
 public:
  void open(const RuntimeContext& ctx) {
    guard_.init(ctx);
    const KeyGroupRange range =
        keyGroupRangeForSubtask(ctx.subtaskIndex(), ctx.parallelism(), ctx.maxParallelism());
    TaskEnvironment* env = ctx.internals().env;
    switch (ctx.internals().state_backend) {
      case StateBackendKind::kHeap: {
        auto heap = std::make_unique<HeapKeyedBackend<K>>(env, range, ctx.maxParallelism());
        event_timers_ = std::make_unique<HeapTimerQueue<K, N>>(*heap);
        processing_timers_ = std::make_unique<HeapTimerQueue<K, N>>(*heap);
        heap_ = heap.get();
        backend_ = std::move(heap);
        return;
      }
      case StateBackendKind::kRocksDb:
        openRocksDb(ctx, env, range);
        return;
    }
    throw std::logic_error(std::string("the ") + stateBackendName(ctx.internals().state_backend) +
                           " state backend is not available for this operator");
  }

  // Makes `key` current (checking it belongs to this subtask); returns its key group. `key` must
  // stay alive while it is current.
  int setCurrentKey(const K& key) {
    const int kg = guard_.check(hasher_(key));
    if (heap_ != nullptr) {
      heap_->setCurrentKey(key, kg);
    } else {
      rocks_->setCurrentKey(key, kg);
    }
    return kg;
  }
  const K& currentKey() const {
    return heap_ != nullptr ? heap_->currentKey() : rocks_->currentKey();
  }
  int currentKeyGroup() const { return backend_->currentKeyGroup(); }
  KeyedBackendBase& backend() { return *backend_; }
  TimerQueue<N>& eventTimers() { return *event_timers_; }
  TimerQueue<N>& processingTimers() { return *processing_timers_; }

  // The heap backend's key groups (keyed state and both timer queues) as they are now.
  std::unique_ptr<FrozenKeyGroups> freezeKeyGroups() {
    requireHeap();
    return std::make_unique<FrozenKeyGroups>(heap_->range(), heap_->freeze(),
                                             event_timers_->freeze(),
                                             processing_timers_->freeze());
  }
  // Restores key group `kg` (in this subtask's range) from writeKeyGroup bytes, possibly taken
  // at another parallelism. The timer bytes are checked before the state is restored.
  void restoreKeyGroup(int kg, std::span<const std::uint8_t> bytes) {
    requireHeap();
    if (!heap_->range().contains(kg)) {
      throw std::out_of_range("key group " + std::to_string(kg) +
                              " is outside this subtask's range");
    }
    const std::uint8_t* p = bytes.data();
    const std::uint8_t* end = p + bytes.size();
    constexpr auto& kMagic = FrozenKeyGroups::kSnapshotMagic;
    if (bytes.size() < sizeof(kMagic) || std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
      throw SnapshotFormatError("not a keyed operator key group snapshot (bad magic)");
    }
    p += sizeof(kMagic);
    std::uint8_t version = 0;
    p = readSnapshot(p, end, version, "version");
    if (version != FrozenKeyGroups::kSnapshotVersion) {
      throw SnapshotFormatError("keyed operator snapshot has version " + std::to_string(version) +
                                ", expected " +
                                std::to_string(FrozenKeyGroups::kSnapshotVersion));
    }
    std::int32_t snap_kg = 0;
    p = readSnapshot(p, end, snap_kg, "key group");
    if (snap_kg != kg) {
      throw SnapshotFormatError("keyed operator snapshot is of key group " +
                                std::to_string(snap_kg) + ", not " + std::to_string(kg));
    }
    std::span<const std::uint8_t> parts[3];
    for (auto& part : parts)
      p = readPart(p, end, part);
    if (p != end) throw SnapshotFormatError("keyed operator snapshot has trailing bytes");
    for (int i = 1; i < 3; ++i) {
      decodeTimers<K, N>(kg, heap_->maxParallelism(), parts[i].data(),
                         parts[i].data() + parts[i].size());
    }
    heap_->restoreKeyGroup(kg, parts[0]);
    event_timers_->restoreGroup(kg, parts[1].data(), parts[1].data() + parts[1].size());
    processing_timers_->restoreGroup(kg, parts[2].data(), parts[2].data() + parts[2].size());
  }

 private:
  void requireHeap() const {
    if (heap_ == nullptr) {
      throw std::logic_error("RocksDB key groups are snapshotted by the engine");
    }
  }
  static const std::uint8_t* readPart(const std::uint8_t* p, const std::uint8_t* end,
                                      std::span<const std::uint8_t>& part) {
    std::uint64_t len = 0;
    p = readSnapshot(p, end, len, "part length");
    if (len > static_cast<std::uint64_t>(end - p)) {
      throw SnapshotFormatError("keyed operator snapshot is truncated");
    }
    part = std::span<const std::uint8_t>(p, static_cast<std::size_t>(len));
    return p + len;
  }

  void openRocksDb(const RuntimeContext& ctx, TaskEnvironment* env, KeyGroupRange range) {
    if constexpr (Serializable<K> && Serializable<N>) {
      KvStore* store = nullptr;
      Status s = env != nullptr ? env->openKvStore(ctx.internals().vertex_id, store)
                                : Status::internal("no task environment");
      if (s.isOk() && store == nullptr) s = Status::internal("the task returned no store");
      if (!s.isOk()) {
        throw std::runtime_error("cannot open the RocksDB state store of '" + ctx.taskName() +
                                 "': " + s.message());
      }
      auto rocks = std::make_unique<RocksKeyedBackend<K>>(env, range, ctx.maxParallelism(), *store);
      if (ctx.internals().timers_in_kv_store) {
        event_timers_ = std::make_unique<RocksTimerQueue<K, N>>(*rocks, "timers.event");
        processing_timers_ = std::make_unique<RocksTimerQueue<K, N>>(*rocks, "timers.processing");
      } else {
        event_timers_ = std::make_unique<HeapBytesTimerQueue<K, N>>(*rocks);
        processing_timers_ = std::make_unique<HeapBytesTimerQueue<K, N>>(*rocks);
      }
      rocks_ = rocks.get();
      backend_ = std::move(rocks);
    } else {
      throw std::logic_error("'" + ctx.taskName() +
                             "' cannot keep keyed state in the rocksdb state backend: its key (or "
                             "window) type has no weir::Serde");
    }
  }

  KeyGroupGuard guard_;
  KeyHasher<K> hasher_;
  std::unique_ptr<KeyedBackendBase> backend_;
  HeapKeyedBackend<K>* heap_ = nullptr;
  RocksKeyedBackend<K>* rocks_ = nullptr;
  std::unique_ptr<TimerQueue<N>> event_timers_;
  std::unique_ptr<TimerQueue<N>> processing_timers_;
};

// The TimerService handed to keyed user functions.
template <class K>
class KeyedTimerService final : public TimerService {
 public:
  void bind(KeyedRuntime<K, VoidNamespace>* runtime, TaskEnvironment* env,
            const std::int64_t* watermark) {
    runtime_ = runtime;
    env_ = env;
    watermark_ = watermark;
  }
  std::int64_t currentProcessingTime() const override {
    return env_ != nullptr ? env_->currentProcessingTime() : 0;
  }
  std::int64_t currentWatermark() const override { return *watermark_; }
  void registerEventTimeTimer(std::int64_t time) override {
    runtime_->eventTimers().add(time, VoidNamespace{});
  }
  void registerProcessingTimeTimer(std::int64_t time) override {
    runtime_->processingTimers().add(time, VoidNamespace{});
  }
  void deleteEventTimeTimer(std::int64_t time) override {
    runtime_->eventTimers().remove(time, VoidNamespace{});
  }
  void deleteProcessingTimeTimer(std::int64_t time) override {
    runtime_->processingTimers().remove(time, VoidNamespace{});
  }

 private:
  KeyedRuntime<K, VoidNamespace>* runtime_ = nullptr;
  TaskEnvironment* env_ = nullptr;
  const std::int64_t* watermark_ = nullptr;
};

// void onTimer(std::int64_t time, KeyedContext<K>&, Collector<Out>&), optional.
template <class F, class K, class Out>
concept OnTimerMethod = requires(F& f, std::int64_t t, KeyedContext<K>& ctx, Collector<Out>& out) {
  f.onTimer(t, ctx, out);
};

// KeyedStream::process: the user function sees each record with its key current, keyed state,
// timers and side outputs; onTimer runs when its timers fire.
template <class T, class K, class Out, class KeyF, class F>
class KeyedProcessOperator final : public OneInputOperator<T, Out, F>, public KeyGroupSnapshotter {
 public:
  KeyedProcessOperator(KeyF key, F fn)
      : OneInputOperator<T, Out, F>(std::move(fn)), key_(std::move(key)) {}
  std::unique_ptr<FrozenKeyGroups> freezeKeyGroups() override { return runtime_.freezeKeyGroups(); }
  void restoreKeyGroup(int kg, std::span<const std::uint8_t> bytes) override {
    runtime_.restoreKeyGroup(kg, bytes);
  }

  void open(const RuntimeContext& ctx) override {
    guarded(this->name, [&] {
      runtime_.open(ctx);
      user_ctx_ = ctx;
      user_ctx_.setKeyedBackend(&runtime_.backend());
      timers_.bind(&runtime_, ctx.internals().env, &watermark_);
      kctx_.bind(&timers_, &this->side_outputs_);
      openFunction(this->fn_, user_ctx_);
    });
  }

  void processWatermark(std::int64_t watermark) override {
    watermark_ = watermark;
    this->counters.watermark.store(watermark, std::memory_order_relaxed);
    runtime_.eventTimers().fireUntil(
        watermark, [&](std::int64_t t, const VoidNamespace&) { fire(t, TimeDomain::kEventTime); });
    this->emitWatermark(watermark);
  }

  void onProcessingTime(std::int64_t now) override {
    runtime_.processingTimers().fireUntil(
        now, [&](std::int64_t t, const VoidNamespace&) { fire(t, TimeDomain::kProcessingTime); });
    this->flushOutputs();
  }

  std::int64_t nextProcessingTime() override { return runtime_.processingTimers().peekTime(); }

 protected:
  void process(const RecordBatch<T>& batch) override {
    std::uint64_t late = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const T& v = batch[i];
      const K key = callKey(key_, v);
      kctx_.setCurrent(&key, runtime_.setCurrentKey(key));
      const std::int64_t ts = batch.timestamp(i);
      if (ts != kNoTimestamp && ts < watermark_) ++late;
      kctx_.setTimestamp(ts);
      this->out_.setTimestamp(ts);
      callProcess(this->fn_, v, kctx_, this->out_);
    }
    if (late != 0) this->counters.addLate(late);
  }

 private:
  void fire(std::int64_t time, TimeDomain domain) {
    kctx_.setCurrent(&runtime_.currentKey(), runtime_.currentKeyGroup());
    kctx_.setTimestamp(time);
    kctx_.setTimeDomain(domain);
    this->out_.setTimestamp(domain == TimeDomain::kEventTime ? time : kNoTimestamp);
    if constexpr (OnTimerMethod<F, K, Out>) this->fn_.onTimer(time, kctx_, this->out_);
    kctx_.setTimeDomain(TimeDomain::kEventTime);
  }

  KeyF key_;
  KeyedRuntime<K, VoidNamespace> runtime_;
  KeyedTimerService<K> timers_;
  KeyedContext<K> kctx_;
  RuntimeContext user_ctx_;
  std::int64_t watermark_ = kMinWatermark;
};

// Running reduce per key (Flink's KeyedStream#reduce): emits the updated aggregate for every
// record. The aggregate is reducing state on the job's state backend.
template <class T, class K, class KeyF, class F>
class KeyedReduceOperator final : public OneInputOperator<T, T, F>, public KeyGroupSnapshotter {
 public:
  KeyedReduceOperator(KeyF key, F fn)
      : OneInputOperator<T, T, F>(std::move(fn)), key_(std::move(key)) {}
  std::unique_ptr<FrozenKeyGroups> freezeKeyGroups() override { return runtime_.freezeKeyGroups(); }
  void restoreKeyGroup(int kg, std::span<const std::uint8_t> bytes) override {
    runtime_.restoreKeyGroup(kg, bytes);
  }

  void open(const RuntimeContext& ctx) override {
    guarded(this->name, [&] {
      runtime_.open(ctx);
      state_ = &createState<VoidNamespace>(
          runtime_.backend(), ReducingStateDescriptor<T, F>("weir.keyed-reduce", this->fn_));
    });
  }

 protected:
  void process(const RecordBatch<T>& batch) override {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const T& v = batch[i];
      const K key = callKey(key_, v);
      runtime_.setCurrentKey(key);
      state_->add(v);
      this->out_.collectWithTimestamp(*state_->get(), batch.timestamp(i));
    }
  }

 private:
  KeyF key_;
  KeyedRuntime<K, VoidNamespace> runtime_;
  InternalReducingState<VoidNamespace, T>* state_ = nullptr;
};

}  // namespace weir::detail
