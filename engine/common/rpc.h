// Thrift plumbing shared by every control service: a threaded server that binds (port 0 allowed)
// and reports its port once listening, a reconnecting client, and WeirError <-> Status.
//
// Transport is framed with the compact protocol everywhere. A client is not thread-safe by itself:
// RpcClient serialises calls with a mutex and reconnects after a transport failure.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <thrift/TProcessor.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include "cluster_types.h"
#include "weir/status.h"

namespace apache::thrift::server {
class TThreadedServer;
}

namespace weir::engine {

// A Thrift service listening on host:port, served by one thread per connection.
class RpcServer {
 public:
  RpcServer(std::string name, std::shared_ptr<apache::thrift::TProcessor> processor);
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Binds and starts serving; returns once the socket listens (or failed to).
  Status start(const std::string& host, int port);
  void stop();
  int port() const { return port_; }

 private:
  std::string name_;
  std::shared_ptr<apache::thrift::TProcessor> processor_;
  std::shared_ptr<apache::thrift::server::TThreadedServer> server_;
  std::thread thread_;
  int port_ = 0;
};

// Converts an error raised by a handler into the wire exception, and back.
thrift::WeirError toWeirError(const Status& status);
Status fromWeirError(const thrift::WeirError& error);

// A client of one service at host:port. call() connects when needed and returns a Status naming
// the peer on transport failures; the next call reconnects.
template <class Client>
class RpcClient {
 public:
  RpcClient(std::string host, int port, std::chrono::milliseconds timeout)
      : host_(std::move(host)), port_(port), timeout_(timeout) {}

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  std::string address() const { return host_ + ":" + std::to_string(port_); }

  Status call(const std::function<void(Client&)>& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      if (!client_) connect();
      fn(*client_);
      return Status::ok();
    } catch (const thrift::WeirError& e) {
      return fromWeirError(e);
    } catch (const apache::thrift::transport::TTransportException& e) {
      disconnect();
      return Status(Status::ioError("cannot reach " + address() + ": " + describe(e)));
    } catch (const std::exception& e) {
      disconnect();
      return Status::ioError("call to " + address() + " failed: " + e.what());
    }
  }

  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    disconnect();
  }

 private:
  static std::string describe(const apache::thrift::transport::TTransportException& e) {
    using apache::thrift::transport::TTransportException;
    std::string what = e.what();
    if (e.getType() == TTransportException::TIMED_OUT) return "timed out";
    if (e.getType() == TTransportException::END_OF_FILE) return "connection closed";
    // Thrift prefixes socket errors with the call that failed; keep the reason.
    const auto colon = what.rfind(": ");
    return colon == std::string::npos ? what : what.substr(colon + 2);
  }

  void connect() {
    auto socket = std::make_shared<apache::thrift::transport::TSocket>(host_, port_);
    const int ms = static_cast<int>(timeout_.count());
    socket->setConnTimeout(ms);
    socket->setRecvTimeout(ms);
    socket->setSendTimeout(ms);
    transport_ = std::make_shared<apache::thrift::transport::TFramedTransport>(socket);
    auto protocol = std::make_shared<apache::thrift::protocol::TCompactProtocol>(transport_);
    transport_->open();
    client_ = std::make_unique<Client>(protocol);
  }

  void disconnect() {
    client_.reset();
    if (transport_) {
      try {
        transport_->close();
      } catch (...) {
      }
      transport_.reset();
    }
  }

  std::string host_;
  int port_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::shared_ptr<apache::thrift::transport::TTransport> transport_;  // guarded by mu_
  std::unique_ptr<Client> client_;                                      // guarded by mu_
};

// Thrift prints its own diagnostics to stderr; send them to the log at debug level instead (the
// errors themselves reach callers as Status).
void routeThriftOutputToLog();

// "host:port" -> parts; a clear error for anything else.
Status parseHostPort(const std::string& text, std::string& host, int& port);

}  // namespace weir::engine
