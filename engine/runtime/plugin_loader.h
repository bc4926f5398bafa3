// Loading job plugins (shared libraries built with WEIR_PLUGIN) and checking that they fit.
//
// A plugin is refused, with a one-line error naming the file and both sides of any mismatch, when:
// the file is missing; it is not a loadable shared library; it has no Weir entry; it was built for
// another SDK ABI; its build fingerprint (compiler, standard library, SDK headers) differs from the
// engine's; or its job builder fails. Nothing the plugin throws reaches the engine.
//
// Lifetime: the library stays mapped while anything created from it lives. Programs and chains
// are handed out as shared_ptrs whose deleters hold the library (or the program) alive until the
// object, whose code lives in the library, has been destroyed.
#pragma once

#include <memory>
#include <string>

#include "weir/job_args.h"
#include "weir/plugin.h"
#include "weir/status.h"
#include "weir/task_api.h"

namespace boost::dll {
class shared_library;
}

namespace weir::engine {

using ProgramPtr = std::shared_ptr<JobProgram>;
using ChainPtr = std::shared_ptr<ChainInstance>;

class LoadedPlugin : public std::enable_shared_from_this<LoadedPlugin> {
 public:
  static Result<std::shared_ptr<LoadedPlugin>> load(const std::string& path);
  ~LoadedPlugin();

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }

  // Runs the plugin's job builder.
  Result<ProgramPtr> createProgram(const JobArgs& args) const;

 private:
  LoadedPlugin() = default;

  std::string path_;
  std::string name_;
  std::string version_;
  std::unique_ptr<boost::dll::shared_library> library_;
  const PluginDescriptor* descriptor_ = nullptr;
};

// Wraps a program built in this process (no library to keep loaded).
ProgramPtr adoptProgram(std::unique_ptr<JobProgram> program);

// Creates a chain whose owner also keeps `program` (and so its library) alive.
Status createChain(const ProgramPtr& program, const ChainSpec& spec, TaskEnvironment& env,
                   ChainPtr& out);

// The fingerprint this engine was built with; plugins must match it exactly.
const char* engineBuildFingerprint();

}  // namespace weir::engine
