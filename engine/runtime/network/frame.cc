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

}  // namespace weir::engine
