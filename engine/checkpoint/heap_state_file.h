// The checkpoint file of the heap keyed state of one subtask of one vertex: the opaque bytes of
// each key group of the subtask's range (VertexSnapshot::key_groups), referenced by a HEAP_FULL
// thrift::KeyedStateHandle with exactly one private file and no shared files.
//
// Format (integers little-endian):
//   magic            8 bytes "WEIRHKS1"
//   version          u32 (kHeapStateFileVersion)
//   key_group_start  u32
//   count            u32, the number of key groups (>= 1)
//   index            count entries of { offset u64, length u64 }: key group key_group_start + i
//                    occupies [offset, offset + length) of the data section; entries are laid out
//                    back to back in key-group order (offset of i + 1 = offset + length of i), so
//                    an empty key group costs its index entry only
//   data             the key groups' bytes, concatenated
// Integrity comes from the handle: the file's size and the SHA-256 of the whole file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint_types.h"
#include "weir/status.h"

namespace weir::engine {

inline constexpr std::string_view kHeapStateFileMagic = "WEIRHKS1";
inline constexpr std::uint32_t kHeapStateFileVersion = 1;

// Writes key groups [key_group_start, key_group_start + key_groups.size()) to `base /
// relative_path` (creating parent dirs; written to a temporary name, fsynced, renamed) and returns
// a HEAP_FULL handle with that single private file (path relative to base, size, sha256 hex of the
// whole file). Empty key-group strings are allowed (no state in that group) and stored compactly.
// `relative_path` must be relative and stay inside `base`; `key_groups` must not be empty.
Result<thrift::KeyedStateHandle> writeHeapKeyedState(const std::filesystem::path& base,
                                                     const std::string& relative_path,
                                                     int key_group_start,
                                                     const std::vector<std::string>& key_groups);

// The bytes of key groups [start, end] gathered from every HEAP_FULL handle overlapping that range
// (files relative to `base`); result[i] is key group start + i ("" when no handle has it). Verifies
// each file's size and SHA-256 and the format; errors are Status corruption/notFound naming the
// file. Each overlapping file is streamed once (it is hashed whole), keeping only the bytes of the
// requested key groups. Handles not overlapping the range are not read. An overlapping handle of
// another kind, or two overlapping handles claiming one key group, is an invalidArgument; an empty
// range (end < start) gives an empty result.
Result<std::vector<std::string>> readHeapKeyedState(
    const std::filesystem::path& base, const std::vector<thrift::KeyedStateHandle>& handles,
    int start, int end);

// Bytes of state a handle references: the sizes of its private and shared files.
std::int64_t stateSize(const thrift::KeyedStateHandle& handle);

}  // namespace weir::engine
