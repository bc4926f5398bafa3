// SHA-256 (OpenSSL's libcrypto) for content-addressed plugins: the JobManager stores a plugin
// under its hash, TaskManagers verify what they fetched against it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "weir/status.h"

struct evp_md_ctx_st;

namespace weir::engine {

// Incremental hashing: update() any number of times, then finishHex() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t n);
  // 64 lowercase hex digits.
  std::string finishHex();

 private:
  evp_md_ctx_st* ctx_;
};

std::string sha256Hex(std::string_view data);
// Streams the file in 1 MiB blocks.
Result<std::string> sha256File(const std::filesystem::path& path);
// 64 lowercase hex digits.
bool isSha256Hex(std::string_view s);

}  // namespace weir::engine
