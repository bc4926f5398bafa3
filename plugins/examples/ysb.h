// The Yahoo Streaming Benchmark's pipeline, self-contained: ad events -> keep views -> map the ad
// to its campaign -> count views per campaign in 10-second tumbling event-time windows.
//
// Differences from the original: events are generated (deterministically, from their index)
// instead of read from Kafka, ids are integers instead of UUID strings, and the ad -> campaign
// table is built in memory instead of fetched from Redis.
//
// Shared by the example plugin (ysb.cc) and the benchmark (bench/ysb_bench.cc).
#pragma once

#include <weir/weir.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ysb {

enum EventType : std::int32_t { kView = 0, kClick = 1, kPurchase = 2 };

struct AdEvent {
  std::int64_t user_id = 0;
  std::int64_t page_id = 0;
  std::int64_t ad_id = 0;
  std::int32_t ad_type = 0;
  std::int32_t event_type = kView;
  std::int64_t event_time = 0;  // milliseconds
  std::int64_t ip = 0;
};

struct CampaignView {
  std::int32_t campaign_id = 0;
  std::int64_t event_time = 0;
};

struct WindowCount {
  std::int32_t campaign_id = 0;
  std::int64_t window_end = 0;
  std::int64_t count = 0;
};

struct Params {
  std::int64_t campaigns = 100;
  std::int64_t ads_per_campaign = 10;
  std::int64_t events_per_second = 100'000;  // of event time
  std::int64_t max_out_of_orderness_ms = 100;
  std::int64_t window_ms = 10'000;
};

inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Event `i`: a third of each type, ads uniform, event time advancing at events_per_second with
// up to max_out_of_orderness_ms of disorder.
struct Generator {
  Params p;
  AdEvent operator()(std::uint64_t i) const {
    const std::uint64_t h = mix(i + 1);
    AdEvent e;
    e.user_id = static_cast<std::int64_t>(h & 0xffffff);
    e.page_id = static_cast<std::int64_t>((h >> 24) & 0xffff);
    e.ad_id = static_cast<std::int64_t>(
        (h >> 8) % static_cast<std::uint64_t>(p.campaigns * p.ads_per_campaign));
    e.ad_type = static_cast<std::int32_t>((h >> 40) % 5);
    e.event_type = static_cast<std::int32_t>((h >> 44) % 3);
    const std::int64_t disorder =
        p.max_out_of_orderness_ms > 0
            ? static_cast<std::int64_t>((h >> 50) %
                                        static_cast<std::uint64_t>(p.max_out_of_orderness_ms))
            : 0;
    const std::int64_t base =
        static_cast<std::int64_t>(i) * 1000 / std::max<std::int64_t>(p.events_per_second, 1);
    e.event_time = std::max<std::int64_t>(base - disorder, 0);
    e.ip = static_cast<std::int64_t>(h >> 32);
    return e;
  }
};

struct IsView {
  bool filter(const AdEvent& e) const { return e.event_type == kView; }
};

// The ad -> campaign join: a table built once per subtask.
class AdToCampaign {
 public:
  explicit AdToCampaign(Params p) : p_(p) {}
  void open(const weir::RuntimeContext&) { buildTable(); }
  void buildTable() {
    table_.assign(static_cast<std::size_t>(p_.campaigns * p_.ads_per_campaign), 0);
    for (std::size_t ad = 0; ad < table_.size(); ++ad)
      table_[ad] = static_cast<std::int32_t>(mix(ad) % static_cast<std::uint64_t>(p_.campaigns));
  }
  CampaignView map(const AdEvent& e) const {
    return {table_[static_cast<std::size_t>(e.ad_id)], e.event_time};
  }

 private:
  Params p_;
  std::vector<std::int32_t> table_;
};

struct CountViews {
  std::int64_t createAccumulator() const { return 0; }
  void add(const CampaignView&, std::int64_t& acc) const { ++acc; }
  std::int64_t getResult(const std::int64_t& acc) const { return acc; }
  void merge(const std::int64_t& from, std::int64_t& into) const { into += from; }
};

struct LabelWindow {
  void process(const std::int32_t& campaign, weir::WindowContext<weir::TimeWindow>& ctx,
               const std::vector<std::int64_t>& counts, weir::Collector<WindowCount>& out) const {
    out.collect({campaign, ctx.window().end, counts.front()});
  }
};

inline std::int32_t campaignOf(const CampaignView& v) {
  return v.campaign_id;
}

// The pipeline from the generated events to the per-campaign window counts.
inline weir::DataStream<WindowCount> counts(weir::DataStream<AdEvent> events, const Params& p) {
  return events
      .assignTimestampsAndWatermarks(
          weir::WatermarkStrategy<AdEvent>::forBoundedOutOfOrderness(
              std::chrono::milliseconds(p.max_out_of_orderness_ms))
              .withTimestampAssigner([](const AdEvent& e, std::int64_t) { return e.event_time; }))
      .name("timestamps")
      .uid("timestamps")
      .filter(IsView{})
      .name("views")
      .uid("views")
      .map(AdToCampaign(p))
      .name("campaign")
      .uid("campaign")
      .keyBy(&campaignOf)
      .window(weir::TumblingEventTimeWindows::of(std::chrono::milliseconds(p.window_ms)))
      .aggregate(CountViews{}, LabelWindow{})
      .name("count per campaign")
      .uid("count-per-campaign");
}

}  // namespace ysb
