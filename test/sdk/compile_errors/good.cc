// Control case: the same shapes, correct. Must compile, so the other cases fail for their reason.
#include <weir/weir.h>
void build(weir::JobBuilder& job) {
  job.fromGenerator([](std::uint64_t i) { return static_cast<int>(i); }, 10)
      .map([](const int& v) { return v + 1; })
      .filter([](const int& v) { return v % 2 == 0; })
      .flatMap([](const int& v, weir::Collector<int>& out) { out.collect(v); })
      .keyBy([](const int& v) { return v % 2; })
      .reduce([](const int& a, const int& b) { return a + b; })
      .addSink([](const int&) {});
}
