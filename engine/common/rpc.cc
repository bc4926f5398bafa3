#include "common/rpc.h"

#include <spdlog/spdlog.h>
#include <thrift/TOutput.h>
#include <thrift/server/TServerFramework.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TServerSocket.h>

#include <charconv>
#include <future>

namespace weir::engine {

namespace {

using apache::thrift::server::TServerEventHandler;

// Signals once the server's socket listens.
class ReadySignal final : public TServerEventHandler {
 public:
  void preServe() override { ready_.set_value(); }
  std::future<void> future() { return ready_.get_future(); }

 private:
  std::promise<void> ready_;
};

// Listens when asked first (so that start() can report the bound port before serving) and ignores
// the server's own listen() call that follows.
class ListenOnceSocket final : public apache::thrift::transport::TServerSocket {
 public:
  using TServerSocket::TServerSocket;
  void listen() override {
    if (bound_) return;
    TServerSocket::listen();
    bound_ = true;
  }

 private:
  bool bound_ = false;
};

}  // namespace

RpcServer::RpcServer(std::string name, std::shared_ptr<apache::thrift::TProcessor> processor)
    : name_(std::move(name)), processor_(std::move(processor)) {}

RpcServer::~RpcServer() { stop(); }

Status RpcServer::start(const std::string& host, int port) {
  auto socket = std::make_shared<ListenOnceSocket>(host, port);
  socket->setInterruptableChildren(true);
  try {
    socket->listen();
  } catch (const std::exception& e) {
    return Status::ioError(name_ + ": cannot listen on " + host + ":" + std::to_string(port) +
                           ": " + e.what());
  }
  port_ = socket->getPort();
  server_ = std::make_shared<apache::thrift::server::TThreadedServer>(
      processor_, socket, std::make_shared<apache::thrift::transport::TFramedTransportFactory>(),
      std::make_shared<apache::thrift::protocol::TCompactProtocolFactory>());
  auto ready = std::make_shared<ReadySignal>();
  auto started = ready->future();
  server_->setServerEventHandler(ready);
  thread_ = std::thread([this] {
    try {
      server_->serve();
    } catch (const std::exception& e) {
      spdlog::error("{}: server stopped: {}", name_, e.what());
    }
  });
  started.wait();
  spdlog::info("{} listening on {}:{}", name_, host, port_);
  return Status::ok();
}

void RpcServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

thrift::WeirError toWeirError(const Status& status) {
  thrift::WeirError e;
  switch (status.code()) {
    case Status::Code::kInvalidArgument: e.code = thrift::ErrorCode::INVALID_ARGUMENT; break;
    case Status::Code::kNotFound: e.code = thrift::ErrorCode::NOT_FOUND; break;
    case Status::Code::kCorruption: e.code = thrift::ErrorCode::CORRUPTION; break;
    case Status::Code::kIncompatible: e.code = thrift::ErrorCode::INCOMPATIBLE; break;
    case Status::Code::kIoError: e.code = thrift::ErrorCode::UNAVAILABLE; break;
    case Status::Code::kFailed:
    case Status::Code::kCancelled: e.code = thrift::ErrorCode::FAILED; break;
    default: e.code = thrift::ErrorCode::INTERNAL; break;
  }
  e.message = status.message();
  return e;
}

Status fromWeirError(const thrift::WeirError& e) {
  switch (e.code) {
    case thrift::ErrorCode::INVALID_ARGUMENT: return Status::invalidArgument(e.message);
    case thrift::ErrorCode::NOT_FOUND: return Status::notFound(e.message);
    case thrift::ErrorCode::CORRUPTION: return Status::corruption(e.message);
    case thrift::ErrorCode::INCOMPATIBLE: return Status::incompatible(e.message);
    case thrift::ErrorCode::UNAVAILABLE: return Status::ioError(e.message);
    case thrift::ErrorCode::FAILED: return Status::failed(e.message);
    case thrift::ErrorCode::INTERNAL: break;
  }
  return Status::internal(e.message);
}

void routeThriftOutputToLog() {
  apache::thrift::GlobalOutput.setOutputFunction(
      [](const char* msg) { spdlog::debug("thrift: {}", msg); });
}

Status parseHostPort(const std::string& text, std::string& host, int& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Status::invalidArgument("expected host:port, got '" + text + "'");
  }
  const std::string p = text.substr(colon + 1);
  int value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value < 1 || value > 65535) {
    return Status::invalidArgument("expected host:port with a port in [1, 65535], got '" + text +
                                   "'");
  }
  host = text.substr(0, colon);
  port = value;
  return Status::ok();
}

}  // namespace weir::engine
