// A record type that cannot cross a task boundary.
#include <weir/weir.h>
struct Opaque {
  int* p = nullptr;
  std::string s;
};
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return Opaque{nullptr, std::to_string(i)}; }, 10).print();
}
