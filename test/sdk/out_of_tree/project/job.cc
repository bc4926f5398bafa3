// An out-of-tree job plugin, compiled against the installed SDK only.
//
//   weir local myjob.so [--arg count=N]
//
// Readings from a generator -> map to a user struct -> filter -> keyBy sensor -> running
// per-sensor reduce -> stdout. Deterministic at parallelism 1.
#include <weir/weir.h>

#include <cstdint>
#include <string>

namespace {

struct Reading {
  std::string sensor;
  std::int64_t total = 0;
  std::int64_t count = 0;
  WEIR_SERDE_FIELDS(sensor, total, count)
};

void build(weir::JobBuilder& job) {
  job.name("out-of-tree job");
  const std::int64_t n = job.args().getInt("count", 10);
  job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); },
                    static_cast<std::uint64_t>(n))
      .uid("numbers")
      .map([](const std::int64_t& v) {
        return Reading{"sensor-" + std::to_string(v % 3), v * v, 1};
      })
      .uid("to-reading")
      .filter([](const Reading& r) { return r.total != 16; })  // drops 4*4
      .uid("filter")
      .keyBy([](const Reading& r) { return r.sensor; })
      .reduce([](const Reading& acc, const Reading& r) {
        return Reading{acc.sensor, acc.total + r.total, acc.count + r.count};
      })
      .uid("sum")
      .print()
      .uid("print");
}

}  // namespace

WEIR_PLUGIN("myjob", "0.1.0", build)
