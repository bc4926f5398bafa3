// The TCP data plane: frames, channels multiplexed over one connection per TaskManager pair,
// credit-based flow control, and connections refusing malformed input. Two NetworkEnvironments in
// one process play two TaskManagers on 127.0.0.1.
#include "runtime/network/network_environment.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/job_test_util.h"

using namespace weir::engine;
using weir::Status;
using weir::testing::eventually;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kSegment = 4096;

std::unique_ptr<NetworkEnvironment> startEnv(int buffers_per_channel = 2) {
  NetworkOptions o;
  o.segment_size = kSegment;
  o.buffers_per_channel = buffers_per_channel;
  o.connect_timeout = std::chrono::milliseconds(5000);
  auto env = std::make_unique<NetworkEnvironment>(o);
  REQUIRE(env->start().isOk());
  return env;
}

Buffer dataBuffer(const std::shared_ptr<BufferPool>& pool, const std::string& text) {
  std::atomic<bool> never{false};
  std::uint8_t* seg = pool->request(never);
  REQUIRE(seg != nullptr);
  std::memcpy(seg, text.data(), text.size());
  return Buffer::data(pool, seg, text.size());
}

// What a gate received: data as text, end of input as "<end>".
struct Received {
  int channel;
  std::string what;
};

std::optional<Received> next(InputGate& gate,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::atomic<bool> cancelled{false};
  auto item = gate.poll(Clock::now() + timeout, cancelled);
  if (!item) return std::nullopt;
  if (item->buffer.kind() == Buffer::Kind::kEndOfInput) return Received{item->channel, "<end>"};
  return Received{item->channel, std::string(reinterpret_cast<const char*>(item->buffer.bytes()),
                                             item->buffer.size())};
}

// Records the failures reported to a channel.
struct Failures {
  std::mutex mu;
  std::vector<std::string> messages;
  ChannelFailureHandler handler() {
    return [this](const Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      messages.push_back(s.message());
    };
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return messages.size();
  }
};

int connectRaw(const std::string& address) {
  const auto colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

std::string frame(std::uint8_t version, FrameKind kind, std::uint32_t channel,
                  const std::string& payload, std::uint32_t length_override = UINT32_MAX) {
  std::string out(kFrameHeaderBytes, '\0');
  FrameHeader h;
  h.kind = kind;
  h.channel = channel;
  h.length =
      length_override == UINT32_MAX ? static_cast<std::uint32_t>(payload.size()) : length_override;
  encodeFrameHeader(h, reinterpret_cast<std::uint8_t*>(out.data()));
  out[0] = static_cast<char>(version);
  return out + payload;
}

// True when the peer closed the connection (read returns 0 or an error other than a timeout).
bool closedByPeer(int fd) {
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) continue;  // frames the environment sent first (none expected here)
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

}  // namespace

TEST_CASE("data plane: frame headers round trip and bad ones are refused with a reason") {
  std::uint8_t bytes[kFrameHeaderBytes];
  encodeFrameHeader(FrameHeader{FrameKind::kData, 7, 1000}, bytes);
  auto h = decodeFrameHeader(bytes, kSegment);
  REQUIRE(h.isOk());
  CHECK(h->kind == FrameKind::kData);
  CHECK(h->channel == 7);
  CHECK(h->length == 1000);

  bytes[0] = 9;
  CHECK(decodeFrameHeader(bytes, kSegment).status().message().find("version 9") !=
        std::string::npos);
  bytes[0] = kFrameVersion;
  bytes[1] = 42;
  CHECK(decodeFrameHeader(bytes, kSegment).status().message().find("unknown frame kind 42") !=
        std::string::npos);
  encodeFrameHeader(FrameHeader{FrameKind::kData, 7, kSegment + 1}, bytes);
  CHECK(decodeFrameHeader(bytes, kSegment).status().message().find("exceeds") != std::string::npos);
  encodeFrameHeader(FrameHeader{FrameKind::kRequest, 1, kMaxControlPayload + 1}, bytes);
  CHECK_FALSE(decodeFrameHeader(bytes, kSegment).isOk());
  encodeFrameHeader(FrameHeader{FrameKind::kCredit, 1, 8}, bytes);
  CHECK_FALSE(decodeFrameHeader(bytes, kSegment).isOk());
  encodeFrameHeader(FrameHeader{FrameKind::kData, 1, 0}, bytes);
  CHECK_FALSE(decodeFrameHeader(bytes, kSegment).isOk());
}

TEST_CASE("data plane: buffers and end of input arrive in order, whichever side comes first") {
  for (const bool producer_first : {true, false}) {
    CAPTURE(producer_first);
    auto a = startEnv();
    auto b = startEnv();
    auto pool = std::make_shared<BufferPool>(kSegment, 32);  // holds all that waits for credit
    Failures failures;

    InputGate gate(1);
    std::shared_ptr<RemoteOutputChannel> out;
    if (producer_first) {
      out = a->createOutputChannel("job/0.0/1.0.0", b->address(), failures.handler());
      out->push(dataBuffer(pool, "early"));
      b->openInputChannel("job/0.0/1.0.0", a->address(), &gate, 0, failures.handler());
    } else {
      // A connection exists already (another channel), so the request reaches `a` before its
      // producer has registered the channel: `a` keeps it until then.
      InputGate warmup(1);
      auto w = a->createOutputChannel("warmup", b->address(), failures.handler());
      b->openInputChannel("warmup", a->address(), &warmup, 0, failures.handler());
      w->push(dataBuffer(pool, "w"));
      REQUIRE(next(warmup).has_value());
      b->openInputChannel("job/0.0/1.0.0", a->address(), &gate, 0, failures.handler());
      REQUIRE(eventually([&] { return a->pendingRequestCount() == 1; }));
      out = a->createOutputChannel("job/0.0/1.0.0", b->address(), failures.handler());
      CHECK(a->pendingRequestCount() == 0);
      out->push(dataBuffer(pool, "early"));
    }
    for (int i = 0; i < 20; ++i)
      out->push(dataBuffer(pool, "buffer " + std::to_string(i)));
    out->push(Buffer::endOfInput());

    CHECK(next(gate)->what == "early");
    for (int i = 0; i < 20; ++i)
      CHECK(next(gate)->what == "buffer " + std::to_string(i));
    CHECK(next(gate)->what == "<end>");
    CHECK(failures.count() == 0);
    CHECK(a->connectionCount() == 1);
    CHECK(b->connectionCount() == 1);
  }
}

TEST_CASE("data plane: many channels in both directions share one connection") {
  auto a = startEnv();
  auto b = startEnv();
  auto pool_a = std::make_shared<BufferPool>(kSegment, 64);
  auto pool_b = std::make_shared<BufferPool>(kSegment, 64);
  Failures failures;
  constexpr int kChannels = 8;
  InputGate gate_a(kChannels);  // fed by b
  InputGate gate_b(kChannels);  // fed by a
  std::vector<std::shared_ptr<RemoteOutputChannel>> a_out, b_out;
  for (int ch = 0; ch < kChannels; ++ch) {
    const std::string ab = "j/a." + std::to_string(ch) + "/b.0." + std::to_string(ch);
    const std::string ba = "j/b." + std::to_string(ch) + "/a.0." + std::to_string(ch);
    a_out.push_back(a->createOutputChannel(ab, b->address(), failures.handler()));
    b_out.push_back(b->createOutputChannel(ba, a->address(), failures.handler()));
    b->openInputChannel(ab, a->address(), &gate_b, ch, failures.handler());
    a->openInputChannel(ba, b->address(), &gate_a, ch, failures.handler());
  }
  constexpr int kPerChannel = 30;
  std::thread sender_a([&] {
    for (int i = 0; i < kPerChannel; ++i) {
      for (int ch = 0; ch < kChannels; ++ch)
        a_out[ch]->push(dataBuffer(pool_a, std::to_string(ch) + ":" + std::to_string(i)));
    }
    for (auto& o : a_out)
      o->push(Buffer::endOfInput());
  });
  std::thread sender_b([&] {
    for (int i = 0; i < kPerChannel; ++i) {
      for (int ch = 0; ch < kChannels; ++ch)
        b_out[ch]->push(dataBuffer(pool_b, std::to_string(ch) + ":" + std::to_string(i)));
    }
    for (auto& o : b_out)
      o->push(Buffer::endOfInput());
  });
  for (InputGate* gate : {&gate_a, &gate_b}) {
    std::vector<int> seen(kChannels, 0);
    int ended = 0;
    while (ended < kChannels) {
      auto r = next(*gate);
      REQUIRE(r.has_value());
      if (r->what == "<end>") {
        CHECK(seen[r->channel] == kPerChannel);
        ++ended;
        continue;
      }
      CHECK(r->what == std::to_string(r->channel) + ":" + std::to_string(seen[r->channel]));
      ++seen[r->channel];
    }
  }
  sender_a.join();
  sender_b.join();
  CHECK(a->connectionCount() == 1);
  CHECK(b->connectionCount() == 1);
  CHECK(failures.count() == 0);
}

TEST_CASE("data plane: a sender sends only what the receiver has credit for") {
  auto a = startEnv(/*buffers_per_channel=*/2);
  auto b = startEnv(2);
  auto pool = std::make_shared<BufferPool>(kSegment, 10);
  Failures failures;
  InputGate gate(1);
  auto out = a->createOutputChannel("k", b->address(), failures.handler());
  b->openInputChannel("k", a->address(), &gate, 0, failures.handler());
  for (int i = 0; i < 10; ++i)
    out->push(dataBuffer(pool, std::to_string(i)));

  // Two credits: two buffers cross, eight wait at the producer, holding its pool.
  REQUIRE(eventually([&] { return gate.queued() == 2 && out->queued() == 8; }));
  // Sent buffers went back to the producer's pool; the waiting ones hold it.
  CHECK(pool->inUse() == 8);

  // Consuming returns credit; everything arrives, in order.
  for (int i = 0; i < 10; ++i) {
    auto r = next(gate);
    REQUIRE(r.has_value());
    CHECK(r->what == std::to_string(i));
    CHECK(gate.queued() <= 2);
  }
  REQUIRE(eventually([&] { return out->queued() == 0 && pool->inUse() == 0; }));
  CHECK(failures.count() == 0);
}

TEST_CASE("data plane: malformed frames close that connection only, with a logged error") {
  auto env = startEnv();
  const std::string hello_peer = "127.0.0.1:1";  // a peer address nobody listens on
  struct Case {
    const char* name;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"garbage instead of hello", std::string(64, 'x')},
      {"bad version", frame(kFrameVersion, FrameKind::kHello, 0, hello_peer) +
                          frame(7, FrameKind::kData, 1, "abc")},
      {"oversized length", frame(kFrameVersion, FrameKind::kHello, 0, hello_peer) +
                               frame(kFrameVersion, FrameKind::kData, 1, "", 1u << 30)},
      {"data for an unknown channel", frame(kFrameVersion, FrameKind::kHello, 0, hello_peer) +
                                          frame(kFrameVersion, FrameKind::kData, 99, "abc")},
      {"credit for an unknown channel",
       frame(kFrameVersion, FrameKind::kHello, 0, hello_peer) +
           frame(kFrameVersion, FrameKind::kCredit, 5, std::string(4, '\1'))},
      {"unknown kind", frame(kFrameVersion, FrameKind::kHello, 0, hello_peer) +
                           frame(kFrameVersion, static_cast<FrameKind>(77), 1, "")},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const int fd = connectRaw(env->address());
    REQUIRE(::write(fd, c.bytes.data(), c.bytes.size()) == static_cast<ssize_t>(c.bytes.size()));
    CHECK(closedByPeer(fd));
    ::close(fd);
  }

  // The environment still works.
  auto other = startEnv();
  auto pool = std::make_shared<BufferPool>(kSegment, 4);
  Failures failures;
  InputGate gate(1);
  auto out = env->createOutputChannel("after", other->address(), failures.handler());
  other->openInputChannel("after", env->address(), &gate, 0, failures.handler());
  out->push(dataBuffer(pool, "still here"));
  CHECK(next(gate)->what == "still here");
}

TEST_CASE("data plane: a lost connection fails the channels on it") {
  auto a = startEnv();
  auto b = startEnv();
  auto pool = std::make_shared<BufferPool>(kSegment, 4);
  Failures producer, consumer;
  InputGate gate(1);
  auto out = a->createOutputChannel("k", b->address(), producer.handler());
  b->openInputChannel("k", a->address(), &gate, 0, consumer.handler());
  out->push(dataBuffer(pool, "x"));
  REQUIRE(next(gate).has_value());

  b->stop();
  REQUIRE(eventually([&] { return producer.count() == 1; }));
  CHECK(producer.messages[0].find("data connection to TaskManager at " + b->address()) == 0);
  CHECK(producer.messages[0].find("lost") != std::string::npos);
}

TEST_CASE("data plane: released channels drop late data without breaking the connection") {
  auto a = startEnv(4);
  auto b = startEnv(4);
  auto pool = std::make_shared<BufferPool>(kSegment, 8);
  Failures failures;
  auto gate = std::make_unique<InputGate>(1);
  InputGate other_gate(1);
  auto out = a->createOutputChannel("job1/0.0/1.0.0", b->address(), failures.handler());
  auto other = a->createOutputChannel("job2/0.0/1.0.0", b->address(), failures.handler());
  b->openInputChannel("job1/0.0/1.0.0", a->address(), gate.get(), 0, failures.handler());
  b->openInputChannel("job2/0.0/1.0.0", a->address(), &other_gate, 0, failures.handler());
  out->push(dataBuffer(pool, "1"));
  REQUIRE(next(*gate).has_value());

  // job1 is cancelled on b: its gate goes away while a still sends.
  b->releaseChannels("job1/");
  gate.reset();
  out->push(dataBuffer(pool, "late"));
  out->push(Buffer::endOfInput());
  // job2 is unaffected.
  other->push(dataBuffer(pool, "2"));
  CHECK(next(other_gate)->what == "2");
  CHECK(a->connectionCount() == 1);
  CHECK(failures.count() == 0);
}
