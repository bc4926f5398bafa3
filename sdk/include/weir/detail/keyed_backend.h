// The keyed state backend of one keyed operator instance: which key is current, and the named
// states registered by the operator and its user function.
//
// Heap backend: every key that holds state (or a timer) gets a small integer id in a key table
// partitioned by key group; state tables are keyed by (key id, namespace) and partitioned by key
// group too, so state is typed (no serialisation) and iterable per key group. A key's id is
// released when its last state entry and timer are gone, so the table does not grow with keys
// that come and go (session windows). Reads of a key that holds nothing never touch the table.
//
// Everything here runs on the task thread, except writing a frozen snapshot (frozen_state.h).
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weir/detail/frozen_state.h"
#include "weir/key_groups.h"
#include "weir/serde.h"
#include "weir/state.h"
#include "weir/task_api.h"

namespace weir {

// The namespace of state that is not scoped to a window.
struct VoidNamespace {
  bool operator==(const VoidNamespace&) const { return true; }
};

template <>
struct Serde<VoidNamespace> {
  static std::size_t size(const VoidNamespace&) { return 0; }
  static std::uint8_t* write(const VoidNamespace&, std::uint8_t* p) { return p; }
  static const std::uint8_t* read(const std::uint8_t* p, const std::uint8_t*, VoidNamespace&) {
    return p;
  }
};

namespace detail {

inline constexpr std::uint32_t kNoKeyId = std::numeric_limits<std::uint32_t>::max();

// Hash of namespaces and map-state user keys: a `hash()` member when the type has one, else the
// key hasher (value for integers and strings, Serde bytes otherwise).
template <class T>
struct ValueHash {
  std::size_t operator()(const T& v) const {
    if constexpr (std::is_same_v<T, VoidNamespace>) {
      return 0;
    } else if constexpr (requires { v.hash(); }) {
      return static_cast<std::size_t>(v.hash());
    } else {
      return static_cast<std::size_t>(hasher(v));
    }
  }
  mutable KeyHasher<T> hasher;
};

inline std::size_t hashCombine(std::size_t a, std::size_t b) {
  return a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
}

// Malformed key group snapshot bytes (truncated, corrupt, or of another version).
class SnapshotFormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Appends the Serde bytes of `v` to `out`.
template <class T>
void appendSerde(std::string& out, const T& v) {
  const std::size_t at = out.size();
  out.resize(at + Serde<T>::size(v));
  Serde<T>::write(v, reinterpret_cast<std::uint8_t*>(out.data() + at));
}

// Decodes `v` at `p`; throws SnapshotFormatError naming `what` when the bytes are bad.
template <class T>
const std::uint8_t* readSnapshot(const std::uint8_t* p, const std::uint8_t* end, T& v,
                                 const char* what) {
  const std::uint8_t* q = Serde<T>::read(p, end, v);
  if (q == nullptr || q > end) {
    throw SnapshotFormatError(std::string("key group snapshot is truncated or corrupt: bad ") +
                              what);
  }
  return q;
}

// A registered state, whatever its type; owned by the backend.
class StateHandle {
 public:
  virtual ~StateHandle() = default;
  // This state's entries as they are now, to be written per key group as self-delimiting bytes
  // (FrozenState::writeGroup) while the state goes on changing.
  virtual std::unique_ptr<FrozenState> freeze() {
    throw std::logic_error("keyed state '" + name +
                           "' cannot be snapshotted per key group by this backend");
  }
  // Adds the entries in [p, end) (from freeze()) of key group `kg` to the backend. The bytes
  // are checked before anything is applied; bad bytes throw SnapshotFormatError.
  virtual void restoreGroup(int kg, const std::uint8_t* p, const std::uint8_t* end) {
    (void)kg;
    (void)p;
    (void)end;
    throw std::logic_error("keyed state '" + name +
                           "' cannot be restored per key group by this backend");
  }
  StateKind kind = StateKind::kValue;
  const std::type_info* type = nullptr;  // the concrete implementation, to catch name clashes
  std::string name;
};

// Where the namespace of the next access comes from; defaults to the void namespace.
template <class N>
class NamespacedState : public StateHandle {
 public:
  void setNamespace(const N& ns) { ns_ = &ns; }
  const N& currentNamespace() const { return *ns_; }

 protected:
  static const N& defaultNamespace() {
    static const N kDefault{};
    return kDefault;
  }
  const N* ns_ = &defaultNamespace();
};

// What windows and triggers need beyond the public interfaces: the namespace, and merging the
// contents of several namespaces into one (merging windows).
template <class N, class V>
class InternalValueState : public NamespacedState<N>, public ValueState<V> {};

template <class N, class V>
class InternalListState : public NamespacedState<N>, public ListState<V> {
 public:
  virtual void mergeNamespaces(const N& target, const std::vector<N>& sources) = 0;
};

template <class N, class UK, class UV>
class InternalMapState : public NamespacedState<N>, public MapState<UK, UV> {};

template <class N, class V>
class InternalReducingState : public NamespacedState<N>, public ReducingState<V> {
 public:
  virtual void mergeNamespaces(const N& target, const std::vector<N>& sources) = 0;
};

template <class N, class In, class Acc, class Out>
class InternalAggregatingState : public NamespacedState<N>, public AggregatingState<In, Out> {
 public:
  virtual void mergeNamespaces(const N& target, const std::vector<N>& sources) = 0;
  // The accumulator of the current namespace, or null.
  virtual const Acc* accumulator() = 0;
};

class KeyedBackendBase {
 public:
  KeyedBackendBase(StateBackendKind kind, TaskEnvironment* env, KeyGroupRange range,
                   int max_parallelism)
      : kind_(kind), env_(env), range_(range), max_parallelism_(max_parallelism) {}
  virtual ~KeyedBackendBase() = default;
  KeyedBackendBase(const KeyedBackendBase&) = delete;
  KeyedBackendBase& operator=(const KeyedBackendBase&) = delete;

  StateBackendKind kind() const { return kind_; }
  KeyGroupRange range() const { return range_; }
  int maxParallelism() const { return max_parallelism_; }
  int currentKeyGroup() const { return current_kg_; }
  int groupIndex() const { return current_kg_ - range_.start; }
  std::int64_t processingTime() const { return env_ != nullptr ? env_->currentProcessingTime() : 0; }
  TaskEnvironment* env() const { return env_; }

  // The state registered under `name`, created by `make` on first use. Asking again with the same
  // name returns the same state; another kind or type under that name is an error.
  template <class S, class Make>
  S& registerState(const std::string& name, StateKind kind, Make make) {
    auto it = states_.find(name);
    if (it != states_.end()) {
      if (it->second->kind != kind || *it->second->type != typeid(S)) {
        throw std::invalid_argument("state '" + name + "' is already registered as " +
                                    stateKindName(it->second->kind) +
                                    " state of another type");
      }
      return static_cast<S&>(*it->second);
    }
    std::unique_ptr<S> state = make();
    state->kind = kind;
    state->type = &typeid(S);
    state->name = name;
    S& ref = *state;
    states_.emplace(name, std::move(state));
    applyPending(ref);
    return ref;
  }

  // Version of the bytes of HeapBackendBase::snapshotKeyGroup.
  static constexpr std::uint8_t kSnapshotVersion = 1;

  // Adds the states in `bytes` (from snapshotKeyGroup of key group `kg`, possibly of a backend
  // with another key group range) to this backend. States not registered yet are restored when
  // they are. The whole snapshot is checked for framing before any state is touched; each state
  // checks its own bytes before applying them.
  void restoreKeyGroup(int kg, std::span<const std::uint8_t> bytes) {
    checkGroup(kg);
    const std::uint8_t* p = bytes.data();
    const std::uint8_t* end = p + bytes.size();
    if (bytes.size() < sizeof(kSnapshotMagic) ||
        std::memcmp(p, kSnapshotMagic, sizeof(kSnapshotMagic)) != 0) {
      throw SnapshotFormatError("not a key group snapshot (bad magic)");
    }
    p += sizeof(kSnapshotMagic);
    std::uint8_t version = 0;
    p = readSnapshot(p, end, version, "version");
    if (version != kSnapshotVersion) {
      throw SnapshotFormatError("key group snapshot has version " + std::to_string(version) +
                                ", expected " + std::to_string(kSnapshotVersion));
    }
    std::int32_t snap_kg = 0;
    p = readSnapshot(p, end, snap_kg, "key group");
    if (snap_kg != kg) {
      throw SnapshotFormatError("key group snapshot is of key group " + std::to_string(snap_kg) +
                                ", not " + std::to_string(kg));
    }
    std::uint32_t n = 0;
    p = readSnapshot(p, end, n, "state count");
    struct Part {
      std::string name;
      StateKind kind;
      const std::uint8_t* begin;
      const std::uint8_t* end;
    };
    std::vector<Part> parts;
    for (std::uint32_t i = 0; i < n; ++i) {
      Part part{};
      p = readSnapshot(p, end, part.name, "state name");
      std::uint8_t kind = 0;
      p = readSnapshot(p, end, kind, "state kind");
      if (kind > static_cast<std::uint8_t>(StateKind::kAggregating)) {
        throw SnapshotFormatError("state '" + part.name + "' has an unknown kind in the snapshot");
      }
      part.kind = static_cast<StateKind>(kind);
      std::uint64_t len = 0;
      p = readSnapshot(p, end, len, "state length");
      if (len > static_cast<std::uint64_t>(end - p)) {
        throw SnapshotFormatError("key group snapshot is truncated: state '" + part.name + "'");
      }
      part.begin = p;
      part.end = p + len;
      p += len;
      parts.push_back(std::move(part));
    }
    if (p != end) throw SnapshotFormatError("key group snapshot has trailing bytes");
    for (const Part& part : parts) {
      auto it = states_.find(part.name);
      if (it == states_.end()) {
        pending_[part.name][kg] =
            Pending{part.kind, std::make_shared<const std::string>(part.begin, part.end)};
      } else {
        restoreInto(*it->second, part.kind, kg, part.begin, part.end);
      }
    }
  }
  // States restored but not registered yet.
  std::size_t numPendingStates() const { return pending_.size(); }

  // Around restoring (which moves the current key): remember the current key, and make it current
  // again afterwards.
  virtual void beforeRestore() {}
  virtual void afterRestore() {}

 protected:
  static constexpr char kSnapshotMagic[4] = {'W', 'K', 'G', 'S'};

  struct Pending {
    StateKind kind;
    std::shared_ptr<const std::string> bytes;  // shared with frozen snapshots
  };

  void checkGroup(int kg) const {
    if (!range_.contains(kg)) {
      throw std::out_of_range("key group " + std::to_string(kg) +
                              " is outside this backend's range");
    }
  }
  static void appendState(std::string& out, const std::string& name, StateKind kind,
                          const std::string& body) {
    appendSerde(out, name);
    appendSerde(out, static_cast<std::uint8_t>(kind));
    appendSerde(out, static_cast<std::uint64_t>(body.size()));
    out += body;
  }
  void restoreInto(StateHandle& state, StateKind kind, int kg, const std::uint8_t* p,
                   const std::uint8_t* end) {
    if (state.kind != kind) {
      throw std::invalid_argument("state '" + state.name + "' was snapshotted as " +
                                  stateKindName(kind) + " state but is registered as " +
                                  stateKindName(state.kind) + " state");
    }
    beforeRestore();
    try {
      state.restoreGroup(kg, p, end);
    } catch (const SnapshotFormatError& e) {
      afterRestore();
      throw SnapshotFormatError("state '" + state.name + "': " + e.what());
    } catch (...) {
      afterRestore();
      throw;
    }
    afterRestore();
  }
  void applyPending(StateHandle& state) {
    auto it = pending_.find(state.name);
    if (it == pending_.end()) return;
    std::map<int, Pending> groups = std::move(it->second);
    pending_.erase(it);
    for (const auto& [kg, pending] : groups) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(pending.bytes->data());
      restoreInto(state, pending.kind, kg, p, p + pending.bytes->size());
    }
  }

  StateBackendKind kind_;
  TaskEnvironment* env_;
  KeyGroupRange range_;
  int max_parallelism_;
  int current_kg_ = 0;
  std::map<std::string, std::unique_ptr<StateHandle>> states_;
  std::map<std::string, std::map<int, Pending>> pending_;  // by state name, key group
};

// The part of the heap backend that does not depend on the key type.
class HeapBackendBase : public KeyedBackendBase, public KeyWriter {
 public:
  using KeyedBackendBase::KeyedBackendBase;

  // Every state of the backend (restored, unregistered ones too) and its keys, frozen at a
  // checkpoint: writeKeyGroup gives, on any thread, the bytes snapshotKeyGroup gave then.
  class Frozen {
   public:
    std::string writeKeyGroup(int kg) const {
      if (!range_.contains(kg)) {
        throw std::out_of_range("key group " + std::to_string(kg) +
                                " is outside this backend's range");
      }
      const auto g = static_cast<std::size_t>(kg - range_.start);
      std::string out(kSnapshotMagic, sizeof(kSnapshotMagic));
      appendSerde(out, kSnapshotVersion);
      appendSerde(out, static_cast<std::int32_t>(kg));
      std::uint32_t n = 0;
      for (const auto& [name, pending] : pending_)
        n += pending.count(kg) != 0 ? 1 : 0;
      appendSerde(out, static_cast<std::uint32_t>(states_.size() + n));
      std::string body;
      for (const State& state : states_) {
        body.clear();
        state.entries->writeGroup(g, *keys_, body);
        appendState(out, state.name, state.kind, body);
      }
      for (const auto& [name, pending] : pending_) {
        auto it = pending.find(kg);
        if (it != pending.end()) appendState(out, name, it->second.kind, *it->second.bytes);
      }
      return out;
    }
    // The keys as they were, for timers frozen at the same moment.
    const KeyWriter& keys() const { return *keys_; }
    // Lets go of key group `kg` once it was written (timers included): see FrozenState::release.
    void releaseKeyGroup(int kg) {
      const auto g = static_cast<std::size_t>(kg - range_.start);
      for (State& state : states_)
        state.entries->release(g);
      keys_->release(g);
    }

   private:
    friend class HeapBackendBase;
    struct State {
      std::string name;
      StateKind kind;
      std::unique_ptr<FrozenState> entries;
    };
    KeyGroupRange range_;
    std::unique_ptr<FrozenKeys> keys_;
    std::vector<State> states_;  // by name
    std::map<std::string, std::map<int, Pending>> pending_;
  };

  // Quick (no entry is copied or serialised): see frozen_state.h. Throws when a state cannot be
  // snapshotted (a type without Serde).
  std::unique_ptr<Frozen> freeze() {
    auto frozen = std::make_unique<Frozen>();
    frozen->range_ = range_;
    for (const auto& [name, state] : states_)
      frozen->states_.push_back({name, state->kind, state->freeze()});
    frozen->pending_ = pending_;
    frozen->keys_ = freezeKeys();
    return frozen;
  }
  // Every registered state's entries of key group `kg` (in range), by state name; restored states
  // that have not been registered yet are carried over as they were.
  std::string snapshotKeyGroup(int kg) {
    checkGroup(kg);
    return freeze()->writeKeyGroup(kg);
  }

  // The current key's id, or kNoKeyId when it holds nothing yet.
  std::uint32_t currentKeyId() const { return current_id_; }
  // The current key's id, entering the key into the table if needed.
  std::uint32_t materializeCurrentKey() {
    if (current_id_ == kNoKeyId) current_id_ = insertCurrentKey();
    return current_id_;
  }
  // One more / one fewer state entry or timer held by key `id`; the key leaves the table with its
  // last one.
  void ref(std::uint32_t id) { ++refs_[id]; }
  void unref(std::uint32_t id) {
    if (--refs_[id] == 0) {
      eraseKey(id);
      free_ids_.push_back(id);
      if (id == current_id_) current_id_ = kNoKeyId;
    }
  }
  // Keys holding state or timers.
  std::size_t numKeys() const { return refs_.size() - free_ids_.size(); }

  // Snapshots: whether the key type has a Serde; (writeKey) appends the key with id `id`; decodes
  // a key of key group `kg` at `p` (checking its group) and, with `enter`, makes it the current key.
  virtual bool keySerializable() const = 0;
  virtual const std::uint8_t* readKey(int kg, const std::uint8_t* p, const std::uint8_t* end,
                                      bool enter) = 0;

 protected:
  std::uint32_t allocateId() {
    if (!free_ids_.empty()) {
      const std::uint32_t id = free_ids_.back();
      free_ids_.pop_back();
      return id;
    }
    refs_.push_back(0);
    return static_cast<std::uint32_t>(refs_.size() - 1);
  }
  virtual std::uint32_t insertCurrentKey() = 0;
  virtual void eraseKey(std::uint32_t id) = 0;
  // The key ids as they are now, for a frozen snapshot.
  virtual std::unique_ptr<FrozenKeys> freezeKeys() = 0;

  std::uint32_t current_id_ = kNoKeyId;
  std::vector<std::uint32_t> refs_;  // by key id
  std::vector<std::uint32_t> free_ids_;
};

template <class K>
class HeapKeyedBackend final : public HeapBackendBase {
 public:
  HeapKeyedBackend(TaskEnvironment* env, KeyGroupRange range, int max_parallelism)
      : HeapBackendBase(StateBackendKind::kHeap, env, range, max_parallelism),
        groups_(static_cast<std::size_t>(std::max(range.size(), 0))) {}
  HeapKeyedBackend(const HeapKeyedBackend&) = delete;
  HeapKeyedBackend& operator=(const HeapKeyedBackend&) = delete;

  // Makes `key` (in key group `kg`, which the caller checked is in range) the current key. The
  // key is copied only if state is written for it.
  void setCurrentKey(const K& key, int kg) {
    current_kg_ = kg;
    current_key_ = &key;
    const auto* e = groups_.read(static_cast<std::size_t>(kg - range_.start)).find(key);
    current_id_ = e == nullptr ? kNoKeyId : e->second;
  }
  // Makes the key with table id `id` current (timers).
  void setCurrentKeyById(std::uint32_t id) {
    const Entry& e = entries_[id];
    current_kg_ = e.kg;
    current_key_ = &e.key;
    current_id_ = id;
  }
  const K& currentKey() const { return *current_key_; }

  bool keySerializable() const override { return Serializable<K>; }
  void writeKey(std::uint32_t id, std::string& out) const override {
    if constexpr (Serializable<K>) {
      appendSerde(out, entries_[id].key);
    } else {
      (void)id;
      (void)out;
      throw std::logic_error("the key type has no weir::Serde");
    }
  }
  const std::uint8_t* readKey(int kg, const std::uint8_t* p, const std::uint8_t* end,
                              bool enter) override {
    if constexpr (Serializable<K>) {
      p = readSnapshot(p, end, restore_key_, "key");
      if (weir::keyGroupOf(restore_key_, max_parallelism_) != kg) {
        throw SnapshotFormatError("a key in the snapshot does not belong to key group " +
                                  std::to_string(kg));
      }
      if (enter) setCurrentKey(restore_key_, kg);
      return p;
    } else {
      (void)kg;
      (void)p;
      (void)end;
      (void)enter;
      throw std::logic_error("the key type has no weir::Serde");
    }
  }
  const K& keyOf(std::uint32_t id) const { return entries_[id].key; }
  int keyGroupOf(std::uint32_t id) const { return entries_[id].kg; }

  // Every key of key group `kg` holding state or timers, with its id.
  template <class F>
  void forEachKey(int kg, F&& f) const {
    for (const auto& [key, id] : groups_.read(static_cast<std::size_t>(kg - range_.start)))
      f(key, id);
  }

  void beforeRestore() override {
    saved_kg_ = current_kg_;
    saved_key_ = current_key_;
    saved_id_ = current_id_;
  }
  void afterRestore() override {
    if (saved_key_ != nullptr && range_.contains(saved_kg_)) {
      setCurrentKey(*saved_key_, saved_kg_);  // the key may have entered the table
    } else {
      current_kg_ = saved_kg_;
      current_key_ = saved_key_;
      current_id_ = saved_id_;
    }
  }

 private:
  struct Entry {
    K key{};
    int kg = 0;
  };

  std::uint32_t insertCurrentKey() override {
    const std::uint32_t id = allocateId();
    if (entries_.size() <= id) entries_.resize(id + 1);  // a deque: earlier entries stay put
    entries_[id].key = *current_key_;
    entries_[id].kg = current_kg_;
    const auto g = static_cast<std::size_t>(current_kg_ - range_.start);
    groups_.write(g).tryEmplace(*current_key_, id);
    current_key_ = &entries_[id].key;
    return id;
  }
  void eraseKey(std::uint32_t id) override {
    Entry& e = entries_[id];
    groups_.write(static_cast<std::size_t>(e.kg - range_.start)).erase(e.key);
    if (current_key_ == &e.key) {
      // The record's key stays readable for the rest of the call.
      scratch_key_ = e.key;
      current_key_ = &scratch_key_;
    }
  }

  using KeyMap = CowHashMap<K, std::uint32_t, ValueHash<K>>;

  // The key of each id as frozen; the index from ids to keys is built on first use, on the thread
  // that writes the snapshot, before any group is released. Ids of a released group are not asked
  // for again (their entries were written), so their dangling index slots are never read.
  class FrozenKeyMaps final : public FrozenKeys {
   public:
    FrozenKeyMaps(typename CowGroups<KeyMap>::Frozen groups, std::size_t num_ids)
        : groups_(std::move(groups)), num_ids_(num_ids) {}
    void release(std::size_t g) override {
      std::call_once(indexed_, [this] { index(); });
      groups_[g].reset();
    }
    void writeKey(std::uint32_t id, std::string& out) const override {
      if constexpr (Serializable<K>) {
        std::call_once(indexed_, [this] { index(); });
        if (id >= by_id_.size() || by_id_[id] == nullptr) {
          throw std::logic_error("a snapshot entry refers to key id " + std::to_string(id) +
                                 ", which has no key");
        }
        appendSerde(out, *by_id_[id]);
      } else {
        (void)id;
        (void)out;
        throw std::logic_error("the key type has no weir::Serde");
      }
    }

   private:
    void index() const {
      by_id_.assign(num_ids_, nullptr);
      for (const auto& group : groups_) {
        for (const auto& [key, key_id] : *group)
          by_id_[key_id] = &key;
      }
    }

    typename CowGroups<KeyMap>::Frozen groups_;
    std::size_t num_ids_;
    mutable std::once_flag indexed_;
    mutable std::vector<const K*> by_id_;
  };
  std::unique_ptr<FrozenKeys> freezeKeys() override {
    return std::make_unique<FrozenKeyMaps>(groups_.freeze(), refs_.size());
  }

  CowGroups<KeyMap> groups_;  // by key group: key -> id
  std::deque<Entry> entries_;  // by key id
  const K* current_key_ = nullptr;
  K scratch_key_{};
  K restore_key_{};
  int saved_kg_ = 0;
  const K* saved_key_ = nullptr;
  std::uint32_t saved_id_ = kNoKeyId;
};

}  // namespace detail
}  // namespace weir
