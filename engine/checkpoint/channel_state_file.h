// The in-flight data of one subtask in an unaligned checkpoint, in one file per direction: the
// data buffers of its input channels that the checkpoint's barriers overtook in its input gate,
// exactly as they arrived, or those of its output channels that they overtook in its send
// queues (to other TaskManagers)
//
//   "WEIRICS1" (8 bytes, magic)
//   then per buffer, in the order they are to be replayed:
//     u32  channel (little endian): the input channel, or the output channel numbered over the
//          task's outputs in order
//     u32  n, the length of the buffer
//          n bytes
//
// The buffers of one channel are in stream order; the first one of an input channel may be the
// part of a record frame the subtask had read before its snapshot (see
// ChainInstance::partialInput). The file's size and SHA-256 are recorded in its handle and
// checked when it is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "checkpoint_types.h"
#include "weir/status.h"

namespace weir::engine {

inline constexpr std::string_view kChannelStateFileMagic = "WEIRICS1";

// Appends one buffer of channel `channel` to `out` in the file's per-buffer format.
void appendChannelBuffer(std::string& out, int channel, const std::uint8_t* data, std::size_t size);

// Writes the magic followed by `body` (buffers encoded by appendChannelBuffer) to `base /
// relative_path` (a temporary name, fsynced, renamed) and returns its handle.
Result<thrift::StateFile> writeChannelStateFile(const std::filesystem::path& base,
                                                const std::string& relative_path,
                                                std::string_view body);

// Reads the file of `handle` (relative to `base`), checks its size, SHA-256 and format, and calls
// `replay` for every buffer in file order; stops at the first error `replay` returns.
Status readChannelStateFile(
    const std::filesystem::path& base, const thrift::StateFile& handle,
    const std::function<Status(int channel, const std::uint8_t* data, std::size_t size)>& replay);

}  // namespace weir::engine
