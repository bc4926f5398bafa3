// Combines the watermarks and watermark statuses of a task's input channels into the task's input
// watermark, as Flink's StatusWatermarkValve does:
//  - the task's watermark is the minimum over its active, aligned channels, and never goes back;
//  - an idle channel does not hold it back; when every open channel is idle the task itself becomes
//    idle, after advancing to the largest watermark any of them reached;
//  - a channel that becomes active again counts only once its watermark has caught up with the
//    task's (it is "aligned" again), so it cannot pull the watermark back;
//  - a channel that has ended counts no more; when all have ended the watermark is kMaxWatermark.
// Watermarks arriving on an idle or ended channel are ignored.
//
// Used by one task thread only.
#pragma once

#include <cstdint>
#include <vector>

namespace weir::engine {

class WatermarkValve {
 public:
  // What changed after one input event; the caller forwards it downstream, the watermark first.
  struct Output {
    bool watermark_advanced = false;
    std::int64_t watermark = 0;
    bool status_changed = false;
    bool idle = false;
  };

  explicit WatermarkValve(int num_channels);

  Output onWatermark(int channel, std::int64_t watermark);
  Output onStatus(int channel, bool idle);
  Output onEndOfInput(int channel);

  std::int64_t watermark() const { return watermark_; }
  bool idle() const { return idle_; }

 private:
  struct Channel {
    std::int64_t watermark;
    bool idle = false;
    bool aligned = true;
    bool ended = false;
  };

  void advanceToMinimum(Output& out);
  // Every channel still open is idle (and at least one is open).
  bool allOpenIdle() const;
  void becomeIdle(Output& out);

  std::vector<Channel> channels_;
  std::int64_t watermark_;
  bool idle_ = false;
};

}  // namespace weir::engine
