// A generic flatMap whose output type cannot be deduced.
#include <weir/weir.h>
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<int>(i); }, 10)
      .flatMap([](const auto& v, auto& out) { out.collect(v); })
      .print();
}
