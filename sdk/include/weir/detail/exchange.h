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

inline void storeTimestamp(std::uint8_t* p, std::int64_t ts) {
  const auto v = static_cast<std::uint64_t>(ts);
  storeFrameHeader(p, static_cast<std::uint32_t>(v));
  storeFrameHeader(p + 4, static_cast<std::uint32_t>(v >> 32));
}

inline std::int64_t loadTimestamp(const std::uint8_t* p) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(loadFrameHeader(p)) |
                                   static_cast<std::uint64_t>(loadFrameHeader(p + 4)) << 32);
}

// A record larger than this is refused: 31 bits of the frame's length word are the hard limit of
// the format (the 32nd says whether a timestamp follows).
inline constexpr std::size_t kMaxRecordSize = 0x7FFFFFFFu;

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
    const T* v = batch.begin();
    const std::int64_t* ts = batch.timestamps();
    const std::size_t n = batch.size();
    switch (partitioner_) {
      case Partitioner::kDefault:
      case Partitioner::kForward:
        for (std::size_t i = 0; i < n; ++i)
          write(0, v[i], ts[i]);
        break;
      case Partitioner::kRebalance:
        for (std::size_t i = 0; i < n; ++i) {
          write(next_channel_, v[i], ts[i]);
          if (++next_channel_ == num_channels_) next_channel_ = 0;
        }
        break;
      case Partitioner::kBroadcast:
        for (std::size_t i = 0; i < n; ++i) {
          for (int c = 0; c < num_channels_; ++c)
            write(c, v[i], ts[i]);
        }
        break;
      case Partitioner::kHash:
        if constexpr (!std::is_same_v<KeyF, NoKeySelector>) {
          for (std::size_t i = 0; i < n; ++i) {
            const int kg = keyGroupForHash(hasher_(callKey(key_, v[i])), max_parallelism_);
            write(channel_of_group_[static_cast<std::size_t>(kg)], v[i], ts[i]);
          }
        } else {
          throw std::logic_error("hash partitioning needs a key selector (use keyBy)");
        }
        break;
    }
  }

  void consumeWatermark(std::int64_t watermark) override { gate_.emitWatermark(watermark); }
  void consumeWatermarkStatus(bool idle) override { gate_.emitWatermarkStatus(idle); }

 private:
  static std::size_t headerSize(std::int64_t ts) {
    return ts == kNoTimestamp ? kFrameHeaderSize : kFrameHeaderSize + kTimestampSize;
  }
  // Writes a frame header (length word, then the timestamp if any); returns the payload position.
  static std::uint8_t* writeHeader(std::uint8_t* p, std::size_t len, std::int64_t ts) {
    if (ts == kNoTimestamp) {
      storeFrameHeader(p, static_cast<std::uint32_t>(len));
      return p + kFrameHeaderSize;
    }
    storeFrameHeader(p, static_cast<std::uint32_t>(len) | kFrameTimestampFlag);
    storeTimestamp(p + kFrameHeaderSize, ts);
    return p + kFrameHeaderSize + kTimestampSize;
  }

  void write(int channel, const T& v, std::int64_t ts) {
    const std::size_t len = Serde<T>::size(v);
    const std::size_t need = headerSize(ts) + len;
    WriteCursor& c = cursors_[channel];
    if (static_cast<std::size_t>(c.end - c.pos) < need) {
      writeSlow(channel, v, len, ts);
      return;
    }
    c.pos = Serde<T>::write(v, writeHeader(c.pos, len, ts));
  }

  void advance(int channel) {
    if (!gate_.advance(channel)) throw WriterCancelled{};
  }

  // The record does not fit in what is left of the current buffer.
  void writeSlow(int channel, const T& v, std::size_t len, std::int64_t ts) {
    if (len > kMaxRecordSize) throw std::length_error("record larger than 2 GiB");
    WriteCursor& c = cursors_[channel];
    advance(channel);  // a fresh, empty buffer
    const std::size_t need = headerSize(ts) + len;
    if (static_cast<std::size_t>(c.end - c.pos) >= need) {
      c.pos = Serde<T>::write(v, writeHeader(c.pos, len, ts));
      return;
    }
    // Larger than a whole buffer: encode once, then spread the payload over several buffers.
    if (scratch_.size() < len) scratch_.resize(len);
    Serde<T>::write(v, scratch_.data());
    c.pos = writeHeader(c.pos, len, ts);
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

  // Reads every record of `data`. Returns an empty string on success, or what is wrong with the
  // bytes.
  std::string read(int channel, const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
      InputProgress progress;
      std::string err = readBatch(channel, data, size, RecordBatch<T>::kCapacity, progress);
      if (!err.empty()) return err;
      data += progress.bytes;
      size -= progress.bytes;
    }
    return {};
  }

  // Reads the records of `data` (a buffer of `channel`, or what is left of one) until one batch,
  // or `max_records` (at least one), is full, and pushes them into the head operator. `progress`
  // gets the records pushed and the bytes read: all of them, or fewer when the batch filled up
  // first, and then the rest starts with a record frame. The record the bytes end within (if any)
  // is kept until the channel's next bytes complete it, and its bytes count as read. So the
  // caller can react to events between batches of a buffer. Returns an empty string on success,
  // or what is wrong with the bytes.
  std::string readBatch(int channel, const std::uint8_t* data, std::size_t size,
                        std::size_t max_records, InputProgress& progress) {
    progress = InputProgress{size, 0};
    const std::size_t limit = std::clamp<std::size_t>(max_records, 1, RecordBatch<T>::kCapacity);
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
      const bool ok = decode(partial.bytes.data(), partial.expected, partial.timestamp);
      const std::size_t bad_len = partial.expected;
      partial.expected = 0;
      partial.bytes.clear();
      if (partial.bytes.capacity() > (1u << 20)) std::vector<std::uint8_t>().swap(partial.bytes);
      if (!ok) return corrupt(bad_len);
    }
    // The batch cursor lives in locals: a store of a decoded record may alias the batch's members.
    T* const slots = batch_.data();
    std::int64_t* const stamps = batch_.timestampData();
    std::size_t n = batch_.size();
    if (n >= limit) progress.bytes = static_cast<std::size_t>(p - data);
    while (p < end && n < limit) {
      if (static_cast<std::size_t>(end - p) < kFrameHeaderSize) [[unlikely]] {
        batch_.setSize(n);
        flush();
        return "truncated record frame header";
      }
      const std::uint32_t word = loadFrameHeader(p);
      p += kFrameHeaderSize;
      const std::size_t len = word & ~kFrameTimestampFlag;
      std::int64_t ts = kNoTimestamp;
      if ((word & kFrameTimestampFlag) != 0) {
        if (static_cast<std::size_t>(end - p) < kTimestampSize) [[unlikely]] {
          batch_.setSize(n);
          flush();
          return "truncated record frame header";
        }
        ts = loadTimestamp(p);
        p += kTimestampSize;
      }
      if (len > static_cast<std::size_t>(end - p)) [[unlikely]] {
        if (len == 0) break;
        partial.expected = len;
        partial.timestamp = ts;
        partial.bytes.assign(p, end);
        break;
      }
      if (Serde<T>::read(p, p + len, slots[n]) != p + len) [[unlikely]] {
        batch_.setSize(n);
        flush();
        return corrupt(len);
      }
      stamps[n] = ts;
      ++n;
      p += len;
      if (n == limit) {
        progress.bytes = static_cast<std::size_t>(p - data);
        break;
      }
    }
    batch_.setSize(n);
    progress.records = n;
    flush();
    return {};
  }

  // Appends the bytes of the record frame of `channel` read only in part so far (its header and
  // the payload received), exactly as they arrived; nothing at a record boundary. Reading these
  // bytes and then the rest of the channel's buffers in a fresh reader yields the same records.
  void partialFrame(int channel, std::string& out) const {
    if (channel < 0 || channel >= static_cast<int>(channels_.size())) return;
    const Partial& partial = channels_[channel];
    if (partial.expected == 0) return;
    std::uint8_t header[kFrameHeaderSize + kTimestampSize];
    std::size_t header_size = kFrameHeaderSize;
    if (partial.timestamp == kNoTimestamp) {
      storeFrameHeader(header, static_cast<std::uint32_t>(partial.expected));
    } else {
      storeFrameHeader(header, static_cast<std::uint32_t>(partial.expected) | kFrameTimestampFlag);
      storeTimestamp(header + kFrameHeaderSize, partial.timestamp);
      header_size += kTimestampSize;
    }
    out.append(reinterpret_cast<const char*>(header), header_size);
    out.append(reinterpret_cast<const char*>(partial.bytes.data()), partial.bytes.size());
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
    std::int64_t timestamp = kNoTimestamp;
    std::vector<std::uint8_t> bytes;
  };

  // Decodes one reassembled record (the rare path; whole frames are decoded inline in read()).
  bool decode(const std::uint8_t* p, std::size_t len, std::int64_t ts) {
    if (batch_.full()) flush();
    const std::uint8_t* q = Serde<T>::read(p, p + len, batch_.nextSlot());
    if (q != p + len) {
      flush();
      return false;
    }
    batch_.commit(ts);
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
