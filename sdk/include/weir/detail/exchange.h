// The typed ends of a network exchange: serialising records into the engine's buffers at a chain's
// output, and decoding buffers into batches at a chain's input. See task_api.h for the format.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "weir/collector.h"
#include "weir/detail/operators.h"
#include "weir/functions.h"
#include "weir/key_groups.h"
#include "weir/serde.h"
#include "weir/task_api.h"

namespace weir::detail {

inline void storeFrameHeader(std::uint8_t* p, std::uint32_t len) {
  p[0] = static_cast<std::uint8_t>(len);
  p[1] = static_cast<std::uint8_t>(len >> 8);
  p[2] = static_cast<std::uint8_t>(len >> 16);
  p[3] = static_cast<std::uint8_t>(len >> 24);
}

inline std::uint32_t loadFrameHeader(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// A record larger than this is refused: the u32 frame length is the hard limit of the format.
inline constexpr std::size_t kMaxRecordSize = 0xFFFFFFFFu;

// Stands in for the key selector of edges that are not hash-partitioned.
struct NoKeySelector {
  template <class T>
  int operator()(const T&) const {
    return 0;
  }
};

// Serialises T records into one OutputGate, choosing channels with the edge's partitioner. KeyF is
// the key selector of hash edges.
template <class T, class KeyF = NoKeySelector>
class ExchangeWriter final : public BatchConsumer<T> {
 public:
  ExchangeWriter(OutputGate& gate, const NetworkOutputSpec& spec, int subtask_index, KeyF key)
      : gate_(gate),
        cursors_(gate.cursors()),
        num_channels_(gate.numChannels()),
        partitioner_(spec.partitioner),
        target_parallelism_(spec.target_parallelism),
        max_parallelism_(spec.target_max_parallelism),
        next_channel_(subtask_index % std::max(1, gate.numChannels())),
        key_(std::move(key)) {
    if (partitioner_ == Partitioner::kHash) {
      // key group -> channel, computed once: saves a 64-bit division per record.
      channel_of_group_.resize(static_cast<std::size_t>(max_parallelism_));
      for (int kg = 0; kg < max_parallelism_; ++kg) {
        channel_of_group_[static_cast<std::size_t>(kg)] =
            subtaskForKeyGroup(kg, target_parallelism_, max_parallelism_);
      }
    }
  }

  void consume(const RecordBatch<T>& batch) override {
    switch (partitioner_) {
      case Partitioner::kDefault:
      case Partitioner::kForward:
        for (const T& v : batch)
          write(0, v);
        break;
      case Partitioner::kRebalance:
        for (const T& v : batch) {
          write(next_channel_, v);
          if (++next_channel_ == num_channels_) next_channel_ = 0;
        }
        break;
      case Partitioner::kBroadcast:
        for (const T& v : batch) {
          for (int c = 0; c < num_channels_; ++c)
            write(c, v);
        }
        break;
      case Partitioner::kHash:
        if constexpr (!std::is_same_v<KeyF, NoKeySelector>) {
          for (const T& v : batch) {
            const int kg = keyGroupForHash(hasher_(callKey(key_, v)), max_parallelism_);
            write(channel_of_group_[static_cast<std::size_t>(kg)], v);
          }
        } else {
          throw std::logic_error("hash partitioning needs a key selector (use keyBy)");
        }
        break;
    }
  }

 private:
  void write(int channel, const T& v) {
    const std::size_t len = Serde<T>::size(v);
    const std::size_t need = kFrameHeaderSize + len;
    WriteCursor& c = cursors_[channel];
    if (static_cast<std::size_t>(c.end - c.pos) < need) {
      writeSlow(channel, v, len);
      return;
    }
    storeFrameHeader(c.pos, static_cast<std::uint32_t>(len));
    c.pos = Serde<T>::write(v, c.pos + kFrameHeaderSize);
  }

  void advance(int channel) {
    if (!gate_.advance(channel)) throw WriterCancelled{};
  }

  // The record does not fit in what is left of the current buffer.
  void writeSlow(int channel, const T& v, std::size_t len) {
    if (len > kMaxRecordSize) throw std::length_error("record larger than 4 GiB");
    WriteCursor& c = cursors_[channel];
    advance(channel);  // a fresh, empty buffer
    const std::size_t need = kFrameHeaderSize + len;
    if (static_cast<std::size_t>(c.end - c.pos) >= need) {
      storeFrameHeader(c.pos, static_cast<std::uint32_t>(len));
      c.pos = Serde<T>::write(v, c.pos + kFrameHeaderSize);
      return;
    }
    // Larger than a whole buffer: encode once, then spread the payload over several buffers.
    if (scratch_.size() < len) scratch_.resize(len);
    Serde<T>::write(v, scratch_.data());
    storeFrameHeader(c.pos, static_cast<std::uint32_t>(len));
    c.pos += kFrameHeaderSize;
    std::size_t done = 0;
    while (done < len) {
      if (c.pos == c.end) advance(channel);
      const std::size_t n = std::min(len - done, static_cast<std::size_t>(c.end - c.pos));
      std::memcpy(c.pos, scratch_.data() + done, n);
      c.pos += n;
      done += n;
    }
    if (scratch_.size() > (1u << 20)) std::vector<std::uint8_t>().swap(scratch_);
  }

  OutputGate& gate_;
  WriteCursor* cursors_;
  int num_channels_;
  Partitioner partitioner_;
  int target_parallelism_;
  int max_parallelism_;
  int next_channel_;
  KeyF key_;
  KeyHasher<KeyOf<KeyF, T>> hasher_;
  std::vector<std::uint8_t> scratch_;
  std::vector<int> channel_of_group_;  // hash edges: key group -> channel
};

// Decodes data buffers of T records arriving on `num_channels` input channels and pushes them, in
// batches, into the chain's head operator. Keeps per-channel state for records split across
// buffers.
template <class T>
class InputReader {
 public:
  InputReader(int num_channels, BatchConsumer<T>* head) : channels_(num_channels), head_(head) {}

  // Returns an empty string on success, or what is wrong with the bytes.
  std::string read(int channel, const std::uint8_t* data, std::size_t size) {
    if (channel < 0 || channel >= static_cast<int>(channels_.size())) {
      return "input channel " + std::to_string(channel) + " does not exist";
    }
    Partial& partial = channels_[channel];
    const std::uint8_t* p = data;
    const std::uint8_t* end = data + size;
    if (partial.expected > 0) {
      const std::size_t n =
          std::min(partial.expected - partial.bytes.size(), static_cast<std::size_t>(end - p));
      partial.bytes.insert(partial.bytes.end(), p, p + n);
      p += n;
      if (partial.bytes.size() < partial.expected) return {};
      const bool ok = decode(partial.bytes.data(), partial.expected);
      const std::size_t bad_len = partial.expected;
      partial.expected = 0;
      partial.bytes.clear();
      if (partial.bytes.capacity() > (1u << 20)) std::vector<std::uint8_t>().swap(partial.bytes);
      if (!ok) return corrupt(bad_len);
    }
    // The batch cursor lives in locals: a store of a decoded record may alias the batch's members.
    T* const slots = batch_.data();
    std::size_t n = batch_.size();
    while (p < end) {
      if (static_cast<std::size_t>(end - p) < kFrameHeaderSize) [[unlikely]] {
        batch_.setSize(n);
        flush();
        return "truncated record frame header";
      }
      const std::size_t len = loadFrameHeader(p);
      p += kFrameHeaderSize;
      if (len > static_cast<std::size_t>(end - p)) [[unlikely]] {
        if (len == 0) break;
        partial.expected = len;
        partial.bytes.assign(p, end);
        break;
      }
      if (n == RecordBatch<T>::kCapacity) {
        batch_.setSize(n);
        flush();
        n = 0;
      }
      if (Serde<T>::read(p, p + len, slots[n]) != p + len) [[unlikely]] {
        batch_.setSize(n);
        flush();
        return corrupt(len);
      }
      ++n;
      p += len;
    }
    batch_.setSize(n);
    flush();
    return {};
  }

  bool hasPartialRecord() const {
    for (const auto& c : channels_) {
      if (c.expected > 0) return true;
    }
    return false;
  }

 private:
  struct Partial {
    std::size_t expected = 0;  // payload length of the record being reassembled, 0 if none
    std::vector<std::uint8_t> bytes;
  };

  // Decodes one reassembled record (the rare path; whole frames are decoded inline in read()).
  bool decode(const std::uint8_t* p, std::size_t len) {
    if (batch_.full()) flush();
    const std::uint8_t* q = Serde<T>::read(p, p + len, batch_.nextSlot());
    if (q != p + len) {
      flush();
      return false;
    }
    batch_.commit();
    return true;
  }

  [[gnu::noinline, gnu::cold]] static std::string corrupt(std::size_t len) {
    return "corrupt record: " + std::to_string(len) + "-byte frame does not decode";
  }

  void flush() {
    if (batch_.empty()) return;
    head_->consume(batch_);
    batch_.clear();
  }

  std::vector<Partial> channels_;
  RecordBatch<T> batch_;
  BatchConsumer<T>* head_;
};

}  // namespace weir::detail
