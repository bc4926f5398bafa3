// A map function taking the wrong record type.
#include <weir/weir.h>
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<int>(i); }, 10)
      .map([](const std::string& s) { return s.size(); })
      .print();
}
