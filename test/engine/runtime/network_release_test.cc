// The data plane's channel release, as a TaskManager does it when a job ends or is cancelled
// there: late data for a released channel is dropped, credit for a released channel ignored, while
// credit for a channel that never existed still breaks the protocol. (The rest of the data plane:
// network_environment_test.cc.)
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
#include "runtime/network/network_environment.h"

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

TEST_CASE("data plane: credit for a channel this side never had closes the connection") {
  auto env = startEnv();
  const int fd = connectRaw(env->address());
  const std::string bytes = frame(kFrameVersion, FrameKind::kHello, 0, "127.0.0.1:1") +
                            frame(kFrameVersion, FrameKind::kCredit, 5, std::string(4, '\1'));
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  CHECK(closedByPeer(fd));
  ::close(fd);
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
