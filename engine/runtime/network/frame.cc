#include "runtime/network/frame.h"

namespace weir::engine {

namespace {

const char* kindName(std::uint8_t kind) {
  switch (kind) {
    case static_cast<std::uint8_t>(FrameKind::kHello):
      return "hello";
    case static_cast<std::uint8_t>(FrameKind::kRequest):
      return "request";
    case static_cast<std::uint8_t>(FrameKind::kCredit):
      return "credit";
    case static_cast<std::uint8_t>(FrameKind::kData):
      return "data";
    case static_cast<std::uint8_t>(FrameKind::kEndOfInput):
      return "end-of-input";
    case static_cast<std::uint8_t>(FrameKind::kWatermark):
      return "watermark";
    case static_cast<std::uint8_t>(FrameKind::kWatermarkStatus):
      return "watermark-status";
    case static_cast<std::uint8_t>(FrameKind::kBarrier):
      return "barrier";
  }
  return "unknown";
}

}  // namespace

void encodeFrameHeader(const FrameHeader& h, std::uint8_t* out) {
  out[0] = kFrameVersion;
  out[1] = static_cast<std::uint8_t>(h.kind);
  out[2] = 0;
  out[3] = 0;
  storeU32(out + 4, h.channel);
  storeU32(out + 8, h.length);
}

Result<FrameHeader> decodeFrameHeader(const std::uint8_t* in, std::uint32_t max_data) {
  if (in[0] != kFrameVersion) {
    return Status::corruption("unsupported frame version " + std::to_string(in[0]) +
                              " (this TaskManager speaks " + std::to_string(kFrameVersion) + ")");
  }
  FrameHeader h;
  h.channel = loadU32(in + 4);
  h.length = loadU32(in + 8);
  const std::uint8_t kind = in[1];
  std::uint32_t bound = 0;
  switch (kind) {
    case static_cast<std::uint8_t>(FrameKind::kHello):
    case static_cast<std::uint8_t>(FrameKind::kRequest):
      bound = kMaxControlPayload;
      break;
    case static_cast<std::uint8_t>(FrameKind::kCredit):
      if (h.length != 4)
        return Status::corruption("credit frame of " + std::to_string(h.length) + " bytes");
      bound = 4;
      break;
    case static_cast<std::uint8_t>(FrameKind::kData):
      if (h.length == 0) return Status::corruption("empty data frame");
      bound = max_data;
      break;
    case static_cast<std::uint8_t>(FrameKind::kEndOfInput):
      bound = 0;
      break;
    case static_cast<std::uint8_t>(FrameKind::kWatermark):
    case static_cast<std::uint8_t>(FrameKind::kWatermarkStatus): {
      const std::uint32_t size = kind == static_cast<std::uint8_t>(FrameKind::kWatermark)
                                     ? kWatermarkPayload
                                     : kWatermarkStatusPayload;
      if (h.length != size) {
        return Status::corruption(std::string(kindName(kind)) + " frame of " +
                                  std::to_string(h.length) + " bytes (expected " +
                                  std::to_string(size) + ")");
      }
      bound = size;
      break;
    }
    case static_cast<std::uint8_t>(FrameKind::kBarrier):
      if (h.length < kBarrierFixedPayload) {
        return Status::corruption("barrier frame of " + std::to_string(h.length) +
                                  " bytes (at least " + std::to_string(kBarrierFixedPayload) +
                                  " expected)");
      }
      bound = kMaxControlPayload;
      break;
    default:
      return Status::corruption("unknown frame kind " + std::to_string(kind));
  }
  if (h.length > bound) {
    return Status::corruption(std::string(kindName(kind)) + " frame of " +
                              std::to_string(h.length) + " bytes exceeds the limit of " +
                              std::to_string(bound) + " for its kind");
  }
  h.kind = static_cast<FrameKind>(kind);
  return h;
}

namespace {

constexpr std::uint8_t kBarrierSavepoint = 1;
constexpr std::uint8_t kBarrierStop = 2;
constexpr std::uint8_t kBarrierDrain = 4;
constexpr std::uint8_t kBarrierUnaligned = 8;

}  // namespace

Result<std::string> encodeBarrierPayload(const CheckpointBarrier& barrier,
                                         std::uint32_t overtaken) {
  if (barrier.target_dir.size() > kMaxControlPayload - kBarrierFixedPayload) {
    return Status::invalidArgument(
        "checkpoint " + std::to_string(barrier.id) + ": its target directory of " +
        std::to_string(barrier.target_dir.size()) + " bytes is longer than a barrier can carry (" +
        std::to_string(kMaxControlPayload - kBarrierFixedPayload) + " bytes)");
  }
  std::string out(kBarrierFixedPayload, '\0');
  auto* p = reinterpret_cast<std::uint8_t*>(out.data());
  storeU64(p, static_cast<std::uint64_t>(barrier.id));
  storeU64(p + 8, static_cast<std::uint64_t>(barrier.timestamp_ms));
  p[16] = static_cast<std::uint8_t>(
      (barrier.savepoint ? kBarrierSavepoint : 0) | (barrier.stop ? kBarrierStop : 0) |
      (barrier.drain ? kBarrierDrain : 0) | (barrier.unaligned ? kBarrierUnaligned : 0));
  storeU32(p + 17, overtaken);
  storeU32(p + 21, static_cast<std::uint32_t>(barrier.target_dir.size()));
  out += barrier.target_dir;
  return out;
}

Result<CheckpointBarrier> decodeBarrierPayload(const std::uint8_t* in, std::size_t size,
                                               std::uint32_t* overtaken) {
  if (size < kBarrierFixedPayload || size > kMaxControlPayload) {
    return Status::corruption("barrier payload of " + std::to_string(size) + " bytes");
  }
  const std::uint8_t flags = in[16];
  if ((flags & ~(kBarrierSavepoint | kBarrierStop | kBarrierDrain | kBarrierUnaligned)) != 0) {
    return Status::corruption("barrier with unknown flags " + std::to_string(flags));
  }
  const std::uint32_t dir_length = loadU32(in + 21);
  if (dir_length != size - kBarrierFixedPayload) {
    return Status::corruption("barrier target directory of " + std::to_string(dir_length) +
                              " bytes in a payload of " + std::to_string(size) + " bytes");
  }
  CheckpointBarrier b;
  b.id = static_cast<std::int64_t>(loadU64(in));
  b.timestamp_ms = static_cast<std::int64_t>(loadU64(in + 8));
  b.savepoint = (flags & kBarrierSavepoint) != 0;
  b.stop = (flags & kBarrierStop) != 0;
  b.drain = (flags & kBarrierDrain) != 0;
  b.unaligned = (flags & kBarrierUnaligned) != 0;
  if (overtaken != nullptr) *overtaken = loadU32(in + 17);
  b.target_dir.assign(reinterpret_cast<const char*>(in + kBarrierFixedPayload), dir_length);
  return b;
}

}  // namespace weir::engine
