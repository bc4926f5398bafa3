// The TCP data plane: the frame header, channels between two NetworkEnvironments (two TaskManagers
// in one process, on 127.0.0.1 with ephemeral ports), one connection per pair, credit-based flow
// control, connections refusing malformed input, and failure and shutdown. Every wait is on a
// condition with a deadline.
#include "runtime/network/network_environment.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/job_test_util.h"

using namespace weir::engine;
using weir::Status;
using weir::testing::eventually;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t kSegment = 4096;
constexpr milliseconds kWait{10000};

NetworkOptions testOptions(int buffers_per_channel = 2) {
  NetworkOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.segment_size = kSegment;
  o.buffers_per_channel = buffers_per_channel;
  o.connect_timeout = std::chrono::seconds(5);
  return o;
}

// A started environment; a failure to listen fails the test.
struct Env {
  explicit Env(NetworkOptions o = testOptions()) : net(std::move(o)) {
    REQUIRE(net.start().isOk());
  }
  NetworkEnvironment net;
};

// Records the reasons passed to failure handlers, from any thread.
class FailureLog {
 public:
  ChannelFailureHandler handler() {
    return [this](const Status& s) {
      std::lock_guard<std::mutex> lock(mu_);
      reasons_.push_back(s.message());
    };
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reasons_.size();
  }
  std::vector<std::string> reasons() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reasons_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> reasons_;
};

// Sends the default logger's output to a ring buffer for the life of the object. Create it before
// any environment and let it outlive them: the logger must not change while their threads log.
class LogCapture {
 public:
  LogCapture()
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(512)),
        previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink_));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  bool hasError(const std::string& text) const {
    for (const auto& msg : sink_->last_raw()) {
      const std::string line(msg.payload.data(), msg.payload.size());
      if (msg.level == spdlog::level::err && line.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

// Distinct, recognisable bytes for buffer `seq` of channel `channel`.
std::string payload(int channel, int seq, std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>((channel * 131 + seq * 7 + static_cast<int>(i)) & 0xff);
  const std::string tag = std::to_string(channel) + "/" + std::to_string(seq);
  s.replace(0, std::min(tag.size(), size), tag.substr(0, size));
  return s;
}

Buffer fill(const std::shared_ptr<BufferPool>& pool, std::uint8_t* segment, const std::string& s) {
  std::memcpy(segment, s.data(), s.size());
  return Buffer::data(pool, segment, s.size());
}

// Pushes `s` now; the pool must have a free segment.
void pushNow(RemoteOutputChannel& out, const std::shared_ptr<BufferPool>& pool,
             const std::string& s) {
  std::uint8_t* segment = pool->tryRequest();
  REQUIRE(segment != nullptr);
  out.push(fill(pool, segment, s));
}

// Pushes `s`, waiting for a segment like a producer under back-pressure; false when cancelled.
bool pushWaiting(RemoteOutputChannel& out, const std::shared_ptr<BufferPool>& pool,
                 const std::string& s, const std::atomic<bool>& cancelled) {
  std::uint8_t* segment = pool->request(cancelled);
  if (segment == nullptr) return false;
  out.push(fill(pool, segment, s));
  return true;
}

std::optional<InputGate::Item> next(InputGate& gate, milliseconds timeout = kWait) {
  const std::atomic<bool> cancelled{false};
  return gate.poll(Clock::now() + timeout, cancelled);
}

std::string bytesOf(const Buffer& b) {
  return std::string(reinterpret_cast<const char*>(b.bytes()), b.size());
}

// What arrived on each channel of a gate, until `ends` channels (all by default) ended or the
// deadline passed.
struct Received {
  std::vector<std::vector<std::string>> data;
  std::vector<bool> ended;
  bool allEnded() const { return std::find(ended.begin(), ended.end(), false) == ended.end(); }
};

Received drain(InputGate& gate, int ends = -1, milliseconds timeout = kWait) {
  Received r;
  r.data.resize(static_cast<std::size_t>(gate.numChannels()));
  r.ended.resize(static_cast<std::size_t>(gate.numChannels()), false);
  if (ends < 0) ends = gate.numChannels();
  const auto deadline = Clock::now() + timeout;
  const std::atomic<bool> cancelled{false};
  while (std::count(r.ended.begin(), r.ended.end(), true) < ends) {
    auto item = gate.poll(deadline, cancelled);
    if (!item) break;
    const auto ch = static_cast<std::size_t>(item->channel);
    if (item->buffer.kind() == Buffer::Kind::kEndOfInput) {
      r.ended[ch] = true;
    } else {
      r.data[ch].push_back(bytesOf(item->buffer));
    }
  }
  return r;
}

std::size_t threadCount() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task"))
    ++n;
  return n;
}

std::string u32(std::uint32_t v) {
  std::string s(4, '\0');
  storeU32(reinterpret_cast<std::uint8_t*>(s.data()), v);
  return s;
}

std::string frame(FrameKind kind, std::uint32_t channel, const std::string& body) {
  std::uint8_t header[kFrameHeaderBytes];
  encodeFrameHeader({kind, channel, static_cast<std::uint32_t>(body.size())}, header);
  return std::string(reinterpret_cast<const char*>(header), kFrameHeaderBytes) + body;
}

// A hand-driven TCP client of an environment's data port.
class RawPeer {
 public:
  explicit RawPeer(const std::string& address) {
    const auto colon = address.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    REQUIRE(::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) == 1);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawPeer() { close(); }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  bool send(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t w = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (w <= 0) return false;
      done += static_cast<std::size_t>(w);
    }
    return true;
  }
  // Exactly `n` bytes, or nullopt when the connection ends or the deadline passes first.
  std::optional<std::string> receive(std::size_t n, milliseconds timeout = kWait) {
    std::string out;
    const auto deadline = Clock::now() + timeout;
    while (out.size() < n) {
      if (!waitReadable(deadline)) return std::nullopt;
      char buf[4096];
      const ssize_t r = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (r <= 0) return std::nullopt;
      out.append(buf, static_cast<std::size_t>(r));
    }
    return out;
  }
  // True when the other side closes the connection before the deadline (what it sends first is
  // read and dropped).
  bool closedByPeer(milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (!waitReadable(deadline)) return false;
      char buf[4096];
      const ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  }
  // Closes with a reset instead of an orderly shutdown.
  void reset() {
    const linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool waitReadable(Clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(left));
      if (rc > 0) return true;
      if (rc < 0 && errno != EINTR) return false;
    }
  }

  int fd_ = -1;
};

// Sends buffers of several sizes and an end-of-input from `producer` to `consumer` on one channel
// and checks they arrive whole, in order, on the right gate channel. With `request_first`, the
// consumer's request reaches the producer before the producer creates its channel (the consumer
// must then be the side that connects: the one with the smaller address).
void roundTrip(NetworkEnvironment& producer, NetworkEnvironment& consumer, const std::string& key,
               bool request_first) {
  FailureLog failures;
  InputGate gate(2);
  auto pool = std::make_shared<BufferPool>(kSegment, 3);
  std::shared_ptr<RemoteOutputChannel> out;
  if (request_first) {
    consumer.openInputChannel(key, producer.address(), &gate, 1, failures.handler());
    REQUIRE(eventually([&] { return producer.pendingRequestCount() == 1; }, kWait));
    out = producer.createOutputChannel(key, consumer.address(), failures.handler());
    CHECK(producer.pendingRequestCount() == 0);
  } else {
    out = producer.createOutputChannel(key, consumer.address(), failures.handler());
    consumer.openInputChannel(key, producer.address(), &gate, 1, failures.handler());
  }
  std::vector<std::string> sent;
  for (std::size_t size : {std::size_t{1}, std::size_t{100}, kSegment, std::size_t{17}, kSegment,
                           std::size_t{2048}, std::size_t{3}, std::size_t{999}, kSegment - 1}) {
    sent.push_back(payload(1, static_cast<int>(sent.size()), size));
  }
  std::atomic<bool> cancelled{false};
  std::thread writer([&] {
    for (const std::string& s : sent) {
      if (!pushWaiting(*out, pool, s, cancelled)) return;
    }
    out->push(Buffer::endOfInput());
  });
  Received got = drain(gate, 1);
  cancelled = true;
  pool->wakeAll();
  writer.join();
  CHECK(got.ended[1]);
  CHECK(got.data[1] == sent);
  CHECK(got.data[0].empty());
  CHECK_FALSE(next(gate, milliseconds(0)).has_value());
  // Sent buffers went back to the producer's pool.
  CHECK(eventually([&] { return pool->inUse() == 0; }, kWait));
  CHECK(out->queued() == 0);
  CHECK(failures.reasons().empty());
  consumer.releaseChannels(key);
  producer.releaseChannels(key);
}

// The environment with the smaller address connects to the other.
std::pair<NetworkEnvironment*, NetworkEnvironment*> lowHigh(Env& a, Env& b) {
  if (a.net.address() < b.net.address()) return {&a.net, &b.net};
  return {&b.net, &a.net};
}

}  // namespace

TEST_CASE("frame header: encode and decode round trip") {
  const std::uint32_t max_data = 32 * 1024;
  const FrameHeader cases[] = {
      {FrameKind::kHello, 0, 15},      {FrameKind::kRequest, 0xfffffffe, kMaxControlPayload},
      {FrameKind::kCredit, 7, 4},      {FrameKind::kData, 0x01020304, 1},
      {FrameKind::kData, 3, max_data}, {FrameKind::kEndOfInput, 42, 0},
  };
  for (const FrameHeader& h : cases) {
    std::uint8_t bytes[kFrameHeaderBytes];
    encodeFrameHeader(h, bytes);
    CHECK(bytes[0] == kFrameVersion);
    CHECK(bytes[2] == 0);
    CHECK(bytes[3] == 0);
    auto d = decodeFrameHeader(bytes, max_data);
    REQUIRE_MESSAGE(d.isOk(), d.status().message());
    CHECK(d->kind == h.kind);
    CHECK(d->channel == h.channel);
    CHECK(d->length == h.length);
  }
  // Little endian on the wire, whatever the host.
  std::uint8_t bytes[kFrameHeaderBytes];
  encodeFrameHeader({FrameKind::kData, 0x01020304, 0x0a0b}, bytes);
  CHECK(bytes[4] == 0x04);
  CHECK(bytes[7] == 0x01);
  CHECK(bytes[8] == 0x0b);
  CHECK(bytes[9] == 0x0a);
}

TEST_CASE("frame header: decode rejects what breaks the protocol, saying why") {
  const std::uint32_t max_data = 4096;
  auto reject = [&](FrameHeader h, const std::string& expected, int version = kFrameVersion,
                    int kind = -1) {
    std::uint8_t bytes[kFrameHeaderBytes];
    encodeFrameHeader(h, bytes);
    bytes[0] = static_cast<std::uint8_t>(version);
    if (kind >= 0) bytes[1] = static_cast<std::uint8_t>(kind);
    auto d = decodeFrameHeader(bytes, max_data);
    REQUIRE_FALSE(d.isOk());
    CHECK(d.status().code() == Status::Code::kCorruption);
    CHECK_MESSAGE(d.status().message().find(expected) != std::string::npos, d.status().message());
  };
  reject({FrameKind::kData, 1, 10}, "unsupported frame version 1", 1);
  reject({FrameKind::kData, 1, 10}, "unsupported frame version 0", 0);
  reject({FrameKind::kData, 1, 10}, "unknown frame kind 0", kFrameVersion, 0);
  reject({FrameKind::kData, 1, 10}, "unknown frame kind 200", kFrameVersion, 200);
  reject({FrameKind::kData, 1, max_data + 1}, "exceeds the limit of 4096");
  reject({FrameKind::kData, 1, 0xffffffff}, "exceeds the limit of 4096");
  reject({FrameKind::kData, 1, 0}, "empty data frame");
  reject({FrameKind::kRequest, 1, kMaxControlPayload + 1}, "exceeds the limit of 4096");
  reject({FrameKind::kHello, 0, 1u << 30}, "exceeds the limit");
  reject({FrameKind::kCredit, 1, 5}, "credit frame of 5 bytes");
  reject({FrameKind::kCredit, 1, 0}, "credit frame of 0 bytes");
  reject({FrameKind::kEndOfInput, 1, 1}, "exceeds the limit of 0");
  reject({FrameKind::kWatermark, 1, 4}, "watermark frame of 4 bytes (expected 8)");
  reject({FrameKind::kWatermarkStatus, 1, 0}, "watermark-status frame of 0 bytes (expected 1)");
  // The version is checked first: a frame from another version is not misread as this one's.
  reject({FrameKind::kData, 1, 1u << 31}, "version 9", 9, 77);
}

TEST_CASE("frame: a barrier round-trips through its frame") {
  const CheckpointBarrier cases[] = {
      {},
      {1, 1700000000000, false, false, false, "/var/weir/checkpoints/job/chk-1"},
      {42, -5, true, false, false, "/sp"},
      {std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min(), true,
       true, false, "/dir with spaces/\xc3\xa9"},
      {-1, 0, true, true, true, std::string(kMaxControlPayload - kBarrierFixedPayload, 'd')},
      {7, 8, false, false, true, ""},
      {7, 8, false, true, false, std::string("/a\0b", 4)},
  };
  for (const CheckpointBarrier& b : cases) {
    auto payload = encodeBarrierPayload(b);
    REQUIRE_MESSAGE(payload.isOk(), payload.status().message());
    CHECK(payload->size() == kBarrierFixedPayload + b.target_dir.size());
    const std::string bytes = frame(FrameKind::kBarrier, 9, *payload);
    auto h = decodeFrameHeader(reinterpret_cast<const std::uint8_t*>(bytes.data()), kSegment);
    REQUIRE_MESSAGE(h.isOk(), h.status().message());
    CHECK(h->kind == FrameKind::kBarrier);
    CHECK(h->channel == 9);
    CHECK(h->length == payload->size());
    auto decoded = decodeBarrierPayload(
        reinterpret_cast<const std::uint8_t*>(bytes.data()) + kFrameHeaderBytes, h->length);
    REQUIRE_MESSAGE(decoded.isOk(), decoded.status().message());
    CHECK(*decoded == b);
  }
  // The layout: little-endian id and timestamp, then the flags, then the directory's length.
  auto p = encodeBarrierPayload({0x0102030405060708, 2, true, false, true, "/x"});
  REQUIRE(p.isOk());
  CHECK(static_cast<std::uint8_t>((*p)[0]) == 0x08);
  CHECK(static_cast<std::uint8_t>((*p)[7]) == 0x01);
  CHECK(static_cast<std::uint8_t>((*p)[8]) == 2);
  CHECK(static_cast<std::uint8_t>((*p)[16]) == 0x5);
  CHECK(p->substr(17) == u32(0) + u32(2) + "/x");
  CHECK(kFrameVersion == 4);
  // An unaligned barrier: flag bit 3, and the overtaken count before the directory's length.
  CheckpointBarrier unaligned{9, 3, false, false, false, "/u"};
  unaligned.unaligned = true;
  auto u = encodeBarrierPayload(unaligned, 0x01020304);
  REQUIRE(u.isOk());
  CHECK(static_cast<std::uint8_t>((*u)[16]) == 0x8);
  CHECK(u->substr(17) == u32(0x01020304) + u32(2) + "/u");
  std::uint32_t overtaken = 0;
  auto back =
      decodeBarrierPayload(reinterpret_cast<const std::uint8_t*>(u->data()), u->size(), &overtaken);
  REQUIRE(back.isOk());
  CHECK(*back == unaligned);
  CHECK(overtaken == 0x01020304);
  CHECK(static_cast<int>(FrameKind::kBarrier) == 8);
}

TEST_CASE("frame: malformed barriers are refused, saying why") {
  auto rejectHeader = [](std::uint32_t length, const std::string& expected) {
    std::uint8_t bytes[kFrameHeaderBytes];
    encodeFrameHeader({FrameKind::kBarrier, 1, length}, bytes);
    auto d = decodeFrameHeader(bytes, kSegment);
    REQUIRE_FALSE(d.isOk());
    CHECK(d.status().code() == Status::Code::kCorruption);
    CHECK_MESSAGE(d.status().message().find(expected) != std::string::npos, d.status().message());
  };
  rejectHeader(0, "barrier frame of 0 bytes");
  rejectHeader(kBarrierFixedPayload - 1, "barrier frame of 24 bytes");
  rejectHeader(kMaxControlPayload + 1, "exceeds the limit of 4096");
  rejectHeader(0xffffffff, "exceeds the limit of 4096");

  auto valid = encodeBarrierPayload({5, 6, true, false, false, "/chk"});
  REQUIRE(valid.isOk());
  auto rejectPayload = [](const std::string& bytes, const std::string& expected) {
    auto d =
        decodeBarrierPayload(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    REQUIRE_FALSE(d.isOk());
    CHECK(d.status().code() == Status::Code::kCorruption);
    CHECK_MESSAGE(d.status().message().find(expected) != std::string::npos, d.status().message());
  };
  std::string bad = *valid;
  bad[16] = 16;
  rejectPayload(bad, "unknown flags 16");
  bad = *valid;
  bad.replace(21, 4, u32(5));
  rejectPayload(bad, "target directory of 5 bytes in a payload of 29 bytes");
  bad.replace(21, 4, u32(0xffffffff));
  rejectPayload(bad, "target directory of 4294967295 bytes");
  rejectPayload(valid->substr(0, 24), "barrier payload of 24 bytes");
  rejectPayload(*valid + std::string(kMaxControlPayload, 'x'), "barrier payload of");

  // A directory too long for a frame is refused when encoding.
  CheckpointBarrier long_dir{
      1, 1, false, false, false, std::string(kMaxControlPayload - kBarrierFixedPayload + 1, 'd')};
  auto e = encodeBarrierPayload(long_dir);
  REQUIRE_FALSE(e.isOk());
  CHECK_MESSAGE(e.status().message().find("longer than a barrier can carry") != std::string::npos,
                e.status().message());
}

TEST_CASE("network environment: data and end of input arrive in order, request before channel") {
  Env a, b;
  auto [low, high] = lowHigh(a, b);
  // The request can only come first when the consumer is the side that connects.
  roundTrip(*high, *low, "job/0.0/1.0.0", true);
  CHECK(a.net.connectionCount() == 1);
  CHECK(b.net.connectionCount() == 1);
}

TEST_CASE("network environment: data and end of input arrive in order, channel before request") {
  Env a, b;
  auto [low, high] = lowHigh(a, b);
  SUBCASE("the producer connects") {
    roundTrip(*low, *high, "job/0.0/1.0.0", false);
  }
  SUBCASE("the consumer connects") {
    roundTrip(*high, *low, "job/0.0/1.0.0", false);
  }
  SUBCASE("both orders on one connection, both directions") {
    roundTrip(*high, *low, "job/0.0/1.0.0", true);
    roundTrip(*low, *high, "job/0.1/1.1.0", false);
    roundTrip(*high, *low, "job/0.2/1.2.0", false);
  }
  CHECK(a.net.connectionCount() == 1);
  CHECK(b.net.connectionCount() == 1);
}

TEST_CASE("network environment: many channels in both directions share one connection") {
  constexpr int kChannels = 6;
  constexpr int kBuffers = 40;
  Env a, b;
  FailureLog failures;
  InputGate gate_a(kChannels);                             // B -> A
  InputGate gate_b(kChannels);                             // A -> B
  std::vector<std::shared_ptr<RemoteOutputChannel>> outs;  // A -> B first, then B -> A
  std::vector<std::shared_ptr<BufferPool>> pools;
  for (int i = 0; i < kChannels; ++i) {
    const std::string key = "mux/a/" + std::to_string(i);
    outs.push_back(a.net.createOutputChannel(key, b.net.address(), failures.handler()));
    b.net.openInputChannel(key, a.net.address(), &gate_b, i, failures.handler());
  }
  for (int i = 0; i < kChannels; ++i) {
    // The other order for this direction: inputs first.
    a.net.openInputChannel("mux/b/" + std::to_string(i), b.net.address(), &gate_a, i,
                           failures.handler());
  }
  for (int i = 0; i < kChannels; ++i) {
    outs.push_back(b.net.createOutputChannel("mux/b/" + std::to_string(i), a.net.address(),
                                             failures.handler()));
  }
  for (std::size_t i = 0; i < outs.size(); ++i)
    pools.push_back(std::make_shared<BufferPool>(kSegment, 3));

  std::atomic<bool> cancelled{false};
  std::vector<std::thread> producers;
  for (std::size_t i = 0; i < outs.size(); ++i) {
    producers.emplace_back([&, i] {
      for (int seq = 0; seq < kBuffers; ++seq) {
        const std::size_t size = 1 + (static_cast<std::size_t>(seq) * 997 + i * 31) % kSegment;
        if (!pushWaiting(*outs[i], pools[i], payload(static_cast<int>(i), seq, size), cancelled))
          return;
      }
      outs[i]->push(Buffer::endOfInput());
    });
  }
  Received at_a, at_b;
  std::thread consumer_a([&] { at_a = drain(gate_a); });
  std::thread consumer_b([&] { at_b = drain(gate_b); });
  consumer_a.join();
  consumer_b.join();
  cancelled = true;
  for (auto& p : pools)
    p->wakeAll();
  for (auto& t : producers)
    t.join();

  CHECK(at_a.allEnded());
  CHECK(at_b.allEnded());
  for (int i = 0; i < kChannels; ++i) {
    for (int dir = 0; dir < 2; ++dir) {
      const int producer = dir * kChannels + i;
      const auto& got = (dir == 0 ? at_b : at_a).data[static_cast<std::size_t>(i)];
      REQUIRE(got.size() == kBuffers);
      for (int seq = 0; seq < kBuffers; ++seq) {
        const std::size_t size =
            1 + (static_cast<std::size_t>(seq) * 997 + static_cast<std::size_t>(producer) * 31) %
                    kSegment;
        CHECK(got[static_cast<std::size_t>(seq)] == payload(producer, seq, size));
      }
    }
  }
  CHECK(a.net.connectionCount() == 1);
  CHECK(b.net.connectionCount() == 1);
  CHECK(failures.reasons().empty());
  a.net.releaseChannels("mux/");
  b.net.releaseChannels("mux/");
}

TEST_CASE("network environment: credits bound what crosses, the rest waits at the producer") {
  constexpr int kCredits = 2;
  constexpr std::size_t kPoolSize = 5;
  constexpr int kBuffers = 12;
  Env a(testOptions(kCredits)), b(testOptions(kCredits));
  FailureLog failures;
  InputGate gate(1);
  auto pool = std::make_shared<BufferPool>(kSegment, kPoolSize);
  auto out = a.net.createOutputChannel("bp/0", b.net.address(), failures.handler());
  b.net.openInputChannel("bp/0", a.net.address(), &gate, 0, failures.handler());

  std::vector<std::string> sent;
  for (int seq = 0; seq < kBuffers; ++seq)
    sent.push_back(payload(0, seq, 512 + static_cast<std::size_t>(seq)));
  std::atomic<bool> cancelled{false};
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    for (const std::string& s : sent) {
      if (!pushWaiting(*out, pool, s, cancelled)) return;
      ++pushed;
    }
    out->push(Buffer::endOfInput());
  });

  // Nobody reads the gate: `kCredits` buffers cross, the pool's worth waits in the channel, and
  // the producer blocks on its exhausted pool.
  const bool stalled = eventually(
      [&] {
        return gate.queued() == kCredits && out->queued() == kPoolSize && pool->waiting() == 1;
      },
      kWait);
  CHECK(stalled);
  CHECK(pushed == kCredits + static_cast<int>(kPoolSize));
  // And it stays that way: nothing more crosses without credit, and the pool does not grow.
  CHECK_FALSE(eventually([&] { return gate.queued() > kCredits; }, milliseconds(100)));
  CHECK(out->queued() == kPoolSize);
  CHECK(pool->allocated() == kPoolSize);

  // Reading one buffer returns one credit, and exactly one more buffer crosses.
  {
    auto item = next(gate);
    REQUIRE(item.has_value());
    CHECK(bytesOf(item->buffer) == sent[0]);
  }
  CHECK(eventually([&] { return gate.queued() == kCredits && pushed == kCredits + 6; }, kWait));

  std::vector<std::string> got{sent[0]};
  bool ended = false;
  std::size_t most_queued = 0;
  while (!ended) {
    most_queued = std::max(most_queued, gate.queued());
    auto item = next(gate);
    if (!item) break;
    if (item->buffer.kind() == Buffer::Kind::kEndOfInput) {
      ended = true;
    } else {
      got.push_back(bytesOf(item->buffer));
    }
  }
  cancelled = true;
  pool->wakeAll();
  producer.join();
  CHECK(ended);
  CHECK(got == sent);
  CHECK(most_queued <= kCredits + 1);  // + the end of input, which needs no credit
  CHECK(pool->allocated() == kPoolSize);
  CHECK(pool->peakInUse() == kPoolSize);
  CHECK(failures.reasons().empty());
  b.net.releaseChannels("bp/");
  a.net.releaseChannels("bp/");
}

TEST_CASE("network environment: malformed input closes that connection only") {
  LogCapture log;  // before the environments: it must outlive their threads
  Env e, other;
  const std::string fake_peer = "127.0.0.1:1";  // a hello may claim any address
  auto expectDropped = [&](const std::string& bytes, const std::string& logged) {
    RawPeer raw(e.net.address());
    raw.send(bytes);
    CHECK_MESSAGE(raw.closedByPeer(), "connection kept open after: " << logged);
    CHECK_MESSAGE(eventually([&] { return log.hasError(logged); }, kWait), logged);
  };
  const std::string hello = frame(FrameKind::kHello, 0, fake_peer);

  SUBCASE("garbage instead of a hello") {
    expectDropped("GET / HTTP/1.1\r\nHost: weir\r\n\r\n", "did not introduce itself");
  }
  SUBCASE("a hello of another version") {
    std::string bad = hello;
    bad[0] = 7;
    expectDropped(bad, "unsupported frame version 7");
  }
  SUBCASE("a hello too long") {
    expectDropped(frame(FrameKind::kHello, 0, std::string(kMaxControlPayload + 1, 'x')),
                  "exceeds the limit");
  }
  SUBCASE("a frame of another version after the hello") {
    std::string bad = frame(FrameKind::kCredit, 1, u32(1));
    bad[0] = 1;
    expectDropped(hello + bad, "unsupported frame version 1");
  }
  SUBCASE("an unknown frame kind") {
    std::string bad = frame(FrameKind::kCredit, 1, u32(1));
    bad[1] = 66;
    expectDropped(hello + bad, "unknown frame kind 66");
  }
  SUBCASE("a data frame longer than a segment") {
    std::uint8_t header[kFrameHeaderBytes];
    encodeFrameHeader({FrameKind::kData, 1, 64 * 1024 * 1024}, header);
    expectDropped(hello + std::string(reinterpret_cast<char*>(header), sizeof header),
                  "exceeds the limit of 4096");
  }
  SUBCASE("a request too long") {
    expectDropped(hello + frame(FrameKind::kRequest, 1, std::string(kMaxControlPayload + 1, 'k')),
                  "exceeds the limit of 4096");
  }
  SUBCASE("a barrier frame too short") {
    expectDropped(hello + frame(FrameKind::kBarrier, 1, std::string(8, '\0')),
                  "barrier frame of 8 bytes");
  }
  SUBCASE("a barrier whose directory length disagrees with its frame") {
    auto p = encodeBarrierPayload({1, 2, false, false, false, "/chk-1"});
    REQUIRE(p.isOk());
    std::string bad = *p;
    bad.replace(21, 4, u32(100));
    expectDropped(hello + frame(FrameKind::kBarrier, 1, bad), "barrier target directory of 100");
  }
  SUBCASE("a barrier with unknown flags") {
    auto p = encodeBarrierPayload({1, 2, false, false, false, "/chk-1"});
    REQUIRE(p.isOk());
    std::string bad = *p;
    bad[16] = static_cast<char>(0x80);
    expectDropped(hello + frame(FrameKind::kBarrier, 1, bad), "unknown flags 128");
  }
  SUBCASE("a barrier for a channel nobody opened") {
    auto p = encodeBarrierPayload({1, 2, false, false, false, "/chk-1"});
    REQUIRE(p.isOk());
    expectDropped(hello + frame(FrameKind::kBarrier, 78, *p), "barrier for unknown channel 78");
  }
  SUBCASE("data for a channel nobody opened") {
    expectDropped(hello + frame(FrameKind::kData, 77, "hello?"), "unknown channel 77");
  }
  SUBCASE("data beyond the granted credit") {
    // This environment opens channel 1 towards the fake peer with 2 credits; three buffers come.
    InputGate gate(1);
    FailureLog failures;
    RawPeer raw(e.net.address());
    raw.send(hello);
    e.net.openInputChannel("beyond/0", fake_peer, &gate, 0, failures.handler());
    auto request = raw.receive(kFrameHeaderBytes + 4 + 8);
    REQUIRE(request.has_value());
    auto h = decodeFrameHeader(reinterpret_cast<const std::uint8_t*>(request->data()), kSegment);
    REQUIRE(h.isOk());
    CHECK(h->kind == FrameKind::kRequest);
    CHECK(request->substr(kFrameHeaderBytes) == u32(2) + "beyond/0");
    const std::string data = frame(FrameKind::kData, h->channel, "x");
    raw.send(data + data + data);
    CHECK(raw.closedByPeer());
    CHECK(eventually([&] { return log.hasError("beyond the granted credit"); }, kWait));
    CHECK(eventually([&] { return failures.size() == 1; }, kWait));
    CHECK(gate.queued() == 2);
    e.net.releaseChannels("beyond/");
  }
  SUBCASE("a peer that connects and says nothing holds up no one") {
    RawPeer silent_e(e.net.address()), silent_other(other.net.address());
    const auto start = Clock::now();
    roundTrip(e.net, other.net, "silent/0", false);
    CHECK(Clock::now() - start < std::chrono::seconds(3));
  }
  // The environment keeps serving.
  roundTrip(e.net, other.net, "after/0", false);
  roundTrip(other.net, e.net, "after/1", false);
  CHECK(eventually([&] { return e.net.connectionCount() == 1; }, kWait));
}

TEST_CASE("network environment: a lost connection fails the channels on it") {
  FailureLog at_a, at_b;
  InputGate gate_a(1), gate_b(1);
  auto pool_a = std::make_shared<BufferPool>(kSegment, 4);
  auto pool_b = std::make_shared<BufferPool>(kSegment, 4);
  Env a;
  auto b = std::make_unique<Env>();
  const std::string b_address = b->net.address();
  auto ab = a.net.createOutputChannel("loss/ab", b_address, at_a.handler());
  b->net.openInputChannel("loss/ab", a.net.address(), &gate_b, 0, at_b.handler());
  a.net.openInputChannel("loss/ba", b_address, &gate_a, 0, at_a.handler());
  auto ba = b->net.createOutputChannel("loss/ba", a.net.address(), at_b.handler());
  // One buffer each way proves both channels are open; then A's channel runs out of credit.
  pushNow(*ab, pool_a, "to b");
  pushNow(*ba, pool_b, "to a");
  REQUIRE(eventually([&] { return gate_a.queued() == 1 && gate_b.queued() == 1; }, kWait));
  for (int i = 0; i < 3; ++i)
    pushNow(*ab, pool_a, payload(0, i, 100));
  REQUIRE(eventually([&] { return ab->queued() == 2; }, kWait));

  b->net.stop();
  REQUIRE(eventually([&] { return at_a.size() == 2; }, kWait));
  for (const std::string& why : at_a.reasons()) {
    CHECK_MESSAGE(
        why.find("data connection to TaskManager at " + b_address + " lost") != std::string::npos,
        why);
  }
  CHECK(at_b.size() == 2);  // B's own channels fail as it shuts down
  // A's queued buffers went back to its pool; later pushes are dropped.
  CHECK(ab->queued() == 0);
  CHECK(pool_a->inUse() == 0);
  pushNow(*ab, pool_a, "too late");
  CHECK(ab->queued() == 0);
  CHECK(pool_a->inUse() == 0);
  CHECK(eventually([&] { return a.net.connectionCount() == 0; }, kWait));
  b.reset();
  CHECK(at_a.size() == 2);  // each handler once
  a.net.releaseChannels("loss/");
}

TEST_CASE("network environment: a consumer vanishing mid-stream fails the producer's channel") {
  FailureLog failures;
  auto pool = std::make_shared<BufferPool>(kSegment, 8);
  Env e;
  const std::string fake_peer = "127.0.0.1:1";
  RawPeer raw(e.net.address());
  raw.send(frame(FrameKind::kHello, 0, fake_peer));
  auto out = e.net.createOutputChannel("vanish/0", fake_peer, failures.handler());
  raw.send(frame(FrameKind::kRequest, 5, u32(1000000) + "vanish/0"));
  pushNow(*out, pool, "first");
  auto first = raw.receive(kFrameHeaderBytes + 5);
  REQUIRE(first.has_value());
  CHECK(first->substr(kFrameHeaderBytes) == "first");

  // The producer keeps writing into a socket whose reader is gone: writes fail (EPIPE/ECONNRESET)
  // and must neither raise SIGPIPE nor go unnoticed.
  std::atomic<bool> cancelled{false};
  std::thread producer([&] {
    const auto deadline = Clock::now() + kWait;
    while (failures.size() == 0 && Clock::now() < deadline) {
      if (!pushWaiting(*out, pool, std::string(kSegment, 'z'), cancelled)) return;
    }
  });
  SUBCASE("with a reset") {
    raw.reset();
  }
  SUBCASE("with an orderly close") {
    raw.close();
  }
  CHECK(eventually([&] { return failures.size() == 1; }, kWait));
  cancelled = true;
  pool->wakeAll();
  producer.join();
  CHECK(failures.size() == 1);
  CHECK(out->queued() == 0);
  CHECK(eventually([&] { return pool->inUse() == 0; }, kWait));
  e.net.releaseChannels("vanish/");
}

TEST_CASE("network environment: credit for a channel released here does not break the connection") {
  Env a, b;
  FailureLog failures;
  InputGate gate_b(2), gate_a(1);
  auto pool_a = std::make_shared<BufferPool>(kSegment, 4);
  auto pool_b = std::make_shared<BufferPool>(kSegment, 4);
  auto gone = a.net.createOutputChannel("job1/x", b.net.address(), failures.handler());
  b.net.openInputChannel("job1/x", a.net.address(), &gate_b, 0, failures.handler());
  auto back = b.net.createOutputChannel("job2/y", a.net.address(), failures.handler());
  a.net.openInputChannel("job2/y", b.net.address(), &gate_a, 0, failures.handler());
  pushNow(*gone, pool_a, "one");
  pushNow(*gone, pool_a, "two");
  REQUIRE(eventually([&] { return gate_b.queued() == 2; }, kWait));
  auto one = next(gate_b);
  auto two = next(gate_b);
  REQUIRE(one.has_value());
  REQUIRE(two.has_value());
  // Job 1 is cancelled on A before B has processed what it received; B's buffers then return
  // credit to a channel A no longer knows.
  a.net.releaseChannels("job1/");
  one.reset();
  two.reset();
  // Job 2's data, sent after those credits on the same connection, still arrives.
  pushNow(*back, pool_b, "job2 data");
  auto item = next(gate_a);
  REQUIRE(item.has_value());
  CHECK(bytesOf(item->buffer) == "job2 data");
  CHECK(failures.reasons().empty());
  CHECK(a.net.connectionCount() == 1);
  b.net.releaseChannels("job1/");
  a.net.releaseChannels("job2/");
  b.net.releaseChannels("job2/");
}

TEST_CASE("network environment: stopping with channels open is quick and leaves no threads") {
  const std::size_t threads_before = threadCount();
  FailureLog failures;
  InputGate gate_b(3);
  auto pool = std::make_shared<BufferPool>(kSegment, 3);
  std::atomic<bool> cancelled{false};
  std::thread producer;
  auto start = Clock::now();
  {
    Env a, b;
    auto out = a.net.createOutputChannel("stop/0", b.net.address(), failures.handler());
    b.net.openInputChannel("stop/0", a.net.address(), &gate_b, 0, failures.handler());
    // A channel whose consumer never comes, and one whose producer refuses connections.
    auto nowhere = a.net.createOutputChannel("stop/1", "127.0.0.1:1", failures.handler());
    b.net.openInputChannel("stop/2", "127.0.0.1:9", &gate_b, 2, failures.handler());
    // Clients that never say hello.
    RawPeer silent_a(a.net.address()), silent_b(b.net.address());
    // A producer blocked on its exhausted pool: 2 buffers at the consumer, 3 queued.
    producer = std::thread([&, out] {
      for (int i = 0; i < 10; ++i) {
        if (!pushWaiting(*out, pool, payload(0, i, 64), cancelled)) return;
      }
    });
    REQUIRE(eventually([&] { return gate_b.queued() == 2 && pool->waiting() == 1; }, kWait));
    start = Clock::now();
    a.net.stop();  // explicitly, then again by the destructor
  }
  const auto took = Clock::now() - start;
  CHECK(took < std::chrono::seconds(2));
  // The failed channel dropped its queue, which released the blocked producer.
  CHECK(eventually([&] { return pool->waiting() == 0; }, milliseconds(2000)));
  cancelled = true;
  pool->wakeAll();
  producer.join();
  CHECK(failures.size() >= 2);
  CHECK(eventually([&] { return threadCount() == threads_before; }, milliseconds(2000)));
}

namespace {

std::shared_ptr<const CheckpointBarrier> makeBarrier(std::int64_t id, bool savepoint, bool stop,
                                                     bool drain, std::string dir) {
  return std::make_shared<const CheckpointBarrier>(
      CheckpointBarrier{id, 1700000000000 + id, savepoint, stop, drain, std::move(dir)});
}

// A readable account of what a gate delivered: data as its bytes, events by kind and fields.
std::string describe(const Buffer& b) {
  switch (b.kind()) {
    case Buffer::Kind::kData:
      return bytesOf(b);
    case Buffer::Kind::kEndOfInput:
      return "end";
    case Buffer::Kind::kWatermark:
      return "watermark " + std::to_string(b.value());
    case Buffer::Kind::kWatermarkStatus:
      return "status " + std::to_string(b.value());
    case Buffer::Kind::kBarrier:
      return "barrier " + std::to_string(b.barrier()->id);
  }
  return "?";
}

}  // namespace

TEST_CASE("network environment: barriers cross in order with the data, without needing credit") {
  constexpr int kCredits = 2;
  Env a(testOptions(kCredits)), b(testOptions(kCredits));
  FailureLog failures;
  InputGate gate(1);
  auto pool = std::make_shared<BufferPool>(kSegment, 4);
  auto out = a.net.createOutputChannel("barrier/0", b.net.address(), failures.handler());
  b.net.openInputChannel("barrier/0", a.net.address(), &gate, 0, failures.handler());

  const auto first = makeBarrier(7, false, false, false, "/var/weir/chk/job-1/chk-7");
  const auto second = makeBarrier(8, true, true, true, std::string(3000, 's') + "/sp-8");
  // Two buffers use up the credit (nobody reads the gate); the events behind them still cross,
  // the data behind those waits at the producer, and so does the barrier behind that data.
  pushNow(*out, pool, "d0");
  pushNow(*out, pool, "d1");
  out->push(Buffer::watermark(100));
  out->push(Buffer::barrier(first));
  out->push(Buffer::watermark(200));  // not merged with the one before the barrier
  out->push(Buffer::barrier(first));  // the same barrier twice is sent twice
  pushNow(*out, pool, "d2");
  out->push(Buffer::barrier(second));
  pushNow(*out, pool, "d3");
  out->push(Buffer::endOfInput());
  CHECK(eventually([&] { return gate.queued() == 6 && out->queued() == 4; }, kWait));
  CHECK_FALSE(eventually([&] { return gate.queued() > 6; }, milliseconds(100)));

  std::vector<std::string> got;
  std::vector<std::shared_ptr<const CheckpointBarrier>> barriers;
  for (;;) {
    auto item = next(gate);
    REQUIRE(item.has_value());
    CHECK(item->channel == 0);
    got.push_back(describe(item->buffer));
    if (item->buffer.kind() == Buffer::Kind::kBarrier) {
      CHECK(item->buffer.isEvent());
      barriers.push_back(item->buffer.barrier());
    }
    if (item->buffer.kind() == Buffer::Kind::kEndOfInput) break;
  }
  CHECK(got == std::vector<std::string>{"d0", "d1", "watermark 100", "barrier 7", "watermark 200",
                                        "barrier 7", "d2", "barrier 8", "d3", "end"});
  REQUIRE(barriers.size() == 3);
  CHECK(*barriers[0] == *first);
  CHECK(*barriers[1] == *first);
  CHECK(*barriers[2] == *second);
  CHECK(barriers[2]->savepoint);
  CHECK(barriers[2]->stop);
  CHECK(barriers[2]->drain);
  CHECK(barriers[2]->timestamp_ms == 1700000000008);
  CHECK(barriers[2]->target_dir.size() == 3005);
  CHECK(eventually([&] { return pool->inUse() == 0 && out->queued() == 0; }, kWait));
  CHECK(failures.reasons().empty());
  b.net.releaseChannels("barrier/");
  a.net.releaseChannels("barrier/");
}

TEST_CASE("network environment: an unaligned barrier overtakes queued data on both sides") {
  constexpr int kCredits = 2;
  Env a(testOptions(kCredits)), b(testOptions(kCredits));
  FailureLog failures;
  InputGate gate(1);
  auto pool = std::make_shared<BufferPool>(kSegment, 8);
  auto out = a.net.createOutputChannel("priority/0", b.net.address(), failures.handler());
  b.net.openInputChannel("priority/0", a.net.address(), &gate, 0, failures.handler());

  auto unaligned = std::make_shared<CheckpointBarrier>(
      CheckpointBarrier{5, 1700000000005, false, false, false, "/chk-5"});
  unaligned->unaligned = true;
  // Two buffers use up the credit and wait in the gate (nobody reads it); three more wait at the
  // producer. The barrier overtakes those three there, which the producer persists, and the two
  // in the gate on arrival, which it counts for the consumer to persist.
  for (int i = 0; i < 5; ++i)
    pushNow(*out, pool, "d" + std::to_string(i));
  CHECK(eventually([&] { return gate.queued() == 2 && out->queued() == 3; }, kWait));
  std::vector<std::string> persisted;
  out->pushPriority(Buffer::barrier(unaligned), [&](const Buffer& b) {
    persisted.push_back(describe(b));
  });
  CHECK(persisted == std::vector<std::string>{"d2", "d3", "d4"});
  CHECK(eventually([&] { return gate.queued() == 3; }, kWait));
  CHECK(out->queued() == 3);

  auto first = next(gate);
  REQUIRE(first.has_value());
  REQUIRE(first->buffer.kind() == Buffer::Kind::kBarrier);
  CHECK(*first->buffer.barrier() == *unaligned);
  CHECK(first->buffer.overtaken() == 2);
  first.reset();
  // The overtaken buffers follow in their order.
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) {
    auto item = next(gate);
    REQUIRE(item.has_value());
    got.push_back(describe(item->buffer));
  }
  CHECK(got == std::vector<std::string>{"d0", "d1", "d2", "d3", "d4"});
  CHECK(failures.reasons().empty());
  b.net.releaseChannels("priority/");
  a.net.releaseChannels("priority/");
}

TEST_CASE("network environment: a barrier too large to send fails its own channel only") {
  LogCapture log;  // before the environments: it must outlive their threads
  Env a, b;
  FailureLog bad_failures, good_failures;
  InputGate gate(2);
  auto pool = std::make_shared<BufferPool>(kSegment, 4);
  auto bad = a.net.createOutputChannel("huge/0", b.net.address(), bad_failures.handler());
  auto good = a.net.createOutputChannel("huge/1", b.net.address(), good_failures.handler());
  b.net.openInputChannel("huge/0", a.net.address(), &gate, 0, good_failures.handler());
  b.net.openInputChannel("huge/1", a.net.address(), &gate, 1, good_failures.handler());
  pushNow(*bad, pool, "before");
  REQUIRE(eventually([&] { return gate.queued() == 1; }, kWait));
  bad->push(
      Buffer::barrier(makeBarrier(1, false, false, false, std::string(kMaxControlPayload, 'x'))));
  CHECK(eventually([&] { return bad_failures.size() == 1; }, kWait));
  CHECK_MESSAGE(
      bad_failures.reasons().at(0).find("longer than a barrier can carry") != std::string::npos,
      bad_failures.reasons().at(0));
  CHECK(log.hasError("cannot send a barrier"));
  // The connection and its other channel go on.
  pushNow(*good, pool, "still here");
  good->push(Buffer::barrier(makeBarrier(2, false, false, false, "/ok")));
  std::vector<std::string> got;
  while (got.size() < 3) {
    auto item = next(gate);
    REQUIRE(item.has_value());
    got.push_back(std::to_string(item->channel) + ":" + describe(item->buffer));
  }
  CHECK(got == std::vector<std::string>{"0:before", "1:still here", "1:barrier 2"});
  CHECK(good_failures.reasons().empty());
  CHECK(a.net.connectionCount() == 1);
  b.net.releaseChannels("huge/");
  a.net.releaseChannels("huge/");
}
