// The data plane's wire format: every message between two TaskManagers is a frame
//
//   offset 0  u8   version (kFrameVersion)
//          1  u8   kind (FrameKind)
//          2  u16  reserved, 0
//          4  u32  channel id (little endian): the receiving side's input channel
//          8  u32  payload length (little endian)
//         12       payload
//
// DATA carries one buffer of record frames (weir/task_api.h) for an input channel of the receiver;
// END_OF_INPUT closes one channel; WATERMARK (payload i64) and WATERMARK_STATUS (payload u8: 1
// idle, 0 active) are events of one channel, ordered with its data; BARRIER is a checkpoint barrier
// of one channel, ordered with its data (unless unaligned), with the payload (little endian)
//
//   offset 0  i64  checkpoint id
//          8  i64  timestamp (ms since the epoch)
//         16  u8   flags: bit 0 savepoint, bit 1 stop (stop-with-savepoint), bit 2 drain, bit 3
//                  unaligned; the other bits are 0
//         17  u32  overtaken: data buffers sent before the barrier that it overtook on the way
//                  and that the receiver must persist; 0, as the producer persists what an
//                  unaligned barrier overtakes in its send queue. The receiver queues an unaligned
//                  barrier as a priority event (InputGate::pushPriority), which counts the data
//                  it overtakes in the receiver's queue
//         21  u32  n, the length of the target directory
//         25       n bytes: the target directory
//
// (25 + n bytes in all, at most kMaxControlPayload). Events need no credit. CREDIT (payload u32 n)
// lets the producer send n more buffers on a channel; REQUEST (payload u32 credits + channel key)
// opens a channel: the consumer names the producer's output channel it wants and the id the
// producer must put on its frames; HELLO (payload: the sender's data address) is the first frame
// on a connection. A frame that breaks these rules closes the connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/network/buffer_pool.h"
#include "weir/status.h"

namespace weir::engine {

inline constexpr std::uint8_t kFrameVersion = 4;
inline constexpr std::size_t kFrameHeaderBytes = 12;
// Largest payload of a control frame (REQUEST, HELLO, CREDIT) and of a BARRIER.
inline constexpr std::uint32_t kMaxControlPayload = 4096;
inline constexpr std::uint32_t kWatermarkPayload = 8;
inline constexpr std::uint32_t kWatermarkStatusPayload = 1;
// A BARRIER's payload without its target directory.
inline constexpr std::uint32_t kBarrierFixedPayload = 25;

enum class FrameKind : std::uint8_t {
  kHello = 1,
  kRequest = 2,
  kCredit = 3,
  kData = 4,
  kEndOfInput = 5,
  kWatermark = 6,
  kWatermarkStatus = 7,
  kBarrier = 8,
};

struct FrameHeader {
  FrameKind kind = FrameKind::kData;
  std::uint32_t channel = 0;
  std::uint32_t length = 0;
};

void encodeFrameHeader(const FrameHeader& h, std::uint8_t* out);

// Decodes and checks a header: version, kind, and the payload bound for its kind (`max_data` for
// DATA). The error says what is wrong, for the log line that closes the connection.
Result<FrameHeader> decodeFrameHeader(const std::uint8_t* in, std::uint32_t max_data);

// A BARRIER frame's payload; an error when the target directory makes it longer than
// kMaxControlPayload.
Result<std::string> encodeBarrierPayload(const CheckpointBarrier& barrier,
                                         std::uint32_t overtaken = 0);
// Decodes and checks a BARRIER frame's payload of `size` bytes; its overtaken count goes to
// `*overtaken` when given.
Result<CheckpointBarrier> decodeBarrierPayload(const std::uint8_t* in, std::size_t size,
                                               std::uint32_t* overtaken = nullptr);

inline void storeU32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}
inline std::uint32_t loadU32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
inline void storeU64(std::uint8_t* p, std::uint64_t v) {
  storeU32(p, static_cast<std::uint32_t>(v));
  storeU32(p + 4, static_cast<std::uint32_t>(v >> 32));
}
inline std::uint64_t loadU64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(loadU32(p)) | static_cast<std::uint64_t>(loadU32(p + 4)) << 32;
}

}  // namespace weir::engine
