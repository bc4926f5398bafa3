// Text rendering of records for the print sink and for tests.
//
// Numbers and strings print as themselves, pairs and tuples as "(a,b)", sequences as "[a, b]",
// optionals as the value or "null", structs with WEIR_SERDE_FIELDS as "{a, b}", and any other type
// with an operator<< through it.
#pragma once

#include <array>
#include <charconv>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weir/serde.h"

namespace weir {

template <class T>
void appendFormatted(std::string& out, const T& v);

namespace format_detail {

template <class T>
struct IsSequence : std::false_type {};
template <class T, class A>
struct IsSequence<std::vector<T, A>> : std::true_type {};
template <class T, std::size_t N>
struct IsSequence<std::array<T, N>> : std::true_type {};

template <class T>
struct IsMap : std::false_type {};
template <class K, class V, class C, class A>
struct IsMap<std::map<K, V, C, A>> : std::true_type {};
template <class K, class V, class H, class E, class A>
struct IsMap<std::unordered_map<K, V, H, E, A>> : std::true_type {};

template <class T>
struct IsTupleLike : std::false_type {};
template <class A, class B>
struct IsTupleLike<std::pair<A, B>> : std::true_type {};
template <class... Ts>
struct IsTupleLike<std::tuple<Ts...>> : std::true_type {};

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class T>
concept Streamable = requires(std::ostream& os, const T& v) {
  os << v;
};

template <class Tuple>
void appendTuple(std::string& out, const Tuple& t, char open, char close, const char* sep) {
  out += open;
  bool first = true;
  std::apply(
      [&](const auto&... e) {
        ((out += first ? "" : sep, first = false, appendFormatted(out, e)), ...);
      },
      t);
  out += close;
}

}  // namespace format_detail

template <class T>
void appendFormatted(std::string& out, const T& v) {
  using namespace format_detail;
  using serde_detail::HasFields;
  if constexpr (std::is_same_v<T, bool>) {
    out += v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, char>) {
    out += v;
  } else if constexpr (std::is_arithmetic_v<T>) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, ec == std::errc() ? end : buf);
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    out += std::string_view(v);
  } else if constexpr (IsTupleLike<T>::value) {
    appendTuple(out, v, '(', ')', ",");
  } else if constexpr (HasFields<T>) {
    appendTuple(out, v.weirFields(), '{', '}', ", ");
  } else if constexpr (IsOptional<T>::value) {
    if (v) {
      appendFormatted(out, *v);
    } else {
      out += "null";
    }
  } else if constexpr (IsMap<T>::value) {
    out += '{';
    bool first = true;
    for (const auto& [k, val] : v) {
      if (!first) out += ", ";
      first = false;
      appendFormatted(out, k);
      out += '=';
      appendFormatted(out, val);
    }
    out += '}';
  } else if constexpr (IsSequence<T>::value) {
    out += '[';
    bool first = true;
    for (const auto& e : v) {
      if (!first) out += ", ";
      first = false;
      appendFormatted(out, e);
    }
    out += ']';
  } else if constexpr (std::is_enum_v<T>) {
    appendFormatted(out, static_cast<std::underlying_type_t<T>>(v));
  } else if constexpr (Streamable<T>) {
    std::ostringstream os;
    os << v;
    out += os.str();
  } else {
    static_assert(sizeof(T) == 0,
                  "weir cannot print this type: give it WEIR_SERDE_FIELDS(...) or an operator<<");
  }
}

template <class T>
std::string formatted(const T& v) {
  std::string out;
  appendFormatted(out, v);
  return out;
}

}  // namespace weir
