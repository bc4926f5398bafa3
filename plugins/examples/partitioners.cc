// Exercises every partitioner. Each branch tags its records with the subtask that received them, so
// the output shows how records were routed:
//   forward    source subtask i -> tag subtask i            (same parallelism)
//   rebalance  round robin over the consumer subtasks
//   hash       key -> key group -> the subtask owning it    (keyBy)
//   broadcast  every record to every consumer subtask
//
//   weir local partitioners.so --parallelism 2 [--arg count=N|unbounded]
#include <weir/weir.h>

#include <cstdint>
#include <string>

namespace {

struct Routed {
  std::string edge;
  std::int64_t value = 0;
  int subtask = 0;
  WEIR_SERDE_FIELDS(edge, value, subtask)
};

// Tags each record with the index of the subtask that processes it.
class TagSubtask {
 public:
  explicit TagSubtask(std::string edge) : edge_(std::move(edge)) {}
  void open(const weir::RuntimeContext& ctx) { subtask_ = ctx.subtaskIndex(); }
  Routed map(const std::int64_t& v) const { return Routed{edge_, v, subtask_}; }

 private:
  std::string edge_;
  int subtask_ = 0;
};

void build(weir::JobBuilder& job) {
  job.name("partitioners");
  // count=N emits 0..N-1 (default 8); count=unbounded runs until cancelled.
  const bool unbounded = job.args().get("count", "") == "unbounded";
  const std::uint64_t n =
      unbounded ? weir::kUnbounded : static_cast<std::uint64_t>(job.args().getInt("count", 8));
  auto numbers = job.fromGenerator([](std::uint64_t i) { return static_cast<std::int64_t>(i); }, n);
  numbers.uid("numbers").name("numbers");

  numbers.forward().map(TagSubtask("forward")).uid("forward").print().uid("print-forward");
  numbers.rebalance()
      .map(TagSubtask("rebalance"))
      .uid("rebalance")
      .parallelism(3)
      .print()
      .uid("print-rebalance");
  numbers.broadcast()
      .map(TagSubtask("broadcast"))
      .uid("broadcast")
      .parallelism(2)
      .print()
      .uid("print-broadcast");
  numbers.keyBy([](const std::int64_t& v) { return v % 5; })
      .process([](const std::int64_t& v, weir::KeyedContext<std::int64_t>& ctx,
                  weir::Collector<Routed>& out) {
        out.collect(
            Routed{"hash(key=" + std::to_string(ctx.currentKey()) + ")", v, ctx.currentKeyGroup()});
      })
      .uid("hash")
      .print()
      .uid("print-hash");
}

}  // namespace

WEIR_PLUGIN("partitioners", "1.0.0", build)
