#include "runtime/watermark_valve.h"

#include <algorithm>

#include "weir/task_api.h"

namespace weir::engine {

WatermarkValve::WatermarkValve(int num_channels)
    : channels_(static_cast<std::size_t>(num_channels), Channel{kMinWatermark}),
      watermark_(kMinWatermark) {}

WatermarkValve::Output WatermarkValve::onWatermark(int channel, std::int64_t watermark) {
  Output out;
  Channel& c = channels_.at(static_cast<std::size_t>(channel));
  if (c.idle || c.ended || watermark <= c.watermark) return out;
  c.watermark = watermark;
  if (!c.aligned && watermark >= watermark_) c.aligned = true;
  advanceToMinimum(out);
  return out;
}

WatermarkValve::Output WatermarkValve::onStatus(int channel, bool idle) {
  Output out;
  Channel& c = channels_.at(static_cast<std::size_t>(channel));
  if (c.ended || c.idle == idle) return out;
  c.idle = idle;
  if (idle) {
    c.aligned = false;
    if (allOpenIdle()) {
      becomeIdle(out);
    } else {
      advanceToMinimum(out);  // the channel may have been the one holding the watermark back
    }
    return out;
  }
  c.aligned = c.watermark >= watermark_;
  if (idle_) {
    idle_ = false;
    out.status_changed = true;
    out.idle = false;
  }
  return out;
}

WatermarkValve::Output WatermarkValve::onEndOfInput(int channel) {
  Output out;
  Channel& c = channels_.at(static_cast<std::size_t>(channel));
  if (c.ended) return out;
  c.ended = true;
  c.aligned = false;
  const bool all_ended =
      std::all_of(channels_.begin(), channels_.end(), [](const Channel& x) { return x.ended; });
  if (all_ended) {
    if (watermark_ < kMaxWatermark) {
      watermark_ = kMaxWatermark;
      out.watermark_advanced = true;
      out.watermark = watermark_;
    }
    if (idle_) {  // everything is over: nothing is idle any more
      idle_ = false;
      out.status_changed = true;
      out.idle = false;
    }
  } else if (allOpenIdle()) {
    becomeIdle(out);
  } else {
    advanceToMinimum(out);
  }
  return out;
}

void WatermarkValve::advanceToMinimum(Output& out) {
  bool any = false;
  std::int64_t min = kMaxWatermark;
  for (const Channel& c : channels_) {
    if (c.aligned && !c.idle && !c.ended) {
      any = true;
      min = std::min(min, c.watermark);
    }
  }
  if (any && min > watermark_) {
    watermark_ = min;
    out.watermark_advanced = true;
    out.watermark = min;
  }
}

bool WatermarkValve::allOpenIdle() const {
  bool any_open = false;
  for (const Channel& c : channels_) {
    if (c.ended) continue;
    any_open = true;
    if (!c.idle) return false;
  }
  return any_open;
}

void WatermarkValve::becomeIdle(Output& out) {
  std::int64_t max = kMinWatermark;
  for (const Channel& c : channels_) {
    if (!c.ended) max = std::max(max, c.watermark);
  }
  if (max > watermark_) {
    watermark_ = max;
    out.watermark_advanced = true;
    out.watermark = max;
  }
  if (!idle_) {
    idle_ = true;
    out.status_changed = true;
    out.idle = true;
  }
}

}  // namespace weir::engine
