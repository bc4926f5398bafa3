// The data plane of one TaskManager: a TCP server on taskmanager.data.port, one connection per peer
// TaskManager carrying every channel between the two, and credit-based flow control.
//
// Channels. A producer task's output channel to a consumer on another TaskManager is a
// RemoteOutputChannel, registered under a key naming (job, edge, producer subtask, consumer
// subtask). The consumer's TaskManager opens it by sending REQUEST(key, id, credits) on the
// connection; until then, and whenever it has no credit, the producer's buffers wait in the
// channel's queue. Their number is bounded by the producer's own buffer pool, so a slow or absent
// consumer back-pressures the producer. Each credit stands for one receive buffer the consumer has
// reserved for that channel (taskmanager.network.buffers-per-channel), so the receiver always has
// room for what arrives; a buffer the consumer has processed returns to its pool and grants one
// more credit.
//
// Connections. The TaskManager with the smaller data address connects; the other waits for it. A
// connection runs a reader and a writer thread. A frame that breaks the protocol (wrong version,
// unknown kind, oversized length, data, an event or end of input for an unknown channel, data
// beyond credit, a barrier that does not decode) closes the connection with a logged error, and
// every channel on it fails: its tasks fail with the reason, the TaskManager keeps going. Credit
// for an unknown channel is ignored: it may be for a channel released here whose consumer still
// returns buffers. An accepted socket's hello is read on a thread of its own, so a peer that
// connects and says nothing holds up no one.
//
// Threads: the acceptor; per connection a reader and a writer; short-lived helpers that connect or
// read a hello. stop() ends and joins all of them. Failure handlers run on those threads or on the
// caller of stop(), never under a lock of this file.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/network/buffer_pool.h"
#include "runtime/network/channel_sink.h"
#include "runtime/network/frame.h"
#include "runtime/network/input_gate.h"

namespace weir::engine {

class Connection;
class NetworkEnvironment;

// Called when a channel can no longer work (its connection closed); reports why.
using ChannelFailureHandler = std::function<void(const Status&)>;

// Producer side of a channel to another TaskManager.
class RemoteOutputChannel final : public ChannelSink,
                                  public std::enable_shared_from_this<RemoteOutputChannel> {
 public:
  RemoteOutputChannel(std::string key, std::string peer, ChannelFailureHandler on_failure)
      : key_(std::move(key)), peer_(std::move(peer)), on_failure_(std::move(on_failure)) {}

  const std::string& key() const { return key_; }
  const std::string& peer() const { return peer_; }
  void push(Buffer buffer) override;
  // Queues the barrier after the last barrier still queued (at the front when there is none) and
  // hands the data buffers it overtakes there to `persist`; it needs no credit. Those buffers are
  // the producer's to persist: the consumer only persists what the barrier overtakes in its gate.
  void pushPriority(Buffer barrier, const std::function<void(const Buffer&)>& persist) override;
  // An aligned barrier waits here for the data before it to get credit; after the timeout it moves
  // to where pushPriority would have put it, marked unaligned.
  bool settleBarrier(std::int64_t id, std::int64_t cutoff_ms,
                     const std::function<void(const Buffer&)>& persist) override;

  // --- connection side ---
  void bind(const std::shared_ptr<Connection>& connection, std::uint32_t id, std::uint32_t credits);
  void addCredit(std::uint32_t n);
  // The next buffer to send if there is credit for it (events need none); false when none.
  bool takeSendable(Buffer& out, std::uint32_t& id);
  void fail(const Status& status);
  // Buffers waiting (for tests and metrics).
  std::size_t queued() const;

 private:
  bool sendableLocked() const;
  void notifyLocked(std::unique_lock<std::mutex>& lock);

  const std::string key_;
  const std::string peer_;
  ChannelFailureHandler on_failure_;
  mutable std::mutex mu_;
  BufferQueue queue_;                     // guarded by mu_
  std::uint32_t credit_ = 0;              // guarded by mu_
  std::uint32_t id_ = 0;                  // guarded by mu_
  std::weak_ptr<Connection> connection_;  // guarded by mu_
  bool failed_ = false;                   // guarded by mu_
  std::atomic<bool> in_ready_list_{false};
};

// One TCP connection to a peer TaskManager. Frames to send before the socket exists are queued.
class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  Connection(NetworkEnvironment& env, std::string peer) : env_(env), peer_(std::move(peer)) {}
  ~Connection();

  const std::string& peer() const { return peer_; }
  // Starts reading and writing on a connected socket (takes ownership of `fd`).
  void attach(int fd);
  // Closes the socket and fails every channel on it. Idempotent.
  void close(const std::string& reason);
  bool closed() const;
  bool attached() const;
  // Waits for the reader and writer; not from one of them.
  void join();
  // True once closed and its reader and writer (if it had them) have finished: join() is quick.
  bool finished() const;

  // Producer side: `channel` has something it may send. False (and nothing queued) once closed.
  bool markReady(std::shared_ptr<RemoteOutputChannel> channel);
  void bindOutput(std::uint32_t id, std::shared_ptr<RemoteOutputChannel> channel);

  // Consumer side: opens a channel from the producer named by `key` into `gate`'s channel
  // `gate_channel`, with `credits` receive buffers of `segment_size` bytes.
  void openInput(const std::string& key, InputGate* gate, int gate_channel, int credits,
                 std::size_t segment_size, ChannelFailureHandler on_failure);
  void grantCredit(std::uint32_t id, std::uint32_t n);
  // Detaches the channels whose key starts with `key_prefix` from their gates and forgets their
  // outputs: their tasks are going away. Data still in flight for them is read and dropped.
  void releaseChannels(const std::string& key_prefix);

 private:
  struct InputChannel {
    std::string key;
    InputGate* gate = nullptr;  // null once released: what still arrives is dropped
    int gate_channel = 0;
    std::shared_ptr<BufferPool> pool;
    ChannelFailureHandler on_failure;
    bool ended = false;
  };
  struct ControlFrame {
    FrameHeader header;
    std::string payload;
  };

  void readLoop();
  void writeLoop();
  void writeFailed();
  Status handleFrame(const FrameHeader& h, std::vector<std::uint8_t>& scratch);
  void queueControl(FrameKind kind, std::uint32_t channel, std::string payload);

  NetworkEnvironment& env_;
  const std::string peer_;
  int fd_ = -1;
  std::thread reader_;
  std::thread writer_;
  std::atomic<int> loops_running_{0};  // reader and writer not yet returned

  std::mutex callbacks_mu_;  // see close(); taken before mu_
  mutable std::mutex mu_;
  std::condition_variable writer_cv_;
  bool attached_ = false;                                                  // guarded by mu_
  bool closed_ = false;                                                    // guarded by mu_
  std::string close_reason_;                                               // guarded by mu_
  std::deque<ControlFrame> control_;                                       // guarded by mu_
  std::deque<std::shared_ptr<RemoteOutputChannel>> ready_;                 // guarded by mu_
  std::map<std::uint32_t, std::shared_ptr<RemoteOutputChannel>> outputs_;  // guarded by mu_
  std::map<std::uint32_t, InputChannel> inputs_;                           // guarded by mu_
  std::map<std::uint32_t, std::uint32_t> pending_credit_;                  // guarded by mu_
  // Outputs released while their consumer may still return credit for the last buffers: such
  // credit is ignored, not taken for a protocol error.
  std::set<std::uint32_t> released_outputs_;  // guarded by mu_
  std::uint32_t next_input_id_ = 1;           // guarded by mu_
};

struct NetworkOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::size_t segment_size = 32 * 1024;
  int buffers_per_channel = 2;
  std::chrono::milliseconds connect_timeout{10000};
};

class NetworkEnvironment {
 public:
  explicit NetworkEnvironment(NetworkOptions options);
  ~NetworkEnvironment();
  NetworkEnvironment(const NetworkEnvironment&) = delete;
  NetworkEnvironment& operator=(const NetworkEnvironment&) = delete;

  Status start();
  void stop();
  // host:port other TaskManagers connect to.
  std::string address() const;
  const NetworkOptions& options() const { return options_; }

  // Producer side: the sink for one output channel whose consumer runs at `peer`.
  std::shared_ptr<RemoteOutputChannel> createOutputChannel(const std::string& key,
                                                           const std::string& peer,
                                                           ChannelFailureHandler on_failure);
  // Consumer side: asks `peer` for the channel `key` and delivers it into `gate`.
  void openInputChannel(const std::string& key, const std::string& peer, InputGate* gate,
                        int gate_channel, ChannelFailureHandler on_failure);
  // Forgets every channel (output and input) whose key starts with `key_prefix`: the tasks of a
  // job that ended or was cancelled here. Call before their gates and partitions are destroyed.
  void releaseChannels(const std::string& key_prefix);

  // --- connection side ---
  void onRequest(const std::shared_ptr<Connection>& connection, std::uint32_t id,
                 std::uint32_t credits, const std::string& key);
  void onClosed(const std::shared_ptr<Connection>& connection);

  // Connections currently open, and channel requests waiting for their producer (for tests).
  std::size_t connectionCount() const;
  std::size_t pendingRequestCount() const;

 private:
  // A short-lived thread: one connecting to a peer, or one reading an accepted socket's hello.
  struct Helper {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  std::shared_ptr<Connection> connectionTo(const std::string& peer);
  bool stopping() const;
  void acceptLoop();
  void handshake(int fd);
  void connectLoop(std::shared_ptr<Connection> connection);
  void acceptedSocket(int fd, const std::string& peer);
  void spawnHelperLocked(std::function<void()> fn);
  // Joins finished helpers and the threads of finished retired connections, and forgets them.
  void reapLocked();

  NetworkOptions options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;                                           // guarded by mu_
  std::map<std::string, std::shared_ptr<Connection>> connections_;  // guarded by mu_
  // Closed connections whose threads are not joined yet.
  std::vector<std::shared_ptr<Connection>> retired_;  // guarded by mu_
  std::vector<Helper> helpers_;                       // guarded by mu_
  // Accepted sockets whose hello is being read (stop() shuts them down to end the wait).
  std::set<int> handshaking_;                                            // guarded by mu_
  std::map<std::string, std::shared_ptr<RemoteOutputChannel>> outputs_;  // guarded by mu_
  struct PendingRequest {
    std::weak_ptr<Connection> connection;
    std::uint32_t id = 0;
    std::uint32_t credits = 0;
  };
  std::map<std::string, PendingRequest> pending_requests_;  // guarded by mu_
};

}  // namespace weir::engine
