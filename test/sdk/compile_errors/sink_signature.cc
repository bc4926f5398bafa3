// A sink that takes the wrong type.
#include <weir/weir.h>
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<int>(i); }, 10)
      .addSink([](const std::vector<int>&) {});
}
