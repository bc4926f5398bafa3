// A reduce function with one parameter.
#include <weir/weir.h>
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<int>(i); }, 10)
      .keyBy([](const int& v) { return v % 2; })
      .reduce([](const int& v) { return v; })
      .print();
}
