// Sources that ship with the SDK. Each parallel subtask runs its own copy and takes its share of
// the input by subtask index, so the union of all subtasks' output is the whole input exactly once.
//
// Every built-in source keeps its position in split-distributed operator list state (see
// weir/detail/operator_state.h), updated after every poll, so that a checkpoint taken between
// polls holds exactly where the subtask stands:
//   - the sequence source (SequenceSource, fromSequence) in "splits" (kSourceSplitsState): one
//     SequenceSplit {next, end} per sub-range the subtask still has to emit;
//   - the generator (GeneratorSource, fromGenerator), the collection source (CollectionSource,
//     fromCollection) and the text file source (TextFileSource, readTextFile) in "strides"
//     (kSourceStridesState): one GeneratorStride {next, step} per arithmetic progression of
//     indices (generator indices, elements, lines) it still has to emit. At a checkpoint a
//     subtask cuts its strides into pieces (each stride into an equal number of progressions with
//     a multiple of its step), enough that the job has at least max parallelism pieces; on
//     restore a subtask pairs the pieces it was given up again into few strides.
// Every built-in source can be restored at another parallelism: the engine pools the elements of
// all old subtasks and hands each new subtask a share, and a subtask emits exactly the splits or
// strides it was given (possibly several, possibly none), so every number, index, element or line
// is still emitted exactly once across the job. Up to the max parallelism every new subtask gets
// a share (of what is left); a subtask given none ends at once.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weir/collector.h"
#include "weir/context.h"
#include "weir/serde.h"
#include "weir/state.h"
#include "weir/task_api.h"

namespace weir {

inline constexpr std::uint64_t kUnbounded = std::numeric_limits<std::uint64_t>::max();

// Base classes for user sources; optional (any class with a matching pollNext works) but they
// document the contract. A copy runs per parallel subtask: open() tells it which one.
//   pollNext() emits zero or more records (best at most out.pollBudget(), see Collector) and says
//   whether more may come.
template <class T>
class BoundedSource {
 public:
  virtual ~BoundedSource() = default;
  virtual void open(const RuntimeContext&) {}
  // Returns kEndOfInput once everything has been emitted.
  virtual SourceStatus pollNext(Collector<T>& out) = 0;
  virtual void close() {}
  bool bounded() const { return true; }
};

// A source that runs until the job is cancelled. pollNext returns kNothingAvailable when it has
// nothing right now; the task then backs off briefly instead of spinning.
template <class T>
class UnboundedSource {
 public:
  virtual ~UnboundedSource() = default;
  virtual void open(const RuntimeContext&) {}
  virtual SourceStatus pollNext(Collector<T>& out) = 0;
  virtual void close() {}
  bool bounded() const { return false; }
};

// The operator list states in which the built-in sources keep their position (see above). Earlier
// versions kept the position of the collection and text file sources in "offset" (one index),
// which is refused on restore with a clear error.
inline constexpr const char* kSourceOffsetState = "offset";
inline constexpr const char* kSourceStridesState = "strides";
inline constexpr const char* kSourceSplitsState = "splits";

// What a generator still has to emit of one progression of indices: next, next + step, ... below
// the generator's count.
struct GeneratorStride {
  std::uint64_t next = 0;
  std::uint64_t step = 1;
  bool operator==(const GeneratorStride&) const = default;
  WEIR_SERDE_FIELDS(next, step)
};

// What a sequence source still has to emit of one of its splits: the numbers from next to end,
// both included (never empty: a finished split is dropped).
struct SequenceSplit {
  std::int64_t next = 0;
  std::int64_t end = 0;
  bool operator==(const SequenceSplit&) const = default;
  WEIR_SERDE_FIELDS(next, end)
};

namespace source_detail {

// The i-th of the `bits`-bit numbers in bit-reversed order (0, 2^(bits-1), 2^(bits-2), ...).
inline std::uint64_t bitReversed(std::uint64_t i, int bits) {
  std::uint64_t r = 0;
  for (int b = 0; b < bits; ++b)
    r = (r << 1) | ((i >> b) & 1);
  return r;
}

// Cuts `strides` (a subtask's, at `parallelism` of `max_parallelism`) into pieces for a checkpoint
// so that the job's pieces can give work to every subtask of any parallelism up to the max
// parallelism: a subtask with w strides cuts each into k pieces, k the smallest power of two with
// w * k >= ceil(max(max parallelism, parallelism) / parallelism). Stride {next, step} becomes
//   {next + j * step, k * step}  for j = 0 .. k - 1,
// which together are exactly its indices. The pieces of a stride are listed in bit-reversed order
// of j, so that the contiguous run of pieces the engine hands a new subtask pairs up again (see
// mergeStrides) into few strides. Pieces at or beyond `count` are dropped (they have nothing to
// emit); a stride whose pieces' indices would overflow stays whole.
inline std::vector<GeneratorStride> cutStrides(std::vector<GeneratorStride> strides,
                                               std::uint64_t count, int parallelism,
                                               int max_parallelism) {
  if (strides.empty()) return strides;
  std::sort(strides.begin(), strides.end(),
            [](const GeneratorStride& a, const GeneratorStride& b) { return a.next < b.next; });
  const auto p = static_cast<std::uint64_t>(std::max(parallelism, 1));
  const std::uint64_t wanted = (std::max<std::uint64_t>(max_parallelism, p) + p - 1) / p;
  std::uint64_t k = 1;
  int bits = 0;
  while (strides.size() * k < wanted) {
    k *= 2;
    ++bits;
  }
  if (k == 1) return strides;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::vector<GeneratorStride> pieces;
  pieces.reserve(strides.size() * k);
  for (const GeneratorStride& st : strides) {
    if (st.step > kMax / k || st.next > kMax - (k - 1) * st.step) {
      pieces.push_back(st);
      continue;
    }
    for (std::uint64_t i = 0; i < k; ++i) {
      const std::uint64_t next = st.next + bitReversed(i, bits) * st.step;
      if (next < count) pieces.push_back({next, st.step * k});
    }
  }
  return pieces;
}

// Pairs restored strides up again: {a, 2d} and {a + d, 2d} together are exactly {a, d}. Merges
// such pairs (from the largest step down, so that merged pairs can pair again) and returns the
// strides sorted by next index. The pieces of one stride cut by cutStrides merge back into it,
// and a run of them into a few strides. Two equal strides would emit their indices twice: that is
// a std::runtime_error naming the source (`what`) and the subtask.
inline std::vector<GeneratorStride> mergeStrides(const std::vector<GeneratorStride>& strides,
                                                 const char* what, int subtask) {
  std::map<std::uint64_t, std::set<std::uint64_t>, std::greater<>> by_step;
  for (const GeneratorStride& st : strides) {
    if (!by_step[st.step].insert(st.next).second) {
      throw std::runtime_error(std::string(what) + " subtask " + std::to_string(subtask) +
                               " was restored with the stride {" + std::to_string(st.next) + ", " +
                               std::to_string(st.step) + "} twice");
    }
  }
  std::vector<GeneratorStride> merged;
  while (!by_step.empty()) {
    const auto group = by_step.begin();
    const std::uint64_t step = group->first;
    std::set<std::uint64_t> nexts = std::move(group->second);
    by_step.erase(group);
    const std::uint64_t half = step / 2;
    while (!nexts.empty()) {
      const std::uint64_t a = nexts.extract(nexts.begin()).value();
      const bool pairs = step % 2 == 0 && a <= std::numeric_limits<std::uint64_t>::max() - half &&
                         nexts.erase(a + half) == 1;
      if (pairs) {
        by_step[half].insert(a);
      } else {
        merged.push_back({a, step});
      }
    }
  }
  std::sort(merged.begin(), merged.end(), [](const GeneratorStride& a, const GeneratorStride& b) {
    return a.next < b.next || (a.next == b.next && a.step < b.step);
  });
  return merged;
}

// The strides an index-striding source (generator, collection, text file) emits, registering its
// state: the restored ones (merged, see mergeStrides), or {subtask, parallelism} at a fresh start.
// Strides at or beyond `count` are dropped. `what` names the source in errors.
inline std::vector<GeneratorStride> openStrides(const RuntimeContext& ctx,
                                                ListState<GeneratorStride>*& state,
                                                std::uint64_t count, const char* what) {
  state = &ctx.getOperatorListState(ListStateDescriptor<GeneratorStride>(kSourceStridesState));
  std::vector<GeneratorStride> strides = state->get();
  const bool restored = ctx.operatorStateStore().isRestored();
  if (strides.empty() && restored &&
      !ctx.getOperatorListState(ListStateDescriptor<std::uint64_t>(kSourceOffsetState))
           .get()
           .empty()) {
    throw std::runtime_error(std::string(what) + " subtask " + std::to_string(ctx.subtaskIndex()) +
                             " was restored with a position in the 'offset' state of an earlier "
                             "Weir version, which this version cannot resume from");
  }
  if (strides.empty() && !restored) {
    strides.push_back({static_cast<std::uint64_t>(ctx.subtaskIndex()),
                       static_cast<std::uint64_t>(ctx.parallelism())});
  }
  for (const GeneratorStride& stride : strides) {
    if (stride.step == 0) {
      throw std::runtime_error(std::string(what) + " subtask " +
                               std::to_string(ctx.subtaskIndex()) +
                               " was restored with a stride of step 0");
    }
  }
  std::erase_if(strides, [count](const GeneratorStride& st) { return st.next >= count; });
  if (strides.size() > 1) strides = mergeStrides(strides, what, ctx.subtaskIndex());
  state->update(strides);
  return strides;
}

// The strides of an index-striding source, emitted in increasing index order: next() is the
// smallest index any stride still has to emit. The strides are kept as a min-heap by next index,
// so advancing costs O(log strides).
class OrderedStrides {
 public:
  void open(const RuntimeContext& ctx, std::uint64_t count, const char* what) {
    count_ = count;
    parallelism_ = ctx.parallelism();
    max_parallelism_ = ctx.maxParallelism();
    strides_ = openStrides(ctx, state_, count, what);
    std::make_heap(strides_.begin(), strides_.end(), later);
    for (const GeneratorStride& st : strides_)
      max_step_ = std::max(max_step_, st.step);
  }
  // The next index to emit; kUnbounded when there is none.
  std::uint64_t next() const { return strides_.empty() ? kUnbounded : strides_.front().next; }
  // The largest step among the strides (0 when none).
  std::uint64_t maxStep() const { return max_step_; }
  // The only stride left, or nullptr when there are none or several.
  GeneratorStride* single() { return strides_.size() == 1 ? &strides_.front() : nullptr; }
  // next() was emitted: its stride moves on (and is dropped once at or beyond the count).
  void advance() {
    emitRun(1, [](std::size_t, std::uint64_t) {});
  }
  // The single stride (see single()) has moved on to `next`; it is dropped at or beyond the count.
  void moveSingle(std::uint64_t next) {
    strides_.front().next = next;
    if (next >= count_) strides_.clear();
  }
  // Emits, through emit(i, index), the run of indices of the stride with the smallest next index
  // that come before every other stride's next index and before the count: at most `max` (> 0) of
  // them, at least one. Returns how many it emitted.
  template <class Emit>
  std::size_t emitRun(std::size_t max, Emit&& emit) {
    std::pop_heap(strides_.begin(), strides_.end(), later);
    GeneratorStride& st = strides_.back();
    std::uint64_t bound = count_;
    if (strides_.size() > 1) bound = std::min(bound, strides_.front().next);
    std::uint64_t n = bound > st.next ? (bound - st.next - 1) / st.step + 1 : 1;
    if (n > max) n = max;
    std::uint64_t next = st.next;
    const std::uint64_t step = st.step;
    for (std::uint64_t i = 0; i < n; ++i) {
      emit(static_cast<std::size_t>(i), next);
      next += step;
    }
    if (next >= count_ || next < st.next) {  // past the count, or past the last index there is
      strides_.pop_back();
    } else {
      st.next = next;
      std::push_heap(strides_.begin(), strides_.end(), later);
    }
    return static_cast<std::size_t>(n);
  }
  // The strides, in no particular order.
  const std::vector<GeneratorStride>& all() const { return strides_; }
  // Replaces the strides (dropping those at or beyond the count).
  void reset(const std::vector<GeneratorStride>& strides) {
    strides_.clear();
    for (const GeneratorStride& st : strides) {
      if (st.next < count_) strides_.push_back(st);
    }
    std::make_heap(strides_.begin(), strides_.end(), later);
  }
  // Nothing is left to emit (the input ended before the count).
  void clear() { strides_.clear(); }
  // Records the position in the operator state (after every poll).
  void save() { state_->update(strides_); }
  // Records the position for a checkpoint: the strides cut into pieces (see cutStrides).
  void snapshot() { state_->update(cutStrides(strides_, count_, parallelism_, max_parallelism_)); }

 private:
  // Heap order: the stride with the smallest next index at the front.
  static bool later(const GeneratorStride& a, const GeneratorStride& b) { return a.next > b.next; }

  std::uint64_t count_ = kUnbounded;
  int parallelism_ = 1;
  int max_parallelism_ = 1;
  std::vector<GeneratorStride> strides_;
  std::uint64_t max_step_ = 0;
  ListState<GeneratorStride>* state_ = nullptr;
};

// Several strides in phase, emitted as a repeating pattern. When some W has
//   W <= next < W + step  for every stride,
// the indices the strides have in [W + t * L, W + (t + 1) * L), L the least common multiple of
// their steps, are W + t * L + the same offsets for every t. Emitting from the pattern is a
// loop over the offsets, about as fast as one stride; the strides a subtask gets on scale-out
// (pieces of one stride, paired up) are in phase.
class StridePattern {
 public:
  // Periods longer than this are not worth a table.
  static constexpr std::uint64_t kMaxPeriod = std::uint64_t{1} << 16;

  // Builds the pattern of `strides` (at least one, every next below `count`) from their next
  // indices on. False, and inactive, when they are not in phase, their period is longer than
  // kMaxPeriod, or a whole period does not fit below the count.
  bool build(const std::vector<GeneratorStride>& strides, std::uint64_t count) {
    active_ = false;
    std::uint64_t min_next = kUnbounded;
    std::uint64_t base = 0;  // the least W
    std::uint64_t period = 1;
    for (const GeneratorStride& st : strides) {
      min_next = std::min(min_next, st.next);
      if (st.next + 1 > st.step) base = std::max(base, st.next + 1 - st.step);
      if (st.step > kMaxPeriod) return false;
      period = std::lcm(period, st.step);
      if (period > kMaxPeriod) return false;
    }
    if (base > min_next || base > count || count - base < period) return false;
    offsets_.clear();
    phases_.clear();
    for (const GeneratorStride& st : strides) {
      phases_.push_back({st.next - base, st.step});
      for (std::uint64_t o = st.next - base; o < period; o += st.step)
        offsets_.push_back(o);
    }
    std::sort(offsets_.begin(), offsets_.end());
    base_ = base;
    period_ = period;
    count_ = count;
    pos_ = 0;
    active_ = true;
    return true;
  }
  bool active() const { return active_; }

  // Emits through emit(i, index) the next indices of the pattern, at most `max`; stops early (and
  // becomes inactive) where the next period would not fit below the count. Returns how many.
  template <class Emit>
  std::size_t emit(std::size_t max, Emit&& emit) {
    std::size_t i = 0;
    while (i < max && active_) {
      const std::size_t end = std::min(offsets_.size(), pos_ + (max - i));
      const std::uint64_t base = base_;
      for (std::size_t p = pos_; p < end; ++p, ++i)
        emit(i, base + offsets_[p]);
      pos_ = end;
      if (pos_ == offsets_.size()) {
        pos_ = 0;
        base_ += period_;
        if (base_ > count_ || count_ - base_ < period_) active_ = false;
      }
    }
    return i;
  }

  // The strides, each at its next index not emitted yet (after the last emit), into `out`.
  void strides(std::vector<GeneratorStride>& out) const {
    out.clear();
    const std::uint64_t at = offsets_[pos_];  // offset of the next index to emit from base_
    for (const GeneratorStride& phase : phases_) {
      std::uint64_t next = base_ + phase.next;
      if (at > phase.next) next += (at - phase.next + phase.step - 1) / phase.step * phase.step;
      out.push_back({next, phase.step});
    }
  }

 private:
  std::vector<std::uint64_t> offsets_;
  std::vector<GeneratorStride> phases_;  // per stride: its offset in the first period, its step
  std::uint64_t base_ = 0;               // W of the current period
  std::uint64_t period_ = 1;
  std::uint64_t count_ = kUnbounded;
  std::size_t pos_ = 0;  // the next offset to emit
  bool active_ = false;
};

}  // namespace source_detail

// How many records a built-in source emits per poll at most: large enough to amortise the poll,
// small enough that the task checks for cancellation and flush deadlines often. A poll emits
// fewer when the task asks for fewer (Collector::pollBudget).
inline constexpr int kSourceRecordsPerPoll = 1024;

// Emits fn(i) for every index i in [0, count) (or forever when count is kUnbounded). At a fresh
// start subtask s of p has one stride {s, p}: it emits the indices congruent to s modulo p, in
// increasing order. Restored, it emits the indices of the strides it was given, in increasing
// order, and ends when none are left: strides in phase (those of a scale-out) from their pattern
// (source_detail::StridePattern), others a run of the lowest stride at a time. A checkpoint cuts
// the strides into pieces (see source_detail::cutStrides), so that a restore at a higher
// parallelism gives every subtask some.
template <class T, class F>
class GeneratorSource {
 public:
  GeneratorSource(F fn, std::uint64_t count) : fn_(std::move(fn)), count_(count) {}

  void open(const RuntimeContext& ctx) { strides_.open(ctx, count_, "generator"); }

  SourceStatus pollNext(Collector<T>& out) {
    std::size_t left = std::min<std::size_t>(kSourceRecordsPerPoll, out.pollBudget());
    while (left > 0 && (pattern_.active() || strides_.next() != kUnbounded)) {
      std::size_t room = 0;
      std::int64_t* ts = nullptr;
      T* dst = out.reserve(room, ts);
      std::size_t k = std::min(room, left);
      GeneratorStride* only = pattern_.active() ? nullptr : strides_.single();
      if (only != nullptr) {
        // Locals, not members: a store of a record may alias the members and force a reload per
        // record.
        std::uint64_t next = only->next;
        const std::uint64_t step = only->step;
        const std::uint64_t remaining = (count_ - next - 1) / step + 1;
        if (remaining < k) k = static_cast<std::size_t>(remaining);
        for (std::size_t i = 0; i < k; ++i) {
          dst[i] = fn_(next);
          ts[i] = kNoTimestamp;
          next += step;
        }
        strides_.moveSingle(next);
      } else {
        // Several strides: in increasing index order, from their pattern when they are in phase,
        // else a run of the smallest stride at a time.
        auto put = [&](std::size_t i, std::uint64_t index) {
          dst[i] = fn_(index);
          ts[i] = kNoTimestamp;
        };
        if (!pattern_.active()) pattern_.build(strides_.all(), count_);
        if (pattern_.active()) {
          k = pattern_.emit(k, put);
          if (!pattern_.active()) syncStrides();
        } else {
          std::size_t i = 0;
          while (i < k && strides_.next() != kUnbounded) {
            i += strides_.emitRun(k - i,
                                  [&](std::size_t j, std::uint64_t index) { put(i + j, index); });
          }
          k = i;
        }
      }
      out.commitReserved(k);
      left -= k;
    }
    // While the pattern emits, the strides are brought up to date once per poll.
    if (pattern_.active()) syncStrides();
    strides_.save();
    return strides_.next() == kUnbounded ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

  void snapshotState(const CheckpointOptions&) { strides_.snapshot(); }

  bool bounded() const { return count_ != kUnbounded; }

 private:
  // The strides where the pattern stands.
  void syncStrides() {
    pattern_.strides(synced_);
    strides_.reset(synced_);
  }

  F fn_;
  std::uint64_t count_;
  source_detail::OrderedStrides strides_;  // while pattern_ is active: as of the last poll's end
  source_detail::StridePattern pattern_;
  std::vector<GeneratorStride> synced_;  // reused by syncStrides
};

// Emits the numbers from `from` to `to`, both included (nothing when from > to), like Flink's
// NumberSequenceSource. At a fresh start the range is cut into
//   n = min(to - from + 1, max(max parallelism, parallelism))
// contiguous splits whose sizes differ by at most one (the first ones are the longer), so that any
// later parallelism up to the max parallelism can still give every subtask work. Subtask s of p
// takes a contiguous run of them, as the engine's redistribution would: the first n mod p subtasks
// n / p + 1 splits, the others n / p. A subtask emits its splits in order, each in increasing
// order; its state holds the rest of every split it has not finished.
class SequenceSource {
 public:
  SequenceSource(std::int64_t from, std::int64_t to) : from_(from), to_(to) {}

  void open(const RuntimeContext& ctx) {
    state_ = &ctx.getOperatorListState(ListStateDescriptor<SequenceSplit>(kSourceSplitsState));
    splits_ = state_->get();
    if (splits_.empty() && !ctx.operatorStateStore().isRestored()) {
      initialSplits(ctx.subtaskIndex(), ctx.parallelism(),
                    std::max(ctx.maxParallelism(), ctx.parallelism()));
    }
    for (const SequenceSplit& split : splits_) {
      if (split.next > split.end) {
        throw std::runtime_error("sequence subtask " + std::to_string(ctx.subtaskIndex()) +
                                 " was restored with an empty split [" +
                                 std::to_string(split.next) + ", " + std::to_string(split.end) +
                                 "]");
      }
    }
    state_->update(splits_);
  }

  SourceStatus pollNext(Collector<std::int64_t>& out) {
    std::size_t left = std::min<std::size_t>(kSourceRecordsPerPoll, out.pollBudget());
    std::size_t done = 0;  // splits finished in this poll, at the front
    while (left > 0 && done < splits_.size()) {
      SequenceSplit& split = splits_[done];
      // Unsigned arithmetic: a split may span the whole int64 range.
      auto next = static_cast<std::uint64_t>(split.next);
      // The split's size minus one, which always fits.
      std::uint64_t last = static_cast<std::uint64_t>(split.end) - next;
      bool finished = false;
      while (left > 0) {
        std::size_t room = 0;
        std::int64_t* ts = nullptr;
        std::int64_t* dst = out.reserve(room, ts);
        std::size_t k = std::min(room, left);
        if (last < k) k = static_cast<std::size_t>(last) + 1;
        for (std::size_t i = 0; i < k; ++i) {
          dst[i] = static_cast<std::int64_t>(next + i);
          ts[i] = kNoTimestamp;
        }
        out.commitReserved(k);
        left -= k;
        if (last < k) {
          finished = true;
          break;
        }
        next += k;
        last -= k;
      }
      if (!finished) {
        split.next = static_cast<std::int64_t>(next);
        break;
      }
      ++done;
    }
    splits_.erase(splits_.begin(), splits_.begin() + static_cast<std::ptrdiff_t>(done));
    state_->update(splits_);
    return splits_.empty() ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

  bool bounded() const { return true; }

 private:
  // The splits subtask `subtask` of `parallelism` starts with, of `max_splits` at most in all.
  void initialSplits(int subtask, int parallelism, int max_splits) {
    splits_.clear();
    if (from_ > to_) return;
    // The number of values is last + 1, up to 2^64: quotient and remainder of last + 1 by n.
    const std::uint64_t last = static_cast<std::uint64_t>(to_) - static_cast<std::uint64_t>(from_);
    const std::uint64_t n = last < static_cast<std::uint64_t>(max_splits - 1)
                                ? last + 1
                                : static_cast<std::uint64_t>(max_splits);
    std::uint64_t base = last / n;
    std::uint64_t longer = last % n + 1;  // splits of base + 1 values
    if (longer == n) {
      ++base;
      longer = 0;
    }
    const auto p = static_cast<std::uint64_t>(parallelism);
    const auto s = static_cast<std::uint64_t>(subtask);
    const std::uint64_t first = s * (n / p) + std::min(s, n % p);
    const std::uint64_t end = first + n / p + (s < n % p ? 1 : 0);
    splits_.reserve(static_cast<std::size_t>(end - first));
    for (std::uint64_t i = first; i < end; ++i) {
      const std::uint64_t start = i * base + std::min(i, longer);
      const std::uint64_t size = base + (i < longer ? 1 : 0);
      const std::uint64_t begin = static_cast<std::uint64_t>(from_) + start;
      splits_.push_back(
          {static_cast<std::int64_t>(begin), static_cast<std::int64_t>(begin + size - 1)});
    }
  }

  std::int64_t from_;
  std::int64_t to_;
  std::vector<SequenceSplit> splits_;
  ListState<SequenceSplit>* state_ = nullptr;
};

// Emits the elements of a collection; at a fresh start element i goes to subtask i mod
// parallelism. Restored, a subtask emits the elements of the strides it was given, in index order.
template <class T>
class CollectionSource {
 public:
  explicit CollectionSource(std::shared_ptr<const std::vector<T>> items)
      : items_(std::move(items)) {}

  void open(const RuntimeContext& ctx) { strides_.open(ctx, items_->size(), "collection"); }

  SourceStatus pollNext(Collector<T>& out) {
    const std::size_t budget = std::min<std::size_t>(kSourceRecordsPerPoll, out.pollBudget());
    for (std::size_t i = 0; i < budget && strides_.next() != kUnbounded; ++i) {
      out.collect((*items_)[static_cast<std::size_t>(strides_.next())]);
      strides_.advance();
    }
    strides_.save();
    return strides_.next() == kUnbounded ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

  void snapshotState(const CheckpointOptions&) { strides_.snapshot(); }

 private:
  std::shared_ptr<const std::vector<T>> items_;
  source_detail::OrderedStrides strides_;
};

// Emits the lines of a text file (without line terminators); at a fresh start line i goes to
// subtask i mod parallelism. Restored, a subtask emits the lines of the strides it was given, in
// order. Every subtask reads the file from its start. A file that cannot be read, or that has
// fewer lines than a restored position needs, fails the task with the path and the reason.
class TextFileSource {
 public:
  explicit TextFileSource(std::string path) : path_(std::move(path)) {}
  TextFileSource(const TextFileSource& other) : path_(other.path_) {}

  void open(const RuntimeContext& ctx) {
    strides_.open(ctx, kUnbounded, "text file source");
    in_ = std::make_unique<std::ifstream>(path_);
    if (!*in_) {
      throw std::runtime_error("cannot open input file '" + path_ + "': " + std::strerror(errno));
    }
    // Skips to the first line to emit. A stride may point just past the last line (the subtask
    // had read to the end, not yet past it); one further points beyond what the file ever had.
    const std::uint64_t resume_at = strides_.next();
    while (resume_at != kUnbounded && line_no_ < resume_at) {
      if (!std::getline(*in_, line_)) {
        if (in_->bad()) throw std::runtime_error("error reading '" + path_ + "'");
        if (line_no_ + strides_.maxStep() <= resume_at) {
          throw std::runtime_error("cannot resume '" + path_ + "' at line " +
                                   std::to_string(resume_at) + ": it has only " +
                                   std::to_string(line_no_) + " lines");
        }
        strides_.clear();
        break;
      }
      ++line_no_;
    }
    strides_.save();
  }

  SourceStatus pollNext(Collector<std::string>& out) {
    const std::size_t budget = std::min<std::size_t>(kSourceRecordsPerPoll, out.pollBudget());
    for (std::size_t i = 0; i < budget && strides_.next() != kUnbounded; ++i) {
      if (!std::getline(*in_, line_)) {
        if (in_->bad()) throw std::runtime_error("error reading '" + path_ + "'");
        strides_.clear();
        break;
      }
      if (line_no_++ != strides_.next()) continue;
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      out.collect(line_);
      strides_.advance();
    }
    strides_.save();
    return strides_.next() == kUnbounded ? SourceStatus::kEndOfInput : SourceStatus::kMoreAvailable;
  }

  void snapshotState(const CheckpointOptions&) { strides_.snapshot(); }

  void close() { in_.reset(); }

 private:
  std::string path_;
  std::unique_ptr<std::ifstream> in_;
  std::string line_;
  std::uint64_t line_no_ = 0;
  source_detail::OrderedStrides strides_;
};

}  // namespace weir
