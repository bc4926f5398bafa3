// The task's input watermark over its channels: minimum of the active ones, idleness, realignment
// and end of input.
#include <doctest/doctest.h>

#include "runtime/watermark_valve.h"
#include "weir/task_api.h"

using weir::engine::WatermarkValve;

namespace {

// The watermark the valve reported, or -1 when it did not advance.
std::int64_t advancedTo(const WatermarkValve::Output& o) {
  return o.watermark_advanced ? o.watermark : -1;
}

}  // namespace

TEST_CASE("watermark valve: the minimum over channels, never going back") {
  WatermarkValve v(3);
  CHECK(advancedTo(v.onWatermark(0, 10)) == -1);
  CHECK(advancedTo(v.onWatermark(1, 5)) == -1);
  CHECK(advancedTo(v.onWatermark(2, 7)) == 5);
  CHECK(advancedTo(v.onWatermark(1, 20)) == 7);
  CHECK(advancedTo(v.onWatermark(2, 6)) == -1);  // a channel's watermark does not go back
  CHECK(advancedTo(v.onWatermark(2, 30)) == 10);
  CHECK(v.watermark() == 10);
}

TEST_CASE("watermark valve: idle channels do not hold the watermark back") {
  WatermarkValve v(2);
  v.onWatermark(0, 100);
  CHECK(advancedTo(v.onWatermark(1, 10)) == 10);
  // Channel 1 goes idle: channel 0 alone decides.
  auto o = v.onStatus(1, true);
  CHECK(advancedTo(o) == 100);
  CHECK_FALSE(o.status_changed);
  CHECK(advancedTo(v.onWatermark(1, 50)) == -1);  // ignored while idle
  CHECK(advancedTo(v.onWatermark(0, 150)) == 150);
  // Back with an old watermark: not aligned until it catches up, so it cannot pull back.
  CHECK(advancedTo(v.onStatus(1, false)) == -1);
  CHECK(advancedTo(v.onWatermark(0, 200)) == 200);
  CHECK(advancedTo(v.onWatermark(1, 120)) == -1);
  CHECK(advancedTo(v.onWatermark(1, 180)) == -1);  // still behind 200
  CHECK(advancedTo(v.onWatermark(1, 250)) == -1);  // aligned at 250; minimum is 200
  CHECK(advancedTo(v.onWatermark(0, 300)) == 250);
}

TEST_CASE("watermark valve: all channels idle makes the task idle, at their largest watermark") {
  WatermarkValve v(2);
  v.onWatermark(0, 40);
  v.onWatermark(1, 60);
  CHECK(v.watermark() == 40);
  auto o = v.onStatus(0, true);
  CHECK(advancedTo(o) == 60);
  CHECK_FALSE(o.status_changed);
  o = v.onStatus(1, true);
  CHECK(o.status_changed);
  CHECK(o.idle);
  CHECK(v.idle());
  o = v.onStatus(0, false);
  CHECK(o.status_changed);
  CHECK_FALSE(o.idle);
}

TEST_CASE("watermark valve: ended channels count no more, and the end of all is the end of time") {
  WatermarkValve v(3);
  v.onWatermark(0, 10);
  v.onWatermark(1, 20);
  v.onWatermark(2, 30);
  CHECK(advancedTo(v.onEndOfInput(0)) == 20);
  CHECK(advancedTo(v.onEndOfInput(2)) == -1);
  CHECK(advancedTo(v.onWatermark(1, 25)) == 25);
  // The last open channel idle: the task is idle (an ended channel does not advance it to MAX).
  auto o = v.onStatus(1, true);
  CHECK(o.status_changed);
  CHECK(v.watermark() == 25);
  o = v.onEndOfInput(1);
  CHECK(advancedTo(o) == weir::kMaxWatermark);
  CHECK(o.status_changed);
  CHECK_FALSE(o.idle);
}
