// Serde<T>: the binary encoding of records where they cross a task boundary or persist.
//
// Inside a chain records travel as C++ objects and are never serialised. Serde is used only at the
// edges: network/in-memory exchanges between tasks and (later) state snapshots.
//
// Supported out of the box:
//   * trivially copyable types (copied byte for byte; the encoding is the host's representation)
//   * std::string, std::vector<T>, std::optional<T>, std::pair, std::tuple, std::array,
//     std::map / std::unordered_map
//   * user structs that list their fields with WEIR_SERDE_FIELDS(a, b, c) inside the struct body
//   * anything else with an explicit specialisation of weir::Serde<T> providing the three functions
//     below.
//
// The contract of a Serde<T> specialisation:
//   static std::size_t size(const T& v);            exact number of bytes write() will produce
//   static std::uint8_t* write(const T& v, std::uint8_t* out);    writes size(v) bytes, returns end
//   static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end, T& out);
//       decodes one value into `out` (reusing its capacity where it can); returns the position
//       after it, or nullptr when the bytes are truncated or malformed. It never reads past `end`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

// Lists a struct's fields for Serde, key hashing and printing. Place inside the struct body:
//   struct Click { std::string user; int64_t ts; WEIR_SERDE_FIELDS(user, ts) };
#define WEIR_SERDE_FIELDS(...)                    \
  auto weirFields() {                             \
    return std::tie(__VA_ARGS__);                 \
  }                                               \
  auto weirFields() const {                       \
    return std::tie(__VA_ARGS__);                 \
  }                                               \
  static constexpr const char* weirFieldNames() { \
    return #__VA_ARGS__;                          \
  }

namespace weir {

// Not defined for T: the Serializable concept below is false, and the job builder stops with a
// readable static_assert naming the accepted record types.
template <class T, class Enable = void>
struct Serde {
  static constexpr bool kUndefined = true;
};

namespace serde_detail {

template <class T>
concept HasFields = requires(const T& v) {
  v.weirFields();
};

template <class T>
struct IsStdContainer : std::false_type {};
template <class A, class B>
struct IsStdContainer<std::pair<A, B>> : std::true_type {};
template <class... Ts>
struct IsStdContainer<std::tuple<Ts...>> : std::true_type {};
template <class T, std::size_t N>
struct IsStdContainer<std::array<T, N>> : std::true_type {};
template <class T>
struct IsStdContainer<std::optional<T>> : std::true_type {};

template <class T>
concept Raw = std::is_trivially_copyable_v<T> && !HasFields<T> && !IsStdContainer<T>::value &&
              !std::is_pointer_v<T> && !std::is_member_pointer_v<T>;

inline std::size_t varintSize(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

inline std::uint8_t* writeVarint(std::uint64_t v, std::uint8_t* out) {
  while (v >= 0x80) {
    *out++ = static_cast<std::uint8_t>(v) | 0x80;
    v >>= 7;
  }
  *out++ = static_cast<std::uint8_t>(v);
  return out;
}

inline const std::uint8_t* readVarint(const std::uint8_t* in, const std::uint8_t* end,
                                      std::uint64_t& v) {
  std::uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in == end) return nullptr;
    const std::uint8_t byte = *in++;
    result |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      if (shift == 63 && byte > 1) return nullptr;  // overflows 64 bits
      v = result;
      return in;
    }
  }
  return nullptr;
}

// Reads a length prefix and checks that `min_bytes_each * n` bytes can possibly follow, so a
// corrupt length never causes a huge allocation.
inline const std::uint8_t* readLength(const std::uint8_t* in, const std::uint8_t* end,
                                      std::size_t min_bytes_each, std::size_t& n) {
  std::uint64_t v = 0;
  in = readVarint(in, end, v);
  if (in == nullptr) return nullptr;
  const auto remaining = static_cast<std::uint64_t>(end - in);
  if (min_bytes_each > 0 && v > remaining / min_bytes_each) return nullptr;
  n = static_cast<std::size_t>(v);
  return in;
}

// Smallest number of bytes one encoded T can take: bounds element counts read from the wire.
template <class T>
constexpr std::size_t minEncodedSize() {
  if constexpr (Raw<T>) {
    return sizeof(T) == 0 ? 1 : sizeof(T);
  } else {
    return 1;
  }
}

}  // namespace serde_detail

template <class T>
requires serde_detail::Raw<T>
struct Serde<T> {
  static std::size_t size(const T&) { return sizeof(T); }
  static std::uint8_t* write(const T& v, std::uint8_t* out) {
    std::memcpy(out, &v, sizeof(T));
    return out + sizeof(T);
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end, T& out) {
    if (static_cast<std::size_t>(end - in) < sizeof(T)) return nullptr;
    std::memcpy(&out, in, sizeof(T));
    return in + sizeof(T);
  }
};

template <>
struct Serde<std::string> {
  static std::size_t size(const std::string& v) {
    return serde_detail::varintSize(v.size()) + v.size();
  }
  static std::uint8_t* write(const std::string& v, std::uint8_t* out) {
    out = serde_detail::writeVarint(v.size(), out);
    std::memcpy(out, v.data(), v.size());
    return out + v.size();
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end,
                                  std::string& out) {
    std::size_t n = 0;
    in = serde_detail::readLength(in, end, 1, n);
    if (in == nullptr) return nullptr;
    out.assign(reinterpret_cast<const char*>(in), n);
    return in + n;
  }
};

template <class T, class A>
struct Serde<std::vector<T, A>> {
  static std::size_t size(const std::vector<T, A>& v) {
    std::size_t n = serde_detail::varintSize(v.size());
    if constexpr (serde_detail::Raw<T>) {
      n += v.size() * sizeof(T);
    } else {
      for (const auto& e : v)
        n += Serde<T>::size(e);
    }
    return n;
  }
  static std::uint8_t* write(const std::vector<T, A>& v, std::uint8_t* out) {
    out = serde_detail::writeVarint(v.size(), out);
    if constexpr (serde_detail::Raw<T> && !std::is_same_v<T, bool>) {
      if (!v.empty()) std::memcpy(out, v.data(), v.size() * sizeof(T));
      return out + v.size() * sizeof(T);
    } else {
      for (const auto& e : v)
        out = Serde<T>::write(e, out);
      return out;
    }
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end,
                                  std::vector<T, A>& out) {
    std::size_t n = 0;
    in = serde_detail::readLength(in, end, serde_detail::minEncodedSize<T>(), n);
    if (in == nullptr) return nullptr;
    out.resize(n);
    if constexpr (serde_detail::Raw<T> && !std::is_same_v<T, bool>) {
      if (n > 0) std::memcpy(out.data(), in, n * sizeof(T));
      return in + n * sizeof(T);
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<T, bool>) {
          bool b = false;
          in = Serde<bool>::read(in, end, b);
          if (in == nullptr) return nullptr;
          out[i] = b;
        } else {
          in = Serde<T>::read(in, end, out[i]);
          if (in == nullptr) return nullptr;
        }
      }
      return in;
    }
  }
};

template <class T>
struct Serde<std::optional<T>> {
  static std::size_t size(const std::optional<T>& v) { return 1 + (v ? Serde<T>::size(*v) : 0); }
  static std::uint8_t* write(const std::optional<T>& v, std::uint8_t* out) {
    *out++ = v ? 1 : 0;
    return v ? Serde<T>::write(*v, out) : out;
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end,
                                  std::optional<T>& out) {
    if (in == end || *in > 1) return nullptr;
    if (*in++ == 0) {
      out.reset();
      return in;
    }
    if (!out) out.emplace();
    return Serde<T>::read(in, end, *out);
  }
};

namespace serde_detail {

template <class Tuple>
std::size_t tupleSize(const Tuple& t) {
  return std::apply(
      [](const auto&... e) {
        return (std::size_t{0} + ... + Serde<std::remove_cvref_t<decltype(e)>>::size(e));
      },
      t);
}

template <class Tuple>
std::uint8_t* tupleWrite(const Tuple& t, std::uint8_t* out) {
  std::apply(
      [&out](const auto&... e) {
        ((out = Serde<std::remove_cvref_t<decltype(e)>>::write(e, out)), ...);
      },
      t);
  return out;
}

template <class Tuple>
const std::uint8_t* tupleRead(const std::uint8_t* in, const std::uint8_t* end, Tuple&& t) {
  std::apply(
      [&in, end](auto&... e) {
        ((in = in == nullptr ? nullptr : Serde<std::remove_cvref_t<decltype(e)>>::read(in, end, e)),
         ...);
      },
      t);
  return in;
}

}  // namespace serde_detail

template <class A, class B>
struct Serde<std::pair<A, B>> {
  static std::size_t size(const std::pair<A, B>& v) {
    return Serde<A>::size(v.first) + Serde<B>::size(v.second);
  }
  static std::uint8_t* write(const std::pair<A, B>& v, std::uint8_t* out) {
    return Serde<B>::write(v.second, Serde<A>::write(v.first, out));
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end,
                                  std::pair<A, B>& out) {
    in = Serde<A>::read(in, end, out.first);
    return in == nullptr ? nullptr : Serde<B>::read(in, end, out.second);
  }
};

template <class... Ts>
struct Serde<std::tuple<Ts...>> {
  static std::size_t size(const std::tuple<Ts...>& v) { return serde_detail::tupleSize(v); }
  static std::uint8_t* write(const std::tuple<Ts...>& v, std::uint8_t* out) {
    return serde_detail::tupleWrite(v, out);
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end,
                                  std::tuple<Ts...>& out) {
    return serde_detail::tupleRead(in, end, out);
  }
};

template <class T, std::size_t N>
struct Serde<std::array<T, N>> {
  static std::size_t size(const std::array<T, N>& v) {
    std::size_t n = 0;
    for (const auto& e : v)
      n += Serde<T>::size(e);
    return n;
  }
  static std::uint8_t* write(const std::array<T, N>& v, std::uint8_t* out) {
    for (const auto& e : v)
      out = Serde<T>::write(e, out);
    return out;
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end,
                                  std::array<T, N>& out) {
    for (auto& e : out) {
      in = Serde<T>::read(in, end, e);
      if (in == nullptr) return nullptr;
    }
    return in;
  }
};

namespace serde_detail {

template <class Map>
struct MapSerde {
  using K = typename Map::key_type;
  using V = typename Map::mapped_type;
  static std::size_t size(const Map& m) {
    std::size_t n = varintSize(m.size());
    for (const auto& [k, v] : m)
      n += Serde<K>::size(k) + Serde<V>::size(v);
    return n;
  }
  static std::uint8_t* write(const Map& m, std::uint8_t* out) {
    out = writeVarint(m.size(), out);
    for (const auto& [k, v] : m)
      out = Serde<V>::write(v, Serde<K>::write(k, out));
    return out;
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end, Map& out) {
    std::size_t n = 0;
    in = readLength(in, end, minEncodedSize<K>() + minEncodedSize<V>(), n);
    if (in == nullptr) return nullptr;
    out.clear();
    for (std::size_t i = 0; i < n; ++i) {
      K k{};
      V v{};
      in = Serde<K>::read(in, end, k);
      if (in == nullptr) return nullptr;
      in = Serde<V>::read(in, end, v);
      if (in == nullptr) return nullptr;
      out.insert_or_assign(std::move(k), std::move(v));
    }
    return in;
  }
};

}  // namespace serde_detail

template <class K, class V, class C, class A>
struct Serde<std::map<K, V, C, A>> : serde_detail::MapSerde<std::map<K, V, C, A>> {};
template <class K, class V, class H, class E, class A>
struct Serde<std::unordered_map<K, V, H, E, A>>
    : serde_detail::MapSerde<std::unordered_map<K, V, H, E, A>> {};

// User structs that declare WEIR_SERDE_FIELDS(...): encoded field by field, in declaration order.
template <class T>
requires serde_detail::HasFields<T>
struct Serde<T> {
  static std::size_t size(const T& v) { return serde_detail::tupleSize(v.weirFields()); }
  static std::uint8_t* write(const T& v, std::uint8_t* out) {
    return serde_detail::tupleWrite(v.weirFields(), out);
  }
  static const std::uint8_t* read(const std::uint8_t* in, const std::uint8_t* end, T& out) {
    return serde_detail::tupleRead(in, end, out.weirFields());
  }
};

// True when Serde<T> is usable; used to give readable errors at the API surface.
template <class T>
concept Serializable = requires(const T& v, T& out, std::uint8_t* p, const std::uint8_t* cp) {
  { Serde<T>::size(v) } -> std::convertible_to<std::size_t>;
  { Serde<T>::write(v, p) } -> std::same_as<std::uint8_t*>;
  { Serde<T>::read(cp, cp, out) } -> std::same_as<const std::uint8_t*>;
};

// Convenience helpers for tests and tools (they allocate; the record path does not use them).
template <class T>
std::vector<std::uint8_t> serialize(const T& v) {
  std::vector<std::uint8_t> out(Serde<T>::size(v));
  Serde<T>::write(v, out.data());
  return out;
}

// Decodes exactly one value occupying all of `bytes`; false when truncated, malformed or followed
// by trailing bytes.
template <class T>
bool deserialize(const std::vector<std::uint8_t>& bytes, T& out) {
  // An empty vector may have a null data(): use a real address so that a value encoded in zero
  // bytes (an empty tuple) is told apart from a failure.
  static const std::uint8_t kNothing = 0;
  const std::uint8_t* begin = bytes.empty() ? &kNothing : bytes.data();
  const std::uint8_t* end = begin + bytes.size();
  const std::uint8_t* p = Serde<T>::read(begin, end, out);
  return p != nullptr && p == end;
}

}  // namespace weir
