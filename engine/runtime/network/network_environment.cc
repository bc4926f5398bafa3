#include "runtime/network/network_environment.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/rpc.h"

namespace weir::engine {

namespace {

std::string errnoText() {
  return std::strerror(errno);
}

bool readFully(int fd, std::uint8_t* buf, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, buf, n, 0);
    if (r > 0) {
      buf += r;
      n -= static_cast<std::size_t>(r);
    } else if (r == 0 || errno != EINTR) {
      return false;
    }
  }
  return true;
}

bool writeFully(int fd, iovec* iov, int count) {
  while (count > 0) {
    const ssize_t w = ::writev(fd, iov, count);
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

// A connected TCP socket to host:port, or -1 with `error` set.
int connectTo(const std::string& address, std::string& error) {
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
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = errnoText();
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  return fd;
}

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
  if (connection && !in_ready_list_.exchange(true)) connection->markReady(shared_from_this());
}

void RemoteOutputChannel::push(Buffer buffer) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failed_) return;  // the task is failing; the buffer goes back to its pool
  queue_.push_back(std::move(buffer));
  notifyLocked(lock);
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || attached_) {
      ::close(fd);
      return;
    }
    fd_ = fd;
    attached_ = true;
  }
  setNoDelay(fd);
  auto self = shared_from_this();
  reader_ = std::thread([self] { self->readLoop(); });
  writer_ = std::thread([self] { self->writeLoop(); });
  writer_cv_.notify_all();
}

bool Connection::attached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return attached_;
}

bool Connection::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
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

void Connection::markReady(std::shared_ptr<RemoteOutputChannel> channel) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    ready_.push_back(std::move(channel));
  }
  writer_cv_.notify_one();
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
    pending_credit_[id] += n;
  }
  writer_cv_.notify_one();
}

void Connection::writeLoop() {
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
        close("write failed: " + errnoText());
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
    const bool data = buffer.kind() == Buffer::Kind::kData;
    FrameHeader h{data ? FrameKind::kData : FrameKind::kEndOfInput, id,
                  data ? static_cast<std::uint32_t>(buffer.size()) : 0};
    if (!sendFrame(fd_, h, buffer.bytes())) {
      close("write failed: " + errnoText());
      return;
    }
    // `buffer` returns to the producer's pool here.
  }
}

void Connection::readLoop() {
  std::vector<std::uint8_t> scratch;
  std::uint8_t header[kFrameHeaderBytes];
  const auto max_data = static_cast<std::uint32_t>(env_.options().segment_size);
  for (;;) {
    if (!readFully(fd_, header, kFrameHeaderBytes)) {
      close(closed() ? "closed" : "connection closed by the peer");
      return;
    }
    auto h = decodeFrameHeader(header, max_data);
    Status s = h.isOk() ? handleFrame(*h, scratch) : h.status();
    if (!s.isOk()) {
      if (!closed()) {
        spdlog::error("data connection to TaskManager at {}: {}; closing it", peer_, s.message());
      }
      close(s.message());
      return;
    }
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
        if (h.length > 0 && !readFully(fd_, scratch.data(), h.length)) {
          return Status::ioError("connection closed in the middle of a frame");
        }
        return Status::ok();
      }
      std::uint8_t* segment = pool->tryRequest();
      if (segment == nullptr) {
        return Status::corruption("data beyond the granted credit on channel " +
                                  std::to_string(h.channel));
      }
      if (!readFully(fd_, segment, h.length)) {
        pool->recycle(segment);
        return Status::ioError("connection closed in the middle of a frame");
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
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = inputs_.find(h.channel);
        if (it == inputs_.end() || it->second.ended) {
          return Status::corruption("end of input for unknown channel " +
                                    std::to_string(h.channel));
        }
        if (it->second.gate == nullptr) {
          inputs_.erase(it);
          return Status::ok();
        }
        it->second.ended = true;
        it->second.gate->push(it->second.gate_channel, Buffer::endOfInput());
      }
      return Status::ok();
    }
    case FrameKind::kCredit:
    case FrameKind::kRequest: {
      scratch.resize(h.length);
      if (h.length > 0 && !readFully(fd_, scratch.data(), h.length)) {
        return Status::ioError("connection closed in the middle of a frame");
      }
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
  std::vector<std::shared_ptr<Connection>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [peer, c] : connections_)
      all.push_back(c);
  }
  stop_cv_.notify_all();
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  for (auto& c : all)
    c->close("shutting down");
  std::vector<std::thread> helpers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    helpers.swap(helpers_);
    for (auto& c : retired_)
      all.push_back(c);
    retired_.clear();
    connections_.clear();
  }
  for (auto& t : helpers)
    t.join();
  for (auto& c : all)
    c->join();
}

std::size_t NetworkEnvironment::connectionCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_.size();
}

void NetworkEnvironment::acceptLoop() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_) spdlog::error("data plane: accept failed: {}", errnoText());
      return;
    }
    // The first frame names the peer. A peer that does not send it in time is dropped.
    setReceiveTimeout(fd, std::chrono::milliseconds(5000));
    std::uint8_t header[kFrameHeaderBytes];
    std::string peer;
    bool ok = readFully(fd, header, kFrameHeaderBytes);
    auto h = ok ? decodeFrameHeader(header, 0) : Result<FrameHeader>(Status::ioError("no hello"));
    if (ok && h.isOk() && h->kind == FrameKind::kHello && h->length > 0) {
      peer.resize(h->length);
      ok = readFully(fd, reinterpret_cast<std::uint8_t*>(peer.data()), h->length);
    } else {
      ok = false;
    }
    if (!ok) {
      spdlog::error("data plane: dropping a connection that did not introduce itself{}",
                    h.isOk() ? "" : ": " + h.status().message());
      ::close(fd);
      continue;
    }
    setReceiveTimeout(fd, std::chrono::milliseconds(0));
    acceptedSocket(fd, peer);
  }
}

void NetworkEnvironment::acceptedSocket(int fd, const std::string& peer) {
  std::shared_ptr<Connection> c = connectionTo(peer);
  c->attach(fd);  // closes `fd` if the connection already has a socket
}

std::shared_ptr<Connection> NetworkEnvironment::connectionTo(const std::string& peer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = connections_.find(peer);
  if (it != connections_.end() && !it->second->closed()) return it->second;
  if (it != connections_.end()) {
    retired_.push_back(it->second);
    connections_.erase(it);
  }
  auto c = std::make_shared<Connection>(*this, peer);
  connections_[peer] = c;
  // One connection per pair: the side with the smaller address connects, the other waits for it
  // (and gives up after the connect timeout).
  helpers_.emplace_back([this, c] { connectLoop(c); });
  return c;
}

void NetworkEnvironment::connectLoop(std::shared_ptr<Connection> c) {
  const bool initiator = address() < c->peer();
  const auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
  std::string error = "it did not connect";
  for (;;) {
    if (c->attached() || c->closed()) return;
    if (initiator) {
      const int fd = connectTo(c->peer(), error);
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
    if (std::chrono::steady_clock::now() > deadline) break;
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
  retired_.push_back(connection);
}

std::size_t NetworkEnvironment::pendingRequestCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_requests_.size();
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
