// A map function returning nothing.
#include <weir/weir.h>
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<int>(i); }, 10)
      .map([](const int&) {})
      .print();
}
