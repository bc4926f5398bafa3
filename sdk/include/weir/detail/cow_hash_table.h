// A hash table that can be frozen at a moment in O(1) and read on another thread while the task
// goes on changing it, copying only what changes: the per-key-group tables of the heap backend
// (keys, state cells, timers).
//
// Open addressing (linear probing) over slots that point to nodes; a node holds one value and the
// table version it was made in, and never moves. The slots are cut into chunks of up to 512 (4 KiB)
// reached through a directory, and each chunk carries the version it was made in too. freeze()
// shares the directory with the snapshot and starts a new version. While a snapshot may still be
// read, a change copies first what it would change and is older than the freeze: the directory
// (one pointer per chunk), the chunk of the slots it writes, and the node whose value it changes;
// so a change costs at most one node, one chunk and the directory, whatever the table's size. What
// the table lets go of meanwhile (replaced chunks and nodes, removed nodes) is handed to the frozen
// directory, which frees it when the last snapshot that can see it is released, on whichever
// thread releases it. Freezing allocates nothing. Growing relinks pointers into new chunks and
// copies no value. Once every snapshot is released, chunks and nodes change in place again.
//
// The table is used from one thread; a Snapshot may be read and released on another.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace weir::detail {

template <class Key, class Value, class KeyOf, class Hash>
class CowHashTable {
  struct Node {
    template <class... A>
    Node(std::size_t h, std::uint32_t v, A&&... args)
        : hash(h), version(v), value(std::forward<A>(args)...) {}
    std::size_t hash;
    std::uint32_t version;
    Value value;
  };
  struct Chunk {
    Node** slots;
    std::uint32_t version;
  };
  // The slot chunks. A frozen directory also keeps what its snapshot may still read though the
  // table let go of it, and the directory frozen after it (whose keepings its snapshot may read).
  struct Directory {
    Directory() = default;
    Directory(const Directory& o) : chunks(o.chunks) {}  // the chunks only
    Directory& operator=(const Directory&) = delete;
    ~Directory() {
      for (Node* n : old_nodes)
        delete n;
      for (Node** c : old_chunks)
        delete[] c;
    }
    std::vector<Chunk> chunks;
    std::vector<Node*> old_nodes;
    std::vector<Node**> old_chunks;
    std::shared_ptr<Directory> newer;
  };

  static constexpr int kMaxChunkBits = 9;

  // Where slot i is: chunk i >> bits, offset i & ((1 << bits) - 1).
  struct Layout {
    std::size_t capacity = 0;
    int bits = 0;  // log2 of the chunk size
    Node* at(const Chunk* chunks, std::size_t i) const {
      return chunks[i >> bits].slots[i & ((std::size_t{1} << bits) - 1)];
    }
  };

 public:
  // Visits the values of a directory's slots.
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Value;
    using difference_type = std::ptrdiff_t;
    using pointer = const Value*;
    using reference = const Value&;

    Iterator() = default;
    Iterator(const Chunk* chunks, Layout layout, std::size_t i)
        : chunks_(chunks), layout_(layout), i_(i) {
      skip();
    }
    reference operator*() const { return layout_.at(chunks_, i_)->value; }
    pointer operator->() const { return &**this; }
    Iterator& operator++() {
      ++i_;
      skip();
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    void skip() {
      while (i_ < layout_.capacity && layout_.at(chunks_, i_) == nullptr)
        ++i_;
    }
    const Chunk* chunks_ = nullptr;
    Layout layout_;
    std::size_t i_ = 0;
  };

  // The table's values as they were at a freeze(); its reads need nothing from the table's thread.
  class Snapshot {
   public:
    Snapshot() = default;
    std::size_t size() const { return size_; }
    Iterator begin() const { return Iterator(chunks(), layout_, 0); }
    Iterator end() const { return Iterator(chunks(), layout_, layout_.capacity); }

   private:
    friend class CowHashTable;
    Snapshot(std::shared_ptr<const Directory> dir, Layout layout, std::size_t size)
        : dir_(std::move(dir)), layout_(layout), size_(size) {}
    const Chunk* chunks() const { return dir_ ? dir_->chunks.data() : nullptr; }

    std::shared_ptr<const Directory> dir_;
    Layout layout_;
    std::size_t size_ = 0;
  };

  CowHashTable() = default;
  CowHashTable(const CowHashTable&) = delete;
  CowHashTable& operator=(const CowHashTable&) = delete;
  ~CowHashTable() {
    if (dir_ == nullptr) return;
    // What a snapshot may still read goes to the frozen directory (which may be this one).
    const std::shared_ptr<Directory> frozen = heldDirectory();
    for (std::size_t i = 0; i < layout_.capacity; ++i) {
      Node* n = slot(i);
      if (n == nullptr) continue;
      if (frozen != nullptr && n->version != version_) {
        keep(frozen->old_nodes, n);
      } else {
        delete n;
      }
    }
    for (const Chunk& c : dir_->chunks)
      dropChunk(frozen.get(), c);
  }

  std::size_t size() const { return size_; }
  Iterator begin() const { return Iterator(chunks_, layout_, 0); }
  Iterator end() const { return Iterator(chunks_, layout_, layout_.capacity); }

  // The value with key `k`, to read, or null.
  const Value* find(const Key& k) const {
    const std::size_t i = locate(k, hash_(k));
    return i == kNone ? nullptr : &slot(i)->value;
  }
  // The value with key `k`, to change (copied first if a snapshot may see it), or null.
  Value* findMutable(const Key& k) {
    const std::size_t i = locate(k, hash_(k));
    return i == kNone ? nullptr : &writable(i)->value;
  }
  // The value with key `k` to change, made from (k, args...) if absent; whether it was made.
  template <class... A>
  std::pair<Value*, bool> tryEmplace(const Key& k, A&&... args) {
    const std::size_t h = hash_(k);
    std::size_t i = locate(k, h);
    if (i != kNone) return {&writable(i)->value, false};
    if ((size_ + 1) * 4 > layout_.capacity * 3) grow();
    for (i = home(h); slot(i) != nullptr; i = (i + 1) & mask_) {
    }
    Node** at = &writableSlot(i);
    Node* n = nullptr;
    if constexpr (std::is_same_v<Key, Value>) {
      static_assert(sizeof...(A) == 0, "a set's values are their keys");
      n = new Node(h, version_, k);
    } else {
      n = new Node(h, version_, std::piecewise_construct, std::forward_as_tuple(k),
                   std::forward_as_tuple(std::forward<A>(args)...));
    }
    *at = n;
    ++size_;
    return {&n->value, true};
  }
  // Removes the value with key `k`; whether there was one.
  bool erase(const Key& k) {
    std::size_t hole = locate(k, hash_(k));
    if (hole == kNone) return false;
    Node* n = slot(hole);
    // Backward shift: a later value of the run moves into the hole when the hole lies between its
    // home slot and its slot.
    for (std::size_t j = (hole + 1) & mask_; slot(j) != nullptr; j = (j + 1) & mask_) {
      if (((j - home(slot(j)->hash)) & mask_) >= ((j - hole) & mask_)) {
        writableSlot(hole) = slot(j);
        hole = j;
      }
    }
    writableSlot(hole) = nullptr;
    --size_;
    if (n->version != version_ && held()) {
      retire(n);
    } else {
      delete n;
    }
    return true;
  }

  // The values as they are now. Later changes leave what this returns untouched.
  Snapshot freeze() {
    ++version_;
    if (size_ == 0) return Snapshot();  // nothing to keep
    if (std::shared_ptr<Directory> older = maybe_held_ ? frozen_.lock() : nullptr) {
      if (older != dir_) older->newer = dir_;
    }
    frozen_ = dir_;
    maybe_held_ = true;
    dir_shared_ = true;
    return Snapshot(dir_, layout_, size_);
  }

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};
  static constexpr std::size_t kMinCapacity = 8;

  Node* slot(std::size_t i) const { return layout_.at(chunks_, i); }
  // Fibonacci hashing: the slot from the hash's mixed high bits (key hashes of one key group
  // share their low bits).
  static std::size_t slotOf(std::size_t h, int shift) {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(h) * 0x9e3779b97f4a7c15ULL) >>
                                    shift);
  }
  std::size_t home(std::size_t h) const { return slotOf(h, shift_); }
  std::size_t locate(const Key& k, std::size_t h) const {
    if (size_ == 0) return kNone;
    for (std::size_t i = home(h);; i = (i + 1) & mask_) {
      const Node* n = slot(i);
      if (n == nullptr) return kNone;
      if (n->hash == h && KeyOf{}(n->value) == k) return i;
    }
  }
  // Whether a snapshot may still read what was made before the last freeze.
  bool held() {
    if (!maybe_held_) return false;
    // The table's own reference does not count while it still uses the frozen directory.
    if (frozen_.use_count() > (dir_shared_ ? 1 : 0)) return true;
    released();
    return false;
  }
  // The last frozen directory while a snapshot may read what it keeps, else null.
  std::shared_ptr<Directory> heldDirectory() {
    if (!held()) return nullptr;
    std::shared_ptr<Directory> frozen = frozen_.lock();
    if (frozen == nullptr) released();  // meanwhile
    return frozen;
  }
  // Every snapshot was released (with release order on the reading thread): their reads happen
  // before what follows.
  void released() {
    std::atomic_thread_fence(std::memory_order_acquire);
    maybe_held_ = false;
    frozen_.reset();
  }
  // Slot i, to change: its chunk (and the directory) copied first when a snapshot may read them.
  Node*& writableSlot(std::size_t i) {
    if (dir_shared_) {
      if (dir_.use_count() > 1) {
        setDirectory(std::make_shared<Directory>(*dir_), layout_);
      } else {
        released();
      }
      dir_shared_ = false;
    }
    Chunk& c = chunks_[i >> layout_.bits];
    const std::size_t n = std::size_t{1} << layout_.bits;
    if (c.version != version_) {
      if (const std::shared_ptr<Directory> frozen = heldDirectory()) {
        Node** copy = new Node*[n];
        std::copy(c.slots, c.slots + n, copy);
        keep(frozen->old_chunks, c.slots);
        c.slots = copy;
        c.version = version_;
      }
    }
    return c.slots[i & (n - 1)];
  }
  // The node at slot i, to change: copied first when a snapshot may read it.
  Node* writable(std::size_t i) {
    Node* n = slot(i);
    if (n->version == version_ || !held()) return n;
    Node*& at = writableSlot(i);
    Node* copy = new Node(n->hash, version_, std::as_const(n->value));
    at = copy;
    retire(n);
    return copy;
  }
  void retire(Node* n) {
    if (const std::shared_ptr<Directory> frozen = heldDirectory()) {
      keep(frozen->old_nodes, n);
    } else {
      delete n;
    }
  }
  // A chunk the table lets go of: to the frozen directory when a snapshot may read it.
  void dropChunk(Directory* frozen, const Chunk& c) {
    if (frozen != nullptr && c.version != version_) {
      keep(frozen->old_chunks, c.slots);
    } else {
      delete[] c.slots;
    }
  }
  template <class T>
  static void keep(std::vector<T>& into, T p) {
    try {
      into.push_back(p);
    } catch (...) {
      // Out of memory: a snapshot may still read it, so it is left allocated.
    }
  }
  void grow() {
    Layout layout;
    layout.capacity = layout_.capacity == 0 ? kMinCapacity : layout_.capacity * 2;
    layout.bits = std::min(std::countr_zero(layout.capacity), kMaxChunkBits);
    const std::size_t chunk = std::size_t{1} << layout.bits;
    auto dir = std::make_shared<Directory>();
    dir->chunks.reserve(layout.capacity / chunk);
    try {
      for (std::size_t c = 0; c < layout.capacity / chunk; ++c)
        dir->chunks.push_back(Chunk{new Node*[chunk](), version_});
    } catch (...) {
      for (const Chunk& c : dir->chunks)
        delete[] c.slots;
      throw;
    }
    const int shift = 64 - std::countr_zero(layout.capacity);
    const std::size_t mask = layout.capacity - 1;
    for (std::size_t i = 0; i < layout_.capacity; ++i) {
      Node* n = slot(i);
      if (n == nullptr) continue;
      std::size_t j = slotOf(n->hash, shift);
      while (layout.at(dir->chunks.data(), j) != nullptr)
        j = (j + 1) & mask;
      dir->chunks[j >> layout.bits].slots[j & (chunk - 1)] = n;
    }
    if (dir_ != nullptr) {
      const std::shared_ptr<Directory> frozen = heldDirectory();
      for (const Chunk& c : dir_->chunks)
        dropChunk(frozen.get(), c);
    }
    setDirectory(std::move(dir), layout);
    dir_shared_ = false;
  }
  void setDirectory(std::shared_ptr<Directory> dir, Layout layout) {
    dir_ = std::move(dir);
    chunks_ = dir_->chunks.data();
    layout_ = layout;
    mask_ = layout.capacity - 1;
    shift_ = 64 - std::countr_zero(layout.capacity);
  }

  std::shared_ptr<Directory> dir_;  // shared with snapshots until the next change
  Chunk* chunks_ = nullptr;         // dir_'s
  Layout layout_;
  std::size_t mask_ = 0;
  int shift_ = 64;
  std::size_t size_ = 0;
  std::uint32_t version_ = 0;  // freeze() calls; what is older existed at the last one
  std::weak_ptr<Directory> frozen_;  // the last freeze's directory
  bool maybe_held_ = false;  // frozen_ was set and not yet seen released
  bool dir_shared_ = false;  // dir_ is frozen_: freeze() handed it out since the last change
  [[no_unique_address]] Hash hash_;
};

template <class K, class V>
struct PairKey {
  const K& operator()(const std::pair<const K, V>& p) const { return p.first; }
};
struct SelfKey {
  template <class T>
  const T& operator()(const T& v) const {
    return v;
  }
};

template <class K, class V, class Hash>
using CowHashMap = CowHashTable<K, std::pair<const K, V>, PairKey<K, V>, Hash>;
template <class K, class Hash>
using CowHashSet = CowHashTable<K, K, SelfKey, Hash>;

}  // namespace weir::detail
