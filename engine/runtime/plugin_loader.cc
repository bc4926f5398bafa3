#include "runtime/plugin_loader.h"

#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace weir::engine {

namespace {

constexpr const char* kEntrySymbol = "weir_plugin_v5";

std::string quoted(const std::string& path) {
  return "plugin '" + path + "'";
}

// Errors are one line: a plugin's message may not be.
std::string oneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

// Finds a `weir_plugin_v<N>` export of another ABI, to name it in the error.
std::string otherAbiEntry(const std::string& path) {
  try {
    boost::dll::library_info info(path);
    for (const std::string& s : info.symbols()) {
      if (s.rfind(kPluginEntryPrefix, 0) == 0) return s;
    }
  } catch (const std::exception&) {
  }
  return {};
}

}  // namespace

const char* engineBuildFingerprint() {
  return kBuildFingerprint;
}

LoadedPlugin::~LoadedPlugin() = default;

Result<std::shared_ptr<LoadedPlugin>> LoadedPlugin::load(const std::string& path) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (ec) return Status::ioError(quoted(path) + ": " + ec.message());
  if (!exists) return Status::notFound(quoted(path) + ": no such file");
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::invalidArgument(quoted(path) + ": not a regular file");
  }

  std::shared_ptr<LoadedPlugin> plugin(new LoadedPlugin());
  plugin->path_ = path;
  try {
    plugin->library_ = std::make_unique<boost::dll::shared_library>(
        path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return Status::invalidArgument(quoted(path) + ": not a loadable shared library: " + e.what());
  }

  if (!plugin->library_->has(kEntrySymbol)) {
    const std::string other = otherAbiEntry(path);
    if (!other.empty()) {
      return Status::incompatible(quoted(path) + ": built for SDK ABI " +
                                  other.substr(std::strlen(kPluginEntryPrefix)) + " (exports " +
                                  other + "), this engine supports ABI " +
                                  std::to_string(kSdkAbiVersion) + " (" + kEntrySymbol + ")");
    }
    return Status::invalidArgument(quoted(path) + ": not a Weir plugin (no exported entry " +
                                   kEntrySymbol + "; build it with WEIR_PLUGIN and " +
                                   "weir_add_plugin)");
  }

  const PluginDescriptor* d = nullptr;
  try {
    auto& entry = plugin->library_->get_alias<PluginEntry>(kEntrySymbol);
    d = entry();
  } catch (const std::exception& e) {
    return Status::invalidArgument(quoted(path) + ": cannot resolve " + kEntrySymbol + ": " +
                                   e.what());
  }
  if (d == nullptr) return Status::invalidArgument(quoted(path) + ": entry returned no descriptor");

  constexpr std::size_t kFixedPart = offsetof(PluginDescriptor, name);
  if (d->struct_size < kFixedPart) {
    return Status::incompatible(quoted(path) + ": descriptor of " + std::to_string(d->struct_size) +
                                " bytes is too small to be a Weir plugin descriptor");
  }
  if (d->abi_version != kSdkAbiVersion) {
    return Status::incompatible(quoted(path) + ": built for SDK ABI " +
                                std::to_string(d->abi_version) + ", this engine supports ABI " +
                                std::to_string(kSdkAbiVersion));
  }
  const char* theirs = d->build_fingerprint != nullptr ? d->build_fingerprint : "(none)";
  if (std::strcmp(theirs, kBuildFingerprint) != 0) {
    return Status::incompatible(quoted(path) + ": build fingerprint mismatch: plugin has '" +
                                theirs + "', engine has '" + kBuildFingerprint + "'");
  }
  if (d->struct_size != sizeof(PluginDescriptor)) {
    return Status::incompatible(quoted(path) + ": descriptor is " + std::to_string(d->struct_size) +
                                " bytes, this engine expects " +
                                std::to_string(sizeof(PluginDescriptor)));
  }
  if (d->name == nullptr || d->version == nullptr || d->create_program == nullptr) {
    return Status::invalidArgument(quoted(path) + ": descriptor lacks a name, version or builder");
  }
  plugin->descriptor_ = d;
  plugin->name_ = d->name;
  plugin->version_ = d->version;
  return plugin;
}

Result<ProgramPtr> LoadedPlugin::createProgram(const JobArgs& args) const {
  std::string error;
  JobProgram* raw = descriptor_->create_program(&args, &error);
  auto self = shared_from_this();
  if (raw == nullptr) {
    return Status::failed("plugin '" + name_ + "' (" + path_ +
                          "): job builder failed: " + oneLine(error));
  }
  // The deleter runs the program's destructor (plugin code), then releases the library.
  return ProgramPtr(raw, [self](JobProgram* p) { delete p; });
}

ProgramPtr adoptProgram(std::unique_ptr<JobProgram> program) {
  return ProgramPtr(std::move(program));
}

Status createChain(const ProgramPtr& program, const ChainSpec& spec, TaskEnvironment& env,
                   ChainPtr& out) {
  std::unique_ptr<ChainInstance> chain;
  Status s = program->createChain(spec, env, chain);
  if (!s.isOk()) return s;
  out = ChainPtr(chain.release(), [program](ChainInstance* c) { delete c; });
  return Status::ok();
}

}  // namespace weir::engine
