#include "runtime/network/network_environment.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "common/rpc.h"

namespace weir::engine {

namespace {

using Clock = std::chrono::steady_clock;

// How long an accepted socket may take to send its hello.
constexpr std::chrono::milliseconds kHelloTimeout{5000};

std::string errnoText(int error = errno) {
  return std::strerror(error);
}

// Exactly `n` bytes; an error saying whether the peer closed the connection or reading failed.
Status readFully(int fd, std::uint8_t* buf, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, buf, n, 0);
    if (r > 0) {
      buf += r;
      n -= static_cast<std::size_t>(r);
    } else if (r == 0) {
      return Status::ioError("connection closed by the peer");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return Status::ioError("timed out");
    } else if (errno != EINTR) {
      return Status::ioError("read failed: " + errnoText());
    }
  }
  return Status::ok();
}

// sendmsg with MSG_NOSIGNAL rather than writev: a peer that went away must fail the write with
// EPIPE, not kill the process with SIGPIPE.
bool writeFully(int fd, iovec* iov, int count) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    auto left = static_cast<std::size_t>(w);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<std::uint8_t*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

bool sendFrame(int fd, const FrameHeader& h, const void* payload) {
  std::uint8_t header[kFrameHeaderBytes];
  encodeFrameHeader(h, header);
  iovec iov[2] = {{header, kFrameHeaderBytes}, {const_cast<void*>(payload), h.length}};
  return writeFully(fd, iov, h.length > 0 ? 2 : 1);
}

void setNoDelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void setReceiveTimeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

// Waits for a non-blocking connect on `fd` to finish, until `deadline` or until `stopping` says so;
// false with `error` set when it did not succeed.
bool finishConnect(int fd, Clock::time_point deadline, const std::function<bool()>& stopping,
                   std::string& error) {
  for (;;) {
    if (stopping()) {
      error = "shutting down";
      return false;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      error = "connect timed out";
      return false;
    }
    pollfd p{fd, POLLOUT, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
    if (rc < 0 && errno != EINTR) {
      error = errnoText();
      return false;
    }
    if (rc > 0) break;
  }
  int so_error = 0;
  socklen_t len = sizeof so_error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
  if (so_error != 0) {
    error = errnoText(so_error);
    return false;
  }
  return true;
}

// A connected (blocking) TCP socket to host:port, or -1 with `error` set. Gives up at `deadline`
// or when `stopping` says so: an unreachable host must not hold up stop().
int connectTo(const std::string& address, Clock::time_point deadline,
              const std::function<bool()>& stopping, std::string& error) {
  std::string host;
  int port = 0;
  Status s = parseHostPort(address, host, port);
  if (!s.isOk()) {
    error = s.message();
    return -1;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    error = gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      error = errnoText();
      continue;
    }
    bool ok = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      ok = finishConnect(fd, deadline, stopping, error);
    } else if (!ok) {
      error = errnoText();
    }
    if (ok) ok = ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0;
    if (!ok) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  return fd;
}

// host:port of the other end of an accepted socket, for log lines.
std::string remoteAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* in = reinterpret_cast<sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
    port = ntohs(in->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

// Counts a connection loop out when it returns, whichever way.
class LoopExit {
 public:
  explicit LoopExit(std::atomic<int>& running) : running_(running) {}
  ~LoopExit() { running_.fetch_sub(1, std::memory_order_acq_rel); }
  LoopExit(const LoopExit&) = delete;
  LoopExit& operator=(const LoopExit&) = delete;

 private:
  std::atomic<int>& running_;
};

}  // namespace

// ---------------------------------------------------------------- RemoteOutputChannel

bool RemoteOutputChannel::sendableLocked() const {
  return !failed_ && !queue_.empty() && !connection_.expired() &&
         (queue_.front().kind() != Buffer::Kind::kData || credit_ > 0);
}

void RemoteOutputChannel::notifyLocked(std::unique_lock<std::mutex>& lock) {
  if (!sendableLocked()) return;
  auto connection = connection_.lock();
  lock.unlock();
  if (connection && !in_ready_list_.exchange(true) && !connection->markReady(shared_from_this())) {
    in_ready_list_ = false;  // closed: a later bind to another connection must be able to mark it
  }
}

void RemoteOutputChannel::push(Buffer buffer) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failed_) return;  // the task is failing; the buffer goes back to its pool
  if (buffer.kind() == Buffer::Kind::kWatermark && !queue_.empty() &&
      queue_.back().kind() == Buffer::Kind::kWatermark) {
    queue_.back() = std::move(buffer);  // a newer watermark supersedes one not yet sent
    return;
  }
  // Anything else, barriers included, is queued as it is, in order.
  queue_.push_back(std::move(buffer));
  notifyLocked(lock);
}

void RemoteOutputChannel::pushPriority(Buffer barrier,
                                       const std::function<void(const Buffer&)>& persist) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failed_) return;
  const auto at = overtakingPosition(queue_, queue_.end());
  for (auto it = at; it != queue_.end(); ++it) {
    if (it->kind() == Buffer::Kind::kData) persist(*it);
  }
  queue_.insert(at, std::move(barrier));
  notifyLocked(lock);
}

bool RemoteOutputChannel::settleBarrier(std::int64_t id, std::int64_t cutoff_ms,
                                       const std::function<void(const Buffer&)>& persist) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failed_) return false;
  const auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Buffer& b) {
    return b.kind() == Buffer::Kind::kBarrier && b.barrier()->id == id && !b.barrier()->unaligned;
  });
  if (it == queue_.end()) return false;  // sent
  const auto at = overtakingPosition(queue_, it);
  // Nothing to overtake: it goes as soon as the connection takes it.
  if (dataBuffers(at, it) == 0 || it->barrier()->timestamp_ms > cutoff_ms) return true;
  for (auto d = at; d != it; ++d) {
    if (d->kind() == Buffer::Kind::kData) persist(*d);
  }
  // The overtaken buffers are the producer's to persist: the consumer counts none of them.
  moveAsUnaligned(queue_, it, at, 0);
  notifyLocked(lock);
  return false;
}

void RemoteOutputChannel::bind(const std::shared_ptr<Connection>& connection, std::uint32_t id,
                               std::uint32_t credits) {
  std::unique_lock<std::mutex> lock(mu_);
  connection_ = connection;
  id_ = id;
  credit_ += credits;
  notifyLocked(lock);
}

void RemoteOutputChannel::addCredit(std::uint32_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  credit_ += n;
  notifyLocked(lock);
}

bool RemoteOutputChannel::takeSendable(Buffer& out, std::uint32_t& id) {
  std::unique_lock<std::mutex> lock(mu_);
  in_ready_list_ = false;
  if (!sendableLocked()) return false;
  out = std::move(queue_.front());
  queue_.pop_front();
  if (out.kind() == Buffer::Kind::kData) --credit_;
  id = id_;
  notifyLocked(lock);
  return true;
}

void RemoteOutputChannel::fail(const Status& status) {
  std::deque<Buffer> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_) return;
    failed_ = true;
    dropped.swap(queue_);
  }
  dropped.clear();  // back to the producer's pool, which may unblock it
  if (on_failure_) on_failure_(status);
}

std::size_t RemoteOutputChannel::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

// ---------------------------------------------------------------- Connection

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

void Connection::attach(int fd) {
  // The threads start under the lock: neither can return (both take mu_ on the way out) before
  // reader_ and writer_ are assigned, so whoever sees finished() may join them.
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || attached_) {
    if (attached_ && !closed_) {
      spdlog::warn("data plane: a second connection with TaskManager at {}; keeping the first",
                   peer_);
    }
    ::close(fd);
    return;
  }
  fd_ = fd;
  attached_ = true;
  setNoDelay(fd);
  loops_running_.store(2, std::memory_order_release);
  auto self = shared_from_this();
  reader_ = std::thread([self] { self->readLoop(); });
  writer_ = std::thread([self] { self->writeLoop(); });
}

bool Connection::attached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return attached_;
}

bool Connection::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

bool Connection::finished() const {
  return loops_running_.load(std::memory_order_acquire) == 0 && closed();
}

void Connection::close(const std::string& reason) {
  std::map<std::uint32_t, std::shared_ptr<RemoteOutputChannel>> outputs;
  std::map<std::uint32_t, InputChannel> inputs;
  std::deque<std::shared_ptr<RemoteOutputChannel>> ready;
  // Held while failure handlers run, so that releaseChannels() cannot return (and the tasks the
  // handlers point to be destroyed) in the middle of them.
  std::lock_guard<std::mutex> callbacks(callbacks_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    close_reason_ = reason;
    outputs.swap(outputs_);
    inputs.swap(inputs_);
    ready.swap(ready_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  writer_cv_.notify_all();
  const Status failure =
      Status::ioError("data connection to TaskManager at " + peer_ + " lost: " + reason);
  for (auto& [id, ch] : outputs)
    ch->fail(failure);
  for (auto& [id, in] : inputs) {
    if (!in.ended && in.on_failure) in.on_failure(failure);
  }
  env_.onClosed(shared_from_this());
}

void Connection::join() {
  for (std::thread* t : {&reader_, &writer_}) {
    if (t->joinable() && t->get_id() != std::this_thread::get_id()) t->join();
  }
}

bool Connection::markReady(std::shared_ptr<RemoteOutputChannel> channel) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    ready_.push_back(std::move(channel));
  }
  writer_cv_.notify_one();
  return true;
}

void Connection::bindOutput(std::uint32_t id, std::shared_ptr<RemoteOutputChannel> channel) {
  bool closed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed = closed_;
    if (!closed) outputs_[id] = channel;
  }
  if (closed) {
    channel->fail(Status::ioError("data connection to TaskManager at " + peer_ + " is closed"));
  }
}

void Connection::releaseChannels(const std::string& key_prefix) {
  std::lock_guard<std::mutex> callbacks(callbacks_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = inputs_.begin(); it != inputs_.end();) {
    if (it->second.key.rfind(key_prefix, 0) != 0) {
      ++it;
    } else if (it->second.ended) {
      it = inputs_.erase(it);
    } else {
      it->second.gate = nullptr;
      it->second.on_failure = nullptr;
      ++it;
    }
  }
  for (auto it = outputs_.begin(); it != outputs_.end();) {
    if (it->second->key().rfind(key_prefix, 0) == 0) {
      released_outputs_.insert(it->first);
      it = outputs_.erase(it);
    } else {
      ++it;
    }
  }
}

void Connection::queueControl(FrameKind kind, std::uint32_t channel, std::string payload) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ControlFrame f;
    f.header.kind = kind;
    f.header.channel = channel;
    f.header.length = static_cast<std::uint32_t>(payload.size());
    f.payload = std::move(payload);
    control_.push_back(std::move(f));
  }
  writer_cv_.notify_one();
}

void Connection::openInput(const std::string& key, InputGate* gate, int gate_channel, int credits,
                           std::size_t segment_size, ChannelFailureHandler on_failure) {
  auto pool = std::make_shared<BufferPool>(segment_size, static_cast<std::size_t>(credits));
  std::uint32_t id = 0;
  bool closed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed = closed_;
    if (!closed) {
      id = next_input_id_++;
      std::weak_ptr<Connection> self = weak_from_this();
      pool->setRecycleListener([self, id] {
        if (auto c = self.lock()) c->grantCredit(id, 1);
      });
      inputs_[id] = InputChannel{key, gate, gate_channel, pool, on_failure, false};
    }
  }
  if (closed) {
    if (on_failure) {
      on_failure(Status::ioError("data connection to TaskManager at " + peer_ + " is closed"));
    }
    return;
  }
  std::string payload(4, '\0');
  storeU32(reinterpret_cast<std::uint8_t*>(payload.data()), static_cast<std::uint32_t>(credits));
  payload += key;
  queueControl(FrameKind::kRequest, id, std::move(payload));
}

void Connection::grantCredit(std::uint32_t id, std::uint32_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    // A channel that ended (or was forgotten) gets no more data: its credit would only travel.
    auto it = inputs_.find(id);
    if (it == inputs_.end() || it->second.ended) return;
    pending_credit_[id] += n;
  }
  writer_cv_.notify_one();
}

void Connection::writeLoop() {
  LoopExit exit(loops_running_);
  std::string batch;
  for (;;) {
    std::unique_lock<std::mutex> lock(mu_);
    writer_cv_.wait(lock, [&] {
      return closed_ || !control_.empty() || !pending_credit_.empty() || !ready_.empty();
    });
    if (closed_) return;
    if (!control_.empty() || !pending_credit_.empty()) {
      // Control frames first, coalesced into one write; credits of one channel into one frame.
      batch.clear();
      for (const ControlFrame& f : control_) {
        std::uint8_t header[kFrameHeaderBytes];
        encodeFrameHeader(f.header, header);
        batch.append(reinterpret_cast<const char*>(header), kFrameHeaderBytes);
        batch += f.payload;
      }
      control_.clear();
      for (const auto& [id, n] : pending_credit_) {
        std::uint8_t frame[kFrameHeaderBytes + 4];
        encodeFrameHeader({FrameKind::kCredit, id, 4}, frame);
        storeU32(frame + kFrameHeaderBytes, n);
        batch.append(reinterpret_cast<const char*>(frame), sizeof frame);
      }
      pending_credit_.clear();
      lock.unlock();
      iovec iov{batch.data(), batch.size()};
      if (!writeFully(fd_, &iov, 1)) {
        writeFailed();
        return;
      }
      continue;
    }
    std::shared_ptr<RemoteOutputChannel> channel = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    Buffer buffer;
    std::uint32_t id = 0;
    if (!channel->takeSendable(buffer, id)) continue;
    FrameHeader h{FrameKind::kData, id, 0};
    std::uint8_t event[kWatermarkPayload];
    const void* payload = event;
    std::string barrier_payload;
    switch (buffer.kind()) {
      case Buffer::Kind::kData:
        h.length = static_cast<std::uint32_t>(buffer.size());
        payload = buffer.bytes();
        break;
      case Buffer::Kind::kEndOfInput:
        h.kind = FrameKind::kEndOfInput;
        break;
      case Buffer::Kind::kWatermark:
        h.kind = FrameKind::kWatermark;
        h.length = kWatermarkPayload;
        storeU64(event, static_cast<std::uint64_t>(buffer.value()));
        break;
      case Buffer::Kind::kWatermarkStatus:
        h.kind = FrameKind::kWatermarkStatus;
        h.length = kWatermarkStatusPayload;
        event[0] = static_cast<std::uint8_t>(buffer.value() != 0 ? 1 : 0);
        break;
      case Buffer::Kind::kBarrier: {
        auto encoded =
            encodeBarrierPayload(*buffer.barrier(), static_cast<std::uint32_t>(buffer.overtaken()));
        if (!encoded.isOk()) {
          // Only this channel's producer is at fault: the connection and its other channels go on.
          spdlog::error("data connection to TaskManager at {}: cannot send a barrier: {}", peer_,
                        encoded.status().message());
          std::lock_guard<std::mutex> callbacks(callbacks_mu_);
          channel->fail(encoded.status());
          continue;
        }
        barrier_payload = std::move(*encoded);
        h.kind = FrameKind::kBarrier;
        h.length = static_cast<std::uint32_t>(barrier_payload.size());
        payload = barrier_payload.data();
        break;
      }
    }
    if (!sendFrame(fd_, h, payload)) {
      writeFailed();
      return;
    }
    // `buffer` returns to the producer's pool here.
  }
}

void Connection::writeFailed() {
  const std::string why = "write failed: " + errnoText();
  if (!closed()) spdlog::warn("data connection to TaskManager at {} lost: {}", peer_, why);
  close(why);
}

void Connection::readLoop() {
  LoopExit exit(loops_running_);
  std::vector<std::uint8_t> scratch;
  std::uint8_t header[kFrameHeaderBytes];
  const auto max_data = static_cast<std::uint32_t>(env_.options().segment_size);
  for (;;) {
    Status s = readFully(fd_, header, kFrameHeaderBytes);
    if (s.isOk()) {
      auto h = decodeFrameHeader(header, max_data);
      s = h.isOk() ? handleFrame(*h, scratch) : h.status();
    }
    if (s.isOk()) continue;
    if (!closed()) {
      if (s.code() == Status::Code::kCorruption) {
        spdlog::error("data connection to TaskManager at {}: {}; closing it", peer_, s.message());
      } else {
        spdlog::warn("data connection to TaskManager at {} lost: {}", peer_, s.message());
      }
    }
    close(s.message());
    return;
  }
}

Status Connection::handleFrame(const FrameHeader& h, std::vector<std::uint8_t>& scratch) {
  switch (h.kind) {
    case FrameKind::kData: {
      std::shared_ptr<BufferPool> pool;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = inputs_.find(h.channel);
        if (it == inputs_.end()) {
          return Status::corruption("data for unknown channel " + std::to_string(h.channel));
        }
        if (it->second.ended) {
          return Status::corruption("data after end of input on channel " +
                                    std::to_string(h.channel));
        }
        if (it->second.gate != nullptr) pool = it->second.pool;
      }
      if (!pool) {
        // Released: its task is gone. Drop what was already under way.
        scratch.resize(h.length);
        return readFully(fd_, scratch.data(), h.length);
      }
      std::uint8_t* segment = pool->tryRequest();
      if (segment == nullptr) {
        return Status::corruption("data beyond the granted credit on channel " +
                                  std::to_string(h.channel));
      }
      if (Status s = readFully(fd_, segment, h.length); !s.isOk()) {
        pool->recycle(segment);
        return s;
      }
      Buffer buffer = Buffer::data(std::move(pool), segment, h.length);
      // The gate is looked up again under the lock: the channel may have been released while
      // the payload was read, and its gate destroyed with its task. A buffer not delivered is
      // recycled after the lock is released (recycling grants credit, which takes mu_).
      std::lock_guard<std::mutex> lock(mu_);
      auto it = inputs_.find(h.channel);
      if (it != inputs_.end() && it->second.gate != nullptr) {
        it->second.gate->push(it->second.gate_channel, std::move(buffer));
      }
      return Status::ok();
    }
    case FrameKind::kEndOfInput: {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = inputs_.find(h.channel);
      if (it == inputs_.end() || it->second.ended) {
        return Status::corruption("end of input for unknown channel " + std::to_string(h.channel));
      }
      if (it->second.gate == nullptr) {
        inputs_.erase(it);  // released: nothing more will come for it
        return Status::ok();
      }
      it->second.ended = true;
      it->second.gate->push(it->second.gate_channel, Buffer::endOfInput());
      return Status::ok();
    }
    case FrameKind::kWatermark:
    case FrameKind::kWatermarkStatus: {
      std::uint8_t payload[kWatermarkPayload];
      if (Status s = readFully(fd_, payload, h.length); !s.isOk()) return s;
      std::lock_guard<std::mutex> lock(mu_);
      auto it = inputs_.find(h.channel);
      if (it == inputs_.end() || it->second.ended) {
        return Status::corruption("watermark for unknown channel " + std::to_string(h.channel));
      }
      if (it->second.gate == nullptr) return Status::ok();  // released
      if (h.kind == FrameKind::kWatermark) {
        it->second.gate->push(it->second.gate_channel,
                              Buffer::watermark(static_cast<std::int64_t>(loadU64(payload))));
      } else if (payload[0] > 1) {
        return Status::corruption("watermark status " + std::to_string(payload[0]) +
                                  " is neither idle (1) nor active (0)");
      } else {
        it->second.gate->push(it->second.gate_channel, Buffer::watermarkStatus(payload[0] == 1));
      }
      return Status::ok();
    }
    case FrameKind::kBarrier: {
      scratch.resize(h.length);
      if (Status s = readFully(fd_, scratch.data(), h.length); !s.isOk()) return s;
      std::uint32_t overtaken = 0;
      auto decoded = decodeBarrierPayload(scratch.data(), h.length, &overtaken);
      if (!decoded.isOk()) {
        return Status::corruption("channel " + std::to_string(h.channel) + ": " +
                                  decoded.status().message());
      }
      auto barrier = std::make_shared<const CheckpointBarrier>(std::move(*decoded));
      std::lock_guard<std::mutex> lock(mu_);
      auto it = inputs_.find(h.channel);
      if (it == inputs_.end() || it->second.ended) {
        return Status::corruption("barrier for unknown channel " + std::to_string(h.channel));
      }
      if (it->second.gate == nullptr) return Status::ok();  // released
      const bool priority = barrier->unaligned;
      Buffer event = Buffer::barrier(std::move(barrier), overtaken);
      if (priority) {
        it->second.gate->pushPriority(it->second.gate_channel, std::move(event));
      } else {
        it->second.gate->push(it->second.gate_channel, std::move(event));
      }
      return Status::ok();
    }
    case FrameKind::kCredit:
    case FrameKind::kRequest: {
      scratch.resize(h.length);
      if (Status s = readFully(fd_, scratch.data(), h.length); !s.isOk()) return s;
      if (h.kind == FrameKind::kRequest) {
        if (h.length < 4) return Status::corruption("request frame without credits");
        const std::uint32_t credits = loadU32(scratch.data());
        env_.onRequest(shared_from_this(), h.channel, credits,
                       std::string(scratch.begin() + 4, scratch.end()));
        return Status::ok();
      }
      std::shared_ptr<RemoteOutputChannel> channel;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = outputs_.find(h.channel);
        if (it != outputs_.end()) channel = it->second;
        // Released here (its task ended or was cancelled) while the consumer still held buffers
        // of it: harmless. Breaking the connection would fail every other channel on it.
        if (!channel && released_outputs_.count(h.channel) != 0) return Status::ok();
      }
      if (!channel) {
        return Status::corruption("credit for unknown channel " + std::to_string(h.channel));
      }
      channel->addCredit(loadU32(scratch.data()));
      return Status::ok();
    }
    case FrameKind::kHello:
      return Status::corruption("unexpected hello frame");
  }
  return Status::corruption("unknown frame kind");
}

// ---------------------------------------------------------------- NetworkEnvironment

NetworkEnvironment::NetworkEnvironment(NetworkOptions options) : options_(std::move(options)) {}

NetworkEnvironment::~NetworkEnvironment() {
  stop();
}

std::string NetworkEnvironment::address() const {
  return options_.host + ":" + std::to_string(port_);
}

Status NetworkEnvironment::start() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(options_.port));
  if (::inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr) != 1) {
    return Status::invalidArgument("data plane: '" + options_.host +
                                   "' is not an IPv4 address to listen on");
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Status::ioError("data plane: cannot create a socket: " + errnoText());
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    const std::string why = errnoText();
    ::close(listen_fd_);
    listen_fd_ = -1;
    return Status::ioError("data plane: cannot listen on " + options_.host + ":" +
                           std::to_string(options_.port) + ": " + why);
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
  spdlog::info("data plane listening on {}", address());
  return Status::ok();
}

void NetworkEnvironment::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // From here no connection, helper or handshake is added: connectionTo, the acceptor and
    // acceptedSocket all check `stopping_` under the lock.
    for (int fd : handshaking_)
      ::shutdown(fd, SHUT_RDWR);
  }
  stop_cv_.notify_all();
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  std::vector<std::shared_ptr<Connection>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [peer, c] : connections_)
      all.push_back(c);
    all.insert(all.end(), retired_.begin(), retired_.end());
  }
  for (auto& c : all)
    c->close("shutting down");
  std::vector<Helper> helpers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    helpers.swap(helpers_);
  }
  // Helpers end soon: connecting ones check `stopping_`, handshakes find their socket shut down,
  // and an attach after close() closes its socket.
  for (auto& h : helpers)
    h.thread.join();
  for (auto& c : all)
    c->join();
  std::lock_guard<std::mutex> lock(mu_);
  connections_.clear();
  retired_.clear();
  pending_requests_.clear();
}

bool NetworkEnvironment::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

std::size_t NetworkEnvironment::connectionCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_.size();
}

std::size_t NetworkEnvironment::pendingRequestCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_requests_.size();
}

void NetworkEnvironment::spawnHelperLocked(std::function<void()> fn) {
  reapLocked();
  auto done = std::make_shared<std::atomic<bool>>(false);
  helpers_.push_back(Helper{std::thread([fn = std::move(fn), done]() mutable {
                              fn();
                              fn = nullptr;  // what it holds goes before it counts as done
                              done->store(true, std::memory_order_release);
                            }),
                            done});
}

void NetworkEnvironment::reapLocked() {
  // Joining here is quick: each thread has returned from its work or is about to. The threads
  // never take mu_ after they count themselves out.
  const auto self = std::this_thread::get_id();
  std::erase_if(helpers_, [&](Helper& h) {
    if (!h.done->load(std::memory_order_acquire) || h.thread.get_id() == self) return false;
    h.thread.join();
    return true;
  });
  std::erase_if(retired_, [](const std::shared_ptr<Connection>& c) {
    if (!c->finished()) return false;
    c->join();
    return true;
  });
}

void NetworkEnvironment::acceptLoop() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      const int error = errno;
      spdlog::error("data plane: accept failed: {}", errnoText(error));
      if (error != EMFILE && error != ENFILE && error != ENOBUFS && error != ENOMEM) return;
      // Out of descriptors or memory for now: try again a little later.
      stop_cv_.wait_for(lock, std::chrono::milliseconds(100));
      continue;
    }
    handshaking_.insert(fd);
    spawnHelperLocked([this, fd] { handshake(fd); });
  }
}

void NetworkEnvironment::handshake(int fd) {
  // The first frame names the peer. A peer that does not send it in time is dropped.
  setReceiveTimeout(fd, kHelloTimeout);
  std::uint8_t header[kFrameHeaderBytes];
  std::string peer;
  Status s = readFully(fd, header, kFrameHeaderBytes);
  if (s.isOk()) {
    auto h = decodeFrameHeader(header, 0);
    if (!h.isOk()) {
      s = h.status();
    } else if (h->kind != FrameKind::kHello) {
      s = Status::corruption("first frame is of kind " + std::to_string(static_cast<int>(h->kind)) +
                             ", not a hello");
    } else if (h->length == 0) {
      s = Status::corruption("empty hello");
    } else {
      peer.resize(h->length);
      s = readFully(fd, reinterpret_cast<std::uint8_t*>(peer.data()), h->length);
    }
  }
  bool stopping = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    handshaking_.erase(fd);
    stopping = stopping_;
  }
  if (stopping || !s.isOk()) {
    if (!stopping) {
      spdlog::error("data plane: dropping a connection from {} that did not introduce itself: {}",
                    remoteAddress(fd), s.message());
    }
    ::close(fd);
    return;
  }
  setReceiveTimeout(fd, std::chrono::milliseconds(0));
  acceptedSocket(fd, peer);
}

void NetworkEnvironment::acceptedSocket(int fd, const std::string& peer) {
  std::shared_ptr<Connection> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    auto it = connections_.find(peer);
    if (it != connections_.end() && !it->second->closed()) {
      c = it->second;
    } else {
      if (it != connections_.end()) {
        retired_.push_back(it->second);
        connections_.erase(it);
      }
      // No connect loop: this socket is the connection.
      c = std::make_shared<Connection>(*this, peer);
      connections_[peer] = c;
    }
  }
  c->attach(fd);  // closes `fd` if the connection already has a socket or was closed meanwhile
}

std::shared_ptr<Connection> NetworkEnvironment::connectionTo(const std::string& peer) {
  std::shared_ptr<Connection> refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      reapLocked();
      auto it = connections_.find(peer);
      if (it != connections_.end() && !it->second->closed()) return it->second;
      if (it != connections_.end()) {
        retired_.push_back(it->second);
        connections_.erase(it);
      }
      auto c = std::make_shared<Connection>(*this, peer);
      connections_[peer] = c;
      // One connection per pair: the side with the smaller address connects, the other waits
      // for it (and gives up after the connect timeout).
      spawnHelperLocked([this, c] { connectLoop(c); });
      return c;
    }
    refused = std::make_shared<Connection>(*this, peer);
  }
  // Shutting down: a connection that is closed from the start (its channels fail at once).
  refused->close("the data plane is shutting down");
  return refused;
}

void NetworkEnvironment::connectLoop(std::shared_ptr<Connection> c) {
  const bool initiator = address() < c->peer();
  const auto deadline = Clock::now() + options_.connect_timeout;
  std::string error = "it did not connect";
  for (;;) {
    if (c->attached() || c->closed()) return;
    if (initiator) {
      const int fd = connectTo(
          c->peer(), deadline, [this] { return stopping(); }, error);
      if (fd >= 0) {
        const std::string me = address();
        if (sendFrame(fd, {FrameKind::kHello, 0, static_cast<std::uint32_t>(me.size())},
                      me.data())) {
          c->attach(fd);
          return;
        }
        error = errnoText();
        ::close(fd);
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) return;
    if (Clock::now() > deadline) break;
    // The initiator retries its connect; the other side waits for the acceptor to attach.
    stop_cv_.wait_for(lock, std::chrono::milliseconds(initiator ? 50 : 10));
  }
  c->close("no connection with TaskManager at " + c->peer() + " within " +
           std::to_string(options_.connect_timeout.count()) + " ms: " + error);
}

std::shared_ptr<RemoteOutputChannel> NetworkEnvironment::createOutputChannel(
    const std::string& key, const std::string& peer, ChannelFailureHandler on_failure) {
  auto channel = std::make_shared<RemoteOutputChannel>(key, peer, std::move(on_failure));
  PendingRequest pending;
  bool have_request = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    outputs_[key] = channel;
    auto it = pending_requests_.find(key);
    if (it != pending_requests_.end()) {
      pending = it->second;
      have_request = true;
      pending_requests_.erase(it);
    }
  }
  connectionTo(peer);  // so that the consumer's request can reach us
  if (have_request) {
    if (auto c = pending.connection.lock()) {
      c->bindOutput(pending.id, channel);
      channel->bind(c, pending.id, pending.credits);
    }
  }
  return channel;
}

void NetworkEnvironment::openInputChannel(const std::string& key, const std::string& peer,
                                          InputGate* gate, int gate_channel,
                                          ChannelFailureHandler on_failure) {
  connectionTo(peer)->openInput(key, gate, gate_channel, options_.buffers_per_channel,
                                options_.segment_size, std::move(on_failure));
}

void NetworkEnvironment::onRequest(const std::shared_ptr<Connection>& connection, std::uint32_t id,
                                   std::uint32_t credits, const std::string& key) {
  std::shared_ptr<RemoteOutputChannel> channel;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = outputs_.find(key);
    if (it == outputs_.end()) {
      pending_requests_[key] = PendingRequest{connection, id, credits};
      return;
    }
    channel = it->second;
  }
  connection->bindOutput(id, channel);
  channel->bind(connection, id, credits);
}

void NetworkEnvironment::onClosed(const std::shared_ptr<Connection>& connection) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = connections_.find(connection->peer());
  if (it != connections_.end() && it->second == connection) connections_.erase(it);
  // Kept until its threads are joined; one never attached has none (and never will: attach
  // refuses once closed).
  if (connection->attached()) retired_.push_back(connection);
}

void NetworkEnvironment::releaseChannels(const std::string& key_prefix) {
  std::vector<std::shared_ptr<Connection>> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = outputs_.begin(); it != outputs_.end();) {
      it = it->first.rfind(key_prefix, 0) == 0 ? outputs_.erase(it) : std::next(it);
    }
    for (auto it = pending_requests_.begin(); it != pending_requests_.end();) {
      it = it->first.rfind(key_prefix, 0) == 0 ? pending_requests_.erase(it) : std::next(it);
    }
    for (auto& [peer, c] : connections_)
      connections.push_back(c);
    // Closed ones too: their failure handlers may still be running.
    connections.insert(connections.end(), retired_.begin(), retired_.end());
  }
  for (auto& c : connections)
    c->releaseChannels(key_prefix);
}

}  // namespace weir::engine
