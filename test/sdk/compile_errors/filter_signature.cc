// A filter that does not return something convertible to bool.
#include <weir/weir.h>
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<int>(i); }, 10)
      .filter([](const int& v) { return std::to_string(v); })
      .print();
}
