// A correct job whose plugin entry is built with overridden WEIR_PLUGIN_ABI_VERSION,
// WEIR_PLUGIN_ENTRY_SYMBOL or WEIR_PLUGIN_FINGERPRINT (see CMakeLists.txt), so that the loader
// must refuse it before running any of its code.
#include <weir/weir.h>

#include <cstdint>

namespace {

void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, 10)
      .uid("numbers")
      .print()
      .uid("print");
}

}  // namespace

WEIR_PLUGIN("incompatible", "0.0.1", build)
