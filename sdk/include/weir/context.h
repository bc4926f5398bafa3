// Contexts handed to user functions.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "weir/detail/operator_state.h"
#include "weir/job_args.h"
#include "weir/state.h"
#include "weir/task_api.h"

namespace weir {

namespace detail {
class KeyedBackendBase;
}

// What an operator instance knows about where it runs. Passed to `open` of any user function that
// declares `void open(const weir::RuntimeContext&)`; valid until `close` returns.
class RuntimeContext {
 public:
  RuntimeContext() = default;
  RuntimeContext(std::string job_name, std::string task_name, int subtask_index, int parallelism,
                 int max_parallelism, const JobArgs* args)
      : job_name_(std::move(job_name)),
        task_name_(std::move(task_name)),
        subtask_index_(subtask_index),
        parallelism_(parallelism),
        max_parallelism_(max_parallelism),
        args_(args) {}

  const std::string& jobName() const { return job_name_; }
  const std::string& taskName() const { return task_name_; }
  int subtaskIndex() const { return subtask_index_; }
  int parallelism() const { return parallelism_; }
  int maxParallelism() const { return max_parallelism_; }
  const JobArgs& args() const {
    static const JobArgs kEmpty;
    return args_ ? *args_ : kEmpty;
  }
  // Keyed state of the current key (keyed functions only; see weir/state.h). Call in open(); the
  // state stays valid until close(). Throws std::logic_error outside keyed functions.
  template <class V>
  ValueState<V>& getState(const ValueStateDescriptor<V>& descriptor) const;
  template <class V>
  ListState<V>& getListState(const ListStateDescriptor<V>& descriptor) const;
  template <class UK, class UV>
  MapState<UK, UV>& getMapState(const MapStateDescriptor<UK, UV>& descriptor) const;
  template <class V, class F>
  ReducingState<V>& getReducingState(const ReducingStateDescriptor<V, F>& descriptor) const;
  template <class In, class F>
  AggregatingState<In, AggregateResultOf<F>>& getAggregatingState(
      const AggregatingStateDescriptor<In, F>& descriptor) const;

  // Operator state: list state of this parallel instance, not keyed, for any function (a source's
  // offsets, typically). Call in open(); valid until close(). On restore at another parallelism a
  // list state's elements are split among the subtasks, a union list state's go to all of them
  // (see weir/detail/operator_state.h).
  template <class V>
  ListState<V>& getOperatorListState(const ListStateDescriptor<V>& descriptor) const {
    return operatorStateStore().getListState(descriptor,
                                             detail::OperatorStateMode::kSplitDistribute);
  }
  template <class V>
  ListState<V>& getUnionListState(const ListStateDescriptor<V>& descriptor) const {
    return operatorStateStore().getListState(descriptor, detail::OperatorStateMode::kUnion);
  }

  // Whether the job takes checkpoints (ChainSpec::checkpointing). Without them, output that must
  // not be seen twice (a two-phase-commit sink's) is committed when the input ends.
  bool isCheckpointingEnabled() const { return internals_.checkpointing; }

  // The TaskManager's wall clock, in milliseconds since the Unix epoch.
  std::int64_t currentProcessingTime() const {
    return env_ != nullptr ? env_->currentProcessingTime() : 0;
  }

  // --- SDK-internal: where the operator runs, for the SDK's operators ---
  struct Internals {
    TaskEnvironment* env = nullptr;
    int vertex_id = 0;
    std::int64_t auto_watermark_interval_ms = 0;
    StateBackendKind state_backend = StateBackendKind::kHeap;
    bool timers_in_kv_store = false;
    bool checkpointing = false;
  };
  void setInternals(const Internals& internals) {
    internals_ = internals;
    env_ = internals.env;
  }
  const Internals& internals() const { return internals_; }
  void setKeyedBackend(detail::KeyedBackendBase* backend) { keyed_backend_ = backend; }
  detail::KeyedBackendBase& keyedBackend() const;
  void setOperatorStateStore(detail::OperatorStateStore* store) { operator_state_ = store; }
  detail::OperatorStateStore& operatorStateStore() const {
    if (operator_state_ == nullptr) {
      throw std::logic_error("operator state is not available to task '" + task_name_ + "'");
    }
    return *operator_state_;
  }

 private:
  std::string job_name_;
  std::string task_name_;
  int subtask_index_ = 0;
  int parallelism_ = 1;
  int max_parallelism_ = 1;
  const JobArgs* args_ = nullptr;
  TaskEnvironment* env_ = nullptr;
  Internals internals_;
  detail::KeyedBackendBase* keyed_backend_ = nullptr;
  detail::OperatorStateStore* operator_state_ = nullptr;
};

// Timers of a keyed function, for the current key. Timers are unique per key and time:
// registering one twice fires it once. An event-time timer fires when the watermark reaches its
// time, a processing-time timer when the TaskManager's clock does; onTimer then runs with the key
// current.
class TimerService {
 public:
  virtual ~TimerService() = default;
  virtual std::int64_t currentProcessingTime() const = 0;
  virtual std::int64_t currentWatermark() const = 0;
  virtual void registerEventTimeTimer(std::int64_t time) = 0;
  virtual void registerProcessingTimeTimer(std::int64_t time) = 0;
  virtual void deleteEventTimeTimer(std::int64_t time) = 0;
  virtual void deleteProcessingTimeTimer(std::int64_t time) = 0;
};

enum class TimeDomain : std::uint8_t { kEventTime, kProcessingTime };

// Names a side output of type T: operators emit to it through their context's output(tag, v), and
// `stream.getSideOutput(tag)` is the stream of what was emitted. The id must be unique per job.
template <class T>
class OutputTag {
 public:
  explicit OutputTag(std::string id) : id_(std::move(id)) {}
  const std::string& id() const { return id_; }

 private:
  std::string id_;
};

namespace detail {
class SideOutputs;
template <class X>
void emitSideOutput(SideOutputs* outputs, const std::string& id, const X& value,
                    std::int64_t timestamp);
}  // namespace detail

// The context of a keyed function's processElement and onTimer call; valid only during that call.
template <class K>
class KeyedContext {
 public:
  const K& currentKey() const { return *key_; }
  int currentKeyGroup() const { return key_group_; }
  // The event timestamp of the record being processed, or the time of the firing timer
  // (kNoTimestamp for a record without one).
  std::int64_t timestamp() const { return timestamp_; }
  TimerService& timerService() const { return *timers_; }
  // In onTimer: which kind of timer fired.
  TimeDomain timeDomain() const { return domain_; }
  // Emits to a side output, with the current timestamp. Without a consumer the value is dropped.
  template <class X>
  void output(const OutputTag<X>& tag, const X& value) const {
    detail::emitSideOutput(side_outputs_, tag.id(), value, timestamp_);
  }

  // --- SDK-internal: set by the operator before each call ---
  void setCurrent(const K* key, int key_group) {
    key_ = key;
    key_group_ = key_group;
  }
  void setTimestamp(std::int64_t ts) { timestamp_ = ts; }
  void setTimeDomain(TimeDomain d) { domain_ = d; }
  void bind(TimerService* timers, detail::SideOutputs* side_outputs) {
    timers_ = timers;
    side_outputs_ = side_outputs;
  }

 private:
  const K* key_ = nullptr;
  int key_group_ = 0;
  std::int64_t timestamp_ = kNoTimestamp;
  TimeDomain domain_ = TimeDomain::kEventTime;
  TimerService* timers_ = nullptr;
  detail::SideOutputs* side_outputs_ = nullptr;
};

}  // namespace weir
