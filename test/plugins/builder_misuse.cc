// A compatible plugin whose job builder misuses the API: the SDK throws JobDefinitionError.
#include <weir/weir.h>

#include <cstdint>

namespace {

void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, 10)
      .parallelism(0)
      .print();
}

}  // namespace

WEIR_PLUGIN("builder_misuse", "0.0.1", build)
