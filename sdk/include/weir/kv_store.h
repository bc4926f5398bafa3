// The engine's key-value store for keyed state kept as bytes (the RocksDB state backend). Part of
// the plugin boundary: the SDK's typed state serialises keys and values with Serde<T> and calls
// this interface; the engine implements it over RocksDB. Every method is noexcept and reports
// failures as a Status.
//
// Layout chosen by the SDK (the engine treats keys as opaque bytes, ordered bytewise):
//   key = key group (u16, big endian) ‖ serialised key ‖ serialised namespace ‖ [user key]
// so the state of one key group, or of a range of key groups, is one contiguous scan.
//
// Concurrency: a store belongs to one subtask of one operator and is used only by its task thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "weir/status.h"

namespace weir {

enum class StateBackendKind : std::uint8_t { kHeap = 0, kRocksDb = 1 };

inline const char* stateBackendName(StateBackendKind k) {
  return k == StateBackendKind::kRocksDb ? "rocksdb" : "heap";
}

// A view of bytes owned by someone else.
struct KvSlice {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  KvSlice() = default;
  KvSlice(const std::uint8_t* d, std::size_t n) : data(d), size(n) {}
  KvSlice(std::string_view s)  // NOLINT(google-explicit-constructor): views convert freely
      : data(reinterpret_cast<const std::uint8_t*>(s.data())), size(s.size()) {}
  std::string_view view() const { return {reinterpret_cast<const char*>(data), size}; }
};

// Walks the entries of one column in key order. key() and value() stay valid until the next call
// to next() or the iterator's destruction. Must not outlive its store.
class KvIterator {
 public:
  virtual ~KvIterator() = default;
  virtual bool valid() const noexcept = 0;
  virtual void next() noexcept = 0;
  virtual KvSlice key() const noexcept = 0;
  virtual KvSlice value() const noexcept = 0;
  // Why iteration stopped early (ok when it simply reached the end).
  virtual Status status() const noexcept = 0;
};

class KvStore {
 public:
  virtual ~KvStore() = default;
  // The column (a RocksDB column family) holding one named state; created empty on first use.
  // Column ids are small non-negative integers, stable for the store's life.
  virtual Status openColumn(const std::string& name, int& column) noexcept = 0;
  // Reads `key`; `found` says whether it exists. `value` is overwritten (its capacity reused).
  virtual Status get(int column, KvSlice key, std::string& value, bool& found) noexcept = 0;
  virtual Status put(int column, KvSlice key, KvSlice value) noexcept = 0;
  // Appends `value` to the bytes stored under `key` (as put when absent), without reading them:
  // list state adds self-delimiting elements this way.
  virtual Status append(int column, KvSlice key, KvSlice value) noexcept = 0;
  virtual Status remove(int column, KvSlice key) noexcept = 0;
  // Entries with begin <= key < end, in bytewise order; an empty `end` means no upper bound.
  virtual Status scan(int column, KvSlice begin, KvSlice end,
                      std::unique_ptr<KvIterator>& out) noexcept = 0;
};

}  // namespace weir
