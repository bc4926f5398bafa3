// The plugin loader refuses bad plugins with a clear one-line error, never crashing, and accepts a
// good one. The bad plugins are built by test/plugins/CMakeLists.txt.
#include "runtime/plugin_loader.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>

namespace {

using weir::Status;
using weir::engine::LoadedPlugin;
using weir::engine::ProgramPtr;

const std::string kBadDir = WEIR_TEST_BAD_PLUGIN_DIR;
const std::string kGoodPlugin = std::string(WEIR_TEST_PLUGIN_DIR) + "/wordcount.so";

std::string badPlugin(const std::string& file) {
  return kBadDir + "/" + file;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Loads `path`, which must be refused; returns the refusal after checking it is one line and
// names the file.
Status loadFails(const std::string& path) {
  auto loaded = LoadedPlugin::load(path);
  REQUIRE_FALSE(loaded.isOk());
  const Status status = loaded.status();
  INFO("message: " << status.message());
  CHECK_FALSE(status.isOk());
  CHECK_FALSE(status.message().empty());
  CHECK_FALSE(contains(status.message(), "\n"));
  CHECK(contains(status.message(), path));
  return status;
}

// Loads `path`, which must succeed.
std::shared_ptr<LoadedPlugin> loadOk(const std::string& path) {
  auto loaded = LoadedPlugin::load(path);
  INFO("message: " << loaded.status().message());
  REQUIRE(loaded.isOk());
  REQUIRE(loaded.value() != nullptr);
  return loaded.value();
}

// Loads a compatible plugin whose builder fails; returns the createProgram failure.
Status createProgramFails(const std::string& path, const std::string& plugin_name) {
  auto plugin = loadOk(path);
  CHECK(plugin->name() == plugin_name);
  auto program = plugin->createProgram(weir::JobArgs{});
  REQUIRE_FALSE(program.isOk());
  const Status status = program.status();
  INFO("message: " << status.message());
  CHECK(status.code() == Status::Code::kFailed);
  CHECK_FALSE(contains(status.message(), "\n"));
  CHECK(contains(status.message(), plugin_name));
  CHECK(contains(status.message(), "job builder failed"));
  return status;
}

void checkGoodPluginWorks() {
  auto plugin = loadOk(kGoodPlugin);
  CHECK(plugin->name() == "wordcount");
  auto program = plugin->createProgram(weir::JobArgs{});
  REQUIRE(program.isOk());
  CHECK_FALSE(program.value()->graph().vertices.empty());
}

}  // namespace

TEST_CASE("a missing plugin file is refused as not found") {
  const std::string path = badPlugin("does_not_exist.so");
  REQUIRE_FALSE(std::filesystem::exists(path));
  const Status status = loadFails(path);
  CHECK(status.code() == Status::Code::kNotFound);
  CHECK(contains(status.message(), "no such file"));
}

TEST_CASE("a directory is refused as not a regular file") {
  const Status status = loadFails(kBadDir);
  CHECK(status.code() == Status::Code::kInvalidArgument);
  CHECK(contains(status.message(), "not a regular file"));
}

TEST_CASE("a file that is not a shared library is refused") {
  const std::string path = badPlugin("not_a_library.so");
  REQUIRE(std::filesystem::is_regular_file(path));
  const Status status = loadFails(path);
  CHECK(status.code() == Status::Code::kInvalidArgument);
  CHECK(contains(status.message(), "not a loadable shared library"));
}

TEST_CASE("a shared library without the Weir entry is refused as not a Weir plugin") {
  const Status status = loadFails(badPlugin("weir_test_no_entry.so"));
  CHECK(status.code() == Status::Code::kInvalidArgument);
  CHECK(contains(status.message(), "not a Weir plugin"));
  CHECK(contains(status.message(), "weir_plugin_v5"));
}

TEST_CASE("a plugin exporting the entry of another ABI is refused naming both ABIs") {
  const Status status = loadFails(badPlugin("weir_test_abi_v6.so"));
  CHECK(status.code() == Status::Code::kIncompatible);
  CHECK(contains(status.message(), "built for SDK ABI 6"));
  CHECK(contains(status.message(), "weir_plugin_v6"));
  CHECK(contains(status.message(), "supports ABI 5"));
  CHECK(contains(status.message(), "weir_plugin_v5"));
}

TEST_CASE("a plugin whose descriptor claims another ABI is refused naming both ABIs") {
  const Status status = loadFails(badPlugin("weir_test_abi_mismatch.so"));
  CHECK(status.code() == Status::Code::kIncompatible);
  CHECK(contains(status.message(), "built for SDK ABI 7"));
  CHECK(contains(status.message(), "supports ABI 5"));
}

TEST_CASE("a plugin with another build fingerprint is refused naming both fingerprints") {
  const std::string engine_fingerprint = weir::engine::engineBuildFingerprint();
  REQUIRE(engine_fingerprint != "compiler=other");
  const Status status = loadFails(badPlugin("weir_test_fingerprint.so"));
  CHECK(status.code() == Status::Code::kIncompatible);
  CHECK(contains(status.message(), "fingerprint mismatch"));
  CHECK(contains(status.message(), "plugin has 'compiler=other'"));
  CHECK(contains(status.message(), "engine has '" + engine_fingerprint + "'"));
}

TEST_CASE("a job builder that fails is reported by createProgram, not by load") {
  SUBCASE("std::exception") {
    const Status status =
        createProgramFails(badPlugin("weir_test_builder_throws.so"), "builder_throws");
    CHECK(contains(status.message(), "boom"));
  }
  SUBCASE("an exception that is not a std::exception") {
    const Status status =
        createProgramFails(badPlugin("weir_test_builder_throws_int.so"), "builder_throws_int");
    CHECK(contains(status.message(), "unknown exception"));
  }
  SUBCASE("misuse of the builder API (JobDefinitionError)") {
    const Status status =
        createProgramFails(badPlugin("weir_test_builder_misuse.so"), "builder_misuse");
    CHECK(contains(status.message(), "parallelism must be at least 1, got 0"));
  }
  SUBCASE("a failing builder can be run again") {
    auto plugin = loadOk(badPlugin("weir_test_builder_throws.so"));
    auto first = plugin->createProgram(weir::JobArgs{});
    auto second = plugin->createProgram(weir::JobArgs{});
    REQUIRE_FALSE(first.isOk());
    REQUIRE_FALSE(second.isOk());
    CHECK(first.status().message() == second.status().message());
  }
}

TEST_CASE("the wordcount example plugin loads and builds a deterministic program") {
  auto plugin = loadOk(kGoodPlugin);
  CHECK(plugin->path() == kGoodPlugin);
  CHECK(plugin->name() == "wordcount");
  CHECK(plugin->version() == "1.0.0");

  auto first = plugin->createProgram(weir::JobArgs{});
  auto second = plugin->createProgram(weir::JobArgs{});
  REQUIRE(first.isOk());
  REQUIRE(second.isOk());
  const weir::LogicalGraph& a = first.value()->graph();
  const weir::LogicalGraph& b = second.value()->graph();
  CHECK(a.name == "word count");
  CHECK(a.name == b.name);
  CHECK(a.max_parallelism == b.max_parallelism);
  REQUIRE_FALSE(a.vertices.empty());
  REQUIRE(a.vertices.size() == b.vertices.size());
  for (std::size_t i = 0; i < a.vertices.size(); ++i) {
    INFO("vertex " << i << " uid " << a.vertices[i].uid);
    CHECK(a.vertices[i].id == b.vertices[i].id);
    CHECK(a.vertices[i].uid == b.vertices[i].uid);
    CHECK(a.vertices[i].uid_set_by_user == b.vertices[i].uid_set_by_user);
    CHECK(a.vertices[i].name == b.vertices[i].name);
    CHECK(a.vertices[i].op_type == b.vertices[i].op_type);
    CHECK(a.vertices[i].kind == b.vertices[i].kind);
    CHECK(a.vertices[i].parallelism == b.vertices[i].parallelism);
    CHECK(a.vertices[i].keyed == b.vertices[i].keyed);
  }
  REQUIRE_FALSE(a.edges.empty());
  REQUIRE(a.edges.size() == b.edges.size());
  for (std::size_t i = 0; i < a.edges.size(); ++i) {
    INFO("edge " << i);
    CHECK(a.edges[i].id == b.edges[i].id);
    CHECK(a.edges[i].source == b.edges[i].source);
    CHECK(a.edges[i].target == b.edges[i].target);
    CHECK(a.edges[i].partitioner == b.edges[i].partitioner);
  }
  bool has_tokenize = false;
  for (const weir::VertexDef& v : a.vertices)
    has_tokenize = has_tokenize || v.uid == "tokenize";
  CHECK(has_tokenize);
}

TEST_CASE("a program keeps its plugin library loaded after the plugin handle is dropped") {
  ProgramPtr program;
  std::string first_uid;
  std::size_t num_vertices = 0;
  {
    auto plugin = loadOk(kGoodPlugin);
    auto created = plugin->createProgram(weir::JobArgs{});
    REQUIRE(created.isOk());
    program = std::move(created.value());
    num_vertices = program->graph().vertices.size();
    REQUIRE(num_vertices > 0);
    first_uid = program->graph().vertices.front().uid;
  }
  // The only reference to the library is now the program's deleter. Reading the graph touches
  // memory owned by plugin code (and its vtable lives in the library).
  const weir::LogicalGraph& graph = program->graph();
  CHECK(graph.name == "word count");
  REQUIRE(graph.vertices.size() == num_vertices);
  CHECK(graph.vertices.front().uid == first_uid);
  program.reset();  // runs the program's destructor (plugin code), then unloads the library

  // Loading again after the unload works.
  checkGoodPluginWorks();
}

TEST_CASE("loading the same bad plugin twice gives the same error, and the process stays fine") {
  const std::string files[] = {"does_not_exist.so",         "not_a_library.so",
                               "weir_test_no_entry.so",     "weir_test_abi_v6.so",
                               "weir_test_abi_mismatch.so", "weir_test_fingerprint.so"};
  for (const std::string& file : files) {
    INFO("plugin " << file);
    const Status first = loadFails(badPlugin(file));
    const Status second = loadFails(badPlugin(file));
    CHECK(first.code() == second.code());
    CHECK(first.message() == second.message());
  }
  checkGoodPluginWorks();
}
