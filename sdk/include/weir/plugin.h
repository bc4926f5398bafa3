// The plugin boundary: one versioned, exported entry per plugin.
//
//   #include <weir/weir.h>
//   void build(weir::JobBuilder& job) { ... }
//   WEIR_PLUGIN("wordcount", "1.0.0", build)
//
// The entry's exported name carries the ABI number (weir_plugin_v5). It returns a descriptor whose
// leading fields (size, ABI version, build fingerprint) have a fixed C layout, so an engine can
// check them before it trusts anything else in the library. The fingerprint names the compiler and
// its version, the C++ standard library and its ABI, the language standard and the SDK header hash:
// a plugin built differently is refused with a message naming both sides, never loaded.
#pragma once

#include <boost/dll/alias.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "weir/job_args.h"
#include "weir/sdk_fingerprint.h"
#include "weir/status.h"
#include "weir/stream.h"
#include "weir/task_api.h"

#define WEIR_DETAIL_STR2(x) #x
#define WEIR_DETAIL_STR(x) WEIR_DETAIL_STR2(x)

#if defined(__clang__)
#define WEIR_DETAIL_COMPILER "clang-" __clang_version__
#elif defined(__GNUC__)
#define WEIR_DETAIL_COMPILER                                                                \
  "gcc-" WEIR_DETAIL_STR(__GNUC__) "." WEIR_DETAIL_STR(__GNUC_MINOR__) "." WEIR_DETAIL_STR( \
      __GNUC_PATCHLEVEL__)
#else
#define WEIR_DETAIL_COMPILER "unknown-compiler"
#endif

#if defined(_LIBCPP_VERSION)
#define WEIR_DETAIL_STDLIB "libc++-" WEIR_DETAIL_STR(_LIBCPP_VERSION)
#elif defined(__GLIBCXX__)
#if defined(_GLIBCXX_DEBUG)
#define WEIR_DETAIL_STDLIB_DEBUG "-debug"
#else
#define WEIR_DETAIL_STDLIB_DEBUG ""
#endif
#define WEIR_DETAIL_STDLIB                                                    \
  "libstdc++-" WEIR_DETAIL_STR(_GLIBCXX_RELEASE) "-cxx11abi" WEIR_DETAIL_STR( \
      _GLIBCXX_USE_CXX11_ABI) WEIR_DETAIL_STDLIB_DEBUG
#else
#define WEIR_DETAIL_STDLIB "unknown-stdlib"
#endif

// The fingerprint this translation unit is built with. Overridable only so tests can build
// deliberately incompatible plugins.
#ifndef WEIR_PLUGIN_FINGERPRINT
#define WEIR_PLUGIN_FINGERPRINT                                  \
  "compiler=" WEIR_DETAIL_COMPILER ";stdlib=" WEIR_DETAIL_STDLIB \
  ";std=" WEIR_DETAIL_STR(__cplusplus) ";sdk=" WEIR_SDK_HEADER_HASH
#endif
#ifndef WEIR_PLUGIN_ABI_VERSION
#define WEIR_PLUGIN_ABI_VERSION 5
#endif
#ifndef WEIR_PLUGIN_ENTRY_SYMBOL
#define WEIR_PLUGIN_ENTRY_SYMBOL weir_plugin_v5
#endif

namespace weir {

static_assert(kSdkAbiVersion == 5, "update WEIR_PLUGIN_ENTRY_SYMBOL with the ABI version");

inline constexpr const char* kPluginEntryPrefix = "weir_plugin_v";
inline constexpr const char* kBuildFingerprint = WEIR_PLUGIN_FINGERPRINT;

struct PluginDescriptor {
  // Fixed C layout: read and checked before anything else.
  std::uint32_t struct_size;
  std::uint32_t abi_version;
  const char* build_fingerprint;
  // Valid only once the three fields above matched.
  const char* name;
  const char* version;
  // Runs the plugin's build function with `args`. Never throws: returns null and sets *error on
  // failure. The engine owns the returned program and destroys it before unloading the library.
  JobProgram* (*create_program)(const JobArgs* args, std::string* error) noexcept;
};

using PluginEntry = const PluginDescriptor*();

namespace detail {

template <class BuildFn>
JobProgram* runBuilder(BuildFn& build_fn, const JobArgs& args, std::string* error) noexcept {
  try {
    JobBuilder job(args);
    build_fn(job);
    return job.finish().release();
  } catch (const std::exception& e) {
    try {
      *error = e.what();
    } catch (...) {
    }
  } catch (...) {
    try {
      *error = "unknown exception";
    } catch (...) {
    }
  }
  return nullptr;
}

}  // namespace detail

// Builds a program in this process, without a plugin library: for tests, benchmarks and tools.
template <class BuildFn>
Result<std::unique_ptr<JobProgram>> makeProgram(BuildFn&& build_fn, const JobArgs& args = {}) {
  std::string error;
  JobProgram* p = detail::runBuilder(build_fn, args, &error);
  if (p == nullptr) return Status::failed("job builder failed: " + error);
  return std::unique_ptr<JobProgram>(p);
}

}  // namespace weir

// Declares the plugin. Use exactly once per plugin, at global scope.
#define WEIR_PLUGIN(NAME, VERSION, BUILD_FN)                                             \
  namespace weir_plugin_detail {                                                         \
  static ::weir::JobProgram* createProgram(const ::weir::JobArgs* args,                  \
                                           std::string* error) noexcept {                \
    return ::weir::detail::runBuilder(BUILD_FN, *args, error);                           \
  }                                                                                      \
  static const ::weir::PluginDescriptor kDescriptor = {sizeof(::weir::PluginDescriptor), \
                                                       WEIR_PLUGIN_ABI_VERSION,          \
                                                       WEIR_PLUGIN_FINGERPRINT,          \
                                                       NAME,                             \
                                                       VERSION,                          \
                                                       &createProgram};                  \
  const ::weir::PluginDescriptor* entry() noexcept {                                     \
    return &kDescriptor;                                                                 \
  }                                                                                      \
  }                                                                                      \
  BOOST_DLL_ALIAS(weir_plugin_detail::entry, WEIR_PLUGIN_ENTRY_SYMBOL)
