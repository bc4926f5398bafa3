// Operator state (Flink's OperatorStateStore): state of one operator instance, i.e. one subtask of
// one vertex, that is not partitioned by key. Any function can use it, sources especially (their
// read positions):
//
//   void open(const weir::RuntimeContext& ctx) {
//     offsets_ = &ctx.getOperatorListState(weir::ListStateDescriptor<std::uint64_t>("offset"));
//   }
//
// Every instance owns one store; a state is a list of elements of type V (which needs a
// weir::Serde<V>) and has a redistribution mode, used when a job restores at another parallelism:
//   - split (getOperatorListState): the elements of all subtasks are pooled and split evenly, in
//     contiguous runs, among the new subtasks; each element goes to exactly one of them;
//   - union (getUnionListState): every new subtask gets the elements of all old subtasks.
// At an unchanged parallelism every subtask gets its own elements back.
//
// Registering a name twice returns the same state; the same name with another element type or
// another mode is a std::invalid_argument. Operator state has no time-to-live.
//
// Checkpoints (the engine's side) call snapshot(), which serialises each state's elements one by
// one with Serde<V>, and restore() before the operator opens; a state registered after restore()
// starts with the restored elements. Restored states that the operator never registers again are
// kept and snapshotted as they are. redistributeOperatorState() computes the stores of a new
// parallelism from the snapshots of the old one; encodeOperatorState()/decodeOperatorState() turn
// one subtask's snapshot into bytes and back.
//
// A store is used by its task thread only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weir/serde.h"
#include "weir/state.h"

namespace weir::detail {

// How a state's elements are redistributed when the parallelism changes (see above).
enum class OperatorStateMode : std::uint8_t { kSplitDistribute, kUnion };

inline const char* operatorStateModeName(OperatorStateMode mode) {
  return mode == OperatorStateMode::kUnion ? "union list state" : "list state";
}

// One state of one subtask, serialised: its name, mode, and each element's Serde<V> bytes.
struct OperatorStateSnapshot {
  std::string name;
  OperatorStateMode mode = OperatorStateMode::kSplitDistribute;
  std::vector<std::string> elements;
  bool operator==(const OperatorStateSnapshot&) const = default;
  WEIR_SERDE_FIELDS(name, mode, elements)
};

// What the store holds, for listing.
struct OperatorStateInfo {
  std::string name;
  OperatorStateMode mode = OperatorStateMode::kSplitDistribute;
  std::size_t size = 0;     // number of elements
  bool registered = false;  // false: restored, not (yet) registered by the operator
};

// A registered state, whatever its element type.
class OperatorStateBase {
 public:
  OperatorStateBase(std::string name, OperatorStateMode mode)
      : name_(std::move(name)), mode_(mode) {}
  virtual ~OperatorStateBase() = default;
  const std::string& name() const { return name_; }
  OperatorStateMode mode() const { return mode_; }
  virtual std::size_t size() const = 0;
  // Each element's Serde bytes, in list order.
  virtual std::vector<std::string> serialize() const = 0;
  // Replaces the elements with the decoded `elements`; throws std::runtime_error on malformed
  // bytes (and then keeps the previous elements).
  virtual void deserialize(const std::vector<std::string>& elements) = 0;

 private:
  std::string name_;
  OperatorStateMode mode_;
};

template <class V>
class OperatorListState final : public ListState<V>, public OperatorStateBase {
 public:
  using OperatorStateBase::OperatorStateBase;

  const std::vector<V>& get() override { return elements_; }
  void add(const V& value) override { elements_.push_back(value); }
  void addAll(const std::vector<V>& values) override {
    elements_.insert(elements_.end(), values.begin(), values.end());
  }
  void update(const std::vector<V>& values) override {
    if (&values != &elements_) elements_.assign(values.begin(), values.end());
  }
  void clear() override { elements_.clear(); }

  std::size_t size() const override { return elements_.size(); }

  std::vector<std::string> serialize() const override {
    std::vector<std::string> out;
    out.reserve(elements_.size());
    for (const V& v : elements_) {
      std::string bytes(Serde<V>::size(v), '\0');
      Serde<V>::write(v, reinterpret_cast<std::uint8_t*>(bytes.data()));
      out.push_back(std::move(bytes));
    }
    return out;
  }

  void deserialize(const std::vector<std::string>& elements) override {
    std::vector<V> decoded(elements.size());
    for (std::size_t i = 0; i < elements.size(); ++i) {
      const auto* begin = reinterpret_cast<const std::uint8_t*>(elements[i].data());
      const auto* end = begin + elements[i].size();
      if (Serde<V>::read(begin, end, decoded[i]) != end) {
        throw std::runtime_error("operator state '" + name() + "': element " + std::to_string(i) +
                                 " of " + std::to_string(elements.size()) +
                                 " does not decode as this state's element type");
      }
    }
    elements_ = std::move(decoded);
  }

 private:
  std::vector<V> elements_;
};

class OperatorStateStore {
 public:
  // The state named descriptor.name, created empty (or with its restored elements) on first use.
  template <class V>
  ListState<V>& getListState(const ListStateDescriptor<V>& descriptor, OperatorStateMode mode) {
    static_assert(Serializable<V>,
                  "operator state elements need a weir::Serde<V>: use a trivially copyable type, "
                  "a standard container, or a struct with WEIR_SERDE_FIELDS");
    const std::string& name = descriptor.name;
    if (descriptor.ttl.enabled()) {
      throw std::invalid_argument("operator state '" + name +
                                  "': time-to-live is only available for keyed state");
    }
    if (auto it = states_.find(name); it != states_.end()) {
      auto* typed = dynamic_cast<OperatorListState<V>*>(it->second.get());
      if (typed == nullptr) {
        throw std::invalid_argument("operator state '" + name +
                                    "' is already registered with another element type");
      }
      checkMode(name, it->second->mode(), mode, "registered");
      return *typed;
    }
    auto state = std::make_unique<OperatorListState<V>>(name, mode);
    if (auto it = pending_.find(name); it != pending_.end()) {
      checkMode(name, it->second.mode, mode, "restored");
      state->deserialize(it->second.elements);
      pending_.erase(it);
    }
    auto& ref = *state;
    states_.emplace(name, std::move(state));
    return ref;
  }

  // Every state, registered or only restored, by name.
  std::vector<OperatorStateInfo> states() const {
    std::vector<OperatorStateInfo> out;
    for (const auto& [name, s] : states_)
      out.push_back({name, s->mode(), s->size(), true});
    for (const auto& [name, p] : pending_)
      out.push_back({name, p.mode, p.elements.size(), false});
    std::sort(out.begin(), out.end(), [](const OperatorStateInfo& a, const OperatorStateInfo& b) {
      return a.name < b.name;
    });
    return out;
  }

  // A copy of every state's elements, serialised, by name.
  std::vector<OperatorStateSnapshot> snapshot() const {
    std::vector<OperatorStateSnapshot> out;
    for (const auto& [name, s] : states_)
      out.push_back({name, s->mode(), s->serialize()});
    for (const auto& [name, p] : pending_)
      out.push_back(p);
    std::sort(out.begin(), out.end(),
              [](const OperatorStateSnapshot& a, const OperatorStateSnapshot& b) {
                return a.name < b.name;
              });
    return out;
  }

  // Restores a snapshot (usually before the operator opens). A registered state of the same name
  // gets the restored elements now (its mode must match); the others get them on registration.
  // Throws std::invalid_argument for a name given twice or a mode that does not match, and
  // std::runtime_error for elements that do not decode; the store is unchanged then.
  void restore(const std::vector<OperatorStateSnapshot>& snapshots) {
    std::map<std::string, const OperatorStateSnapshot*> by_name;
    for (const auto& s : snapshots) {
      if (!by_name.emplace(s.name, &s).second) {
        throw std::invalid_argument("operator state '" + s.name + "' is restored twice");
      }
      if (auto it = states_.find(s.name); it != states_.end()) {
        checkMode(s.name, s.mode, it->second->mode(), "restored");
      }
    }
    // A registered state that fails to decode leaves every state as it was.
    std::vector<std::pair<OperatorStateBase*, std::vector<std::string>>> backups;
    try {
      for (const auto& [name, s] : by_name) {
        auto it = states_.find(name);
        if (it == states_.end()) continue;
        backups.emplace_back(it->second.get(), it->second->serialize());
        it->second->deserialize(s->elements);
      }
    } catch (...) {
      for (auto& [state, bytes] : backups)
        state->deserialize(bytes);
      throw;
    }
    pending_.clear();
    for (const auto& [name, s] : by_name) {
      if (states_.count(name) == 0) pending_.emplace(name, *s);
    }
    restored_ = true;
  }

  // Whether restore() was called: the operator resumes from a checkpoint rather than starting
  // fresh (its states may still be empty, e.g. at a new subtask after scaling out).
  bool isRestored() const { return restored_; }

 private:
  static void checkMode(const std::string& name, OperatorStateMode existing,
                        OperatorStateMode requested, const char* how) {
    if (existing == requested) return;
    throw std::invalid_argument("operator state '" + name + "' is " + how + " as " +
                                operatorStateModeName(existing) + "; it cannot be used as " +
                                operatorStateModeName(requested));
  }

  std::map<std::string, std::unique_ptr<OperatorStateBase>> states_;
  std::map<std::string, OperatorStateSnapshot> pending_;  // restored, not registered yet
  bool restored_ = false;
};

// The stores of `new_parallelism` subtasks restored from the snapshots of the old subtasks
// (`old_subtasks[i]` is subtask i's). At an unchanged parallelism everything stays where it was.
// Otherwise each state (by name, over all old subtasks, which must agree on its mode) is pooled in
// subtask order; split states are cut into contiguous runs whose sizes differ by at most one (the
// first subtasks get the longer runs), union states go whole to every subtask. Every new subtask
// gets an entry for every state, possibly empty.
inline std::vector<std::vector<OperatorStateSnapshot>> redistributeOperatorState(
    const std::vector<std::vector<OperatorStateSnapshot>>& old_subtasks, int new_parallelism) {
  if (new_parallelism < 1) throw std::invalid_argument("redistributing to parallelism < 1");
  if (old_subtasks.size() == static_cast<std::size_t>(new_parallelism)) return old_subtasks;
  std::map<std::string, OperatorStateSnapshot> pooled;
  for (const auto& subtask : old_subtasks) {
    for (const auto& s : subtask) {
      auto [it, fresh] = pooled.try_emplace(s.name, OperatorStateSnapshot{s.name, s.mode, {}});
      if (!fresh && it->second.mode != s.mode) {
        throw std::invalid_argument("operator state '" + s.name +
                                    "' is union list state in one subtask and list state in "
                                    "another");
      }
      it->second.elements.insert(it->second.elements.end(), s.elements.begin(), s.elements.end());
    }
  }
  const auto p = static_cast<std::size_t>(new_parallelism);
  std::vector<std::vector<OperatorStateSnapshot>> out(p);
  for (const auto& [name, all] : pooled) {
    if (all.mode == OperatorStateMode::kUnion) {
      for (auto& subtask : out)
        subtask.push_back(all);
      continue;
    }
    const std::size_t n = all.elements.size();
    std::size_t begin = 0;
    for (std::size_t i = 0; i < p; ++i) {
      const std::size_t len = n / p + (i < n % p ? 1 : 0);
      OperatorStateSnapshot part{name, all.mode, {}};
      part.elements.assign(all.elements.begin() + static_cast<std::ptrdiff_t>(begin),
                           all.elements.begin() + static_cast<std::ptrdiff_t>(begin + len));
      out[i].push_back(std::move(part));
      begin += len;
    }
  }
  return out;
}

// One subtask's operator state as bytes (for a checkpoint file), and back.
inline constexpr std::uint32_t kOperatorStateFormatVersion = 1;

inline std::string encodeOperatorState(const std::vector<OperatorStateSnapshot>& states) {
  using Encoded = std::pair<std::uint32_t, std::vector<OperatorStateSnapshot>>;
  const Encoded v{kOperatorStateFormatVersion, states};
  std::string bytes(Serde<Encoded>::size(v), '\0');
  Serde<Encoded>::write(v, reinterpret_cast<std::uint8_t*>(bytes.data()));
  return bytes;
}

// Throws std::runtime_error when `bytes` are not an encoding of this version.
inline std::vector<OperatorStateSnapshot> decodeOperatorState(std::string_view bytes) {
  using Encoded = std::pair<std::uint32_t, std::vector<OperatorStateSnapshot>>;
  Encoded v;
  const auto* begin = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const auto* end = begin + bytes.size();
  const std::uint8_t* at = Serde<Encoded>::read(begin, end, v);
  if (at != end || v.first != kOperatorStateFormatVersion) {
    throw std::runtime_error("operator state bytes are malformed or of another format version");
  }
  for (const auto& s : v.second) {
    if (s.mode != OperatorStateMode::kSplitDistribute && s.mode != OperatorStateMode::kUnion) {
      throw std::runtime_error("operator state '" + s.name + "' has an unknown mode");
    }
  }
  return std::move(v.second);
}

}  // namespace weir::detail
