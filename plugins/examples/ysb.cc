// A Yahoo-Streaming-Benchmark-like job (see ysb.h): generated ad events, views only, joined to
// their campaign, counted per campaign in 10-second tumbling event-time windows.
//
//   weir local ysb.so                                    1 M events over 10 s of event time
//   weir local ysb.so --arg events=N --arg campaigns=C --arg rate=EVENTS_PER_SECOND
//   weir local ysb.so --arg state.backend=rocksdb        the same counts from RocksDB state
//
// Prints one line per campaign and window: "campaign 7 window-end 10000 views 3347".
#include "ysb.h"

#include <string>

namespace {

void build(weir::JobBuilder& job) {
  job.name("ysb");
  const weir::JobArgs& args = job.args();
  ysb::Params p;
  p.campaigns = args.getInt("campaigns", 100);
  p.ads_per_campaign = args.getInt("ads-per-campaign", 10);
  p.events_per_second = args.getInt("rate", 100'000);
  p.max_out_of_orderness_ms = args.getInt("out-of-orderness-ms", 100);
  p.window_ms = args.getInt("window-ms", 10'000);
  if (p.campaigns <= 0 || p.ads_per_campaign <= 0 || p.events_per_second <= 0 || p.window_ms <= 0 ||
      p.max_out_of_orderness_ms < 0) {
    throw weir::JobDefinitionError(
        "campaigns, ads-per-campaign, rate and window-ms must be positive, "
        "out-of-orderness-ms not negative");
  }
  const auto events = static_cast<std::uint64_t>(args.getInt("events", 1'000'000));
  auto source = job.fromGenerator(ysb::Generator{p}, events).name("ad events").uid("ad-events");
  ysb::counts(source, p)
      .map([](const ysb::WindowCount& c) {
        return "campaign " + std::to_string(c.campaign_id) + " window-end " +
               std::to_string(c.window_end) + " views " + std::to_string(c.count);
      })
      .name("format")
      .uid("format")
      .print()
      .name("print")
      .uid("print");
}

}  // namespace

WEIR_PLUGIN("ysb", "1.0.0", build)
