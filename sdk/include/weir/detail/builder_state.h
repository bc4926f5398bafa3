// What the job builder records: typed nodes (one per vertex) and edges, from which the logical
// graph is read and chains are instantiated.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "weir/detail/exchange.h"
#include "weir/detail/operators.h"
#include "weir/graph.h"
#include "weir/job_args.h"

namespace weir {

// Thrown inside the plugin when the builder is misused (bad parallelism, naming a union, ...); the
// plugin entry reports it as the builder's failure.
class JobDefinitionError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

class InputReaderBase {
 public:
  virtual ~InputReaderBase() = default;
  virtual std::string readBatch(int channel, const std::uint8_t* data, std::size_t size,
                                std::size_t max_records, InputProgress& progress) = 0;
  virtual void partialFrame(int channel, std::string& out) const = 0;
};

template <class T>
class TypedInputReader final : public InputReaderBase {
 public:
  TypedInputReader(int num_channels, BatchConsumer<T>* head) : reader_(num_channels, head) {}
  std::string readBatch(int channel, const std::uint8_t* data, std::size_t size,
                        std::size_t max_records, InputProgress& progress) override {
    return reader_.readBatch(channel, data, size, max_records, progress);
  }
  void partialFrame(int channel, std::string& out) const override {
    reader_.partialFrame(channel, out);
  }

 private:
  InputReader<T> reader_;
};

class NodeBase {
 public:
  virtual ~NodeBase() = default;
  // A fresh operator for one subtask, with its own copy of the user function.
  virtual std::unique_ptr<OperatorInstance> instantiate() const = 0;
  // For nodes with an input: decodes network buffers of the input type into `head`'s input port.
  virtual std::unique_ptr<InputReaderBase> makeReader(int num_channels,
                                                      OperatorInstance& head) const = 0;
  VertexDef def;
};

// In is the node's input record type (void for sources); Make returns the operator instance.
template <class In, class Make>
class TypedNode final : public NodeBase {
 public:
  explicit TypedNode(Make make) : make_(std::move(make)) {}
  std::unique_ptr<OperatorInstance> instantiate() const override { return make_(); }
  std::unique_ptr<InputReaderBase> makeReader(int num_channels,
                                              OperatorInstance& head) const override {
    if constexpr (std::is_void_v<In>) {
      return nullptr;
    } else {
      return std::make_unique<TypedInputReader<In>>(
          num_channels, static_cast<BatchConsumer<In>*>(head.inputPort()));
    }
  }

 private:
  Make make_;
};

using WriterFactory = std::function<std::unique_ptr<BatchConsumerBase>(
    OutputGate& gate, const NetworkOutputSpec& spec, int subtask_index)>;
// For edges carrying a side output: wraps the consumer into the typed side output its producer
// emits into.
using SideOutputFactory = std::function<std::unique_ptr<SideOutputBase>(BatchConsumerBase*)>;

struct EdgeNode {
  EdgeDef def;
  bool has_key = false;  // a key selector is available for hash partitioning
  WriterFactory make_writer;
  SideOutputFactory make_side_output;  // set when def.side_output is not empty
};

struct BuilderState {
  JobArgs args;
  std::string job_name = "weir job";
  int max_parallelism = 0;
  std::vector<std::unique_ptr<NodeBase>> nodes;
  std::vector<EdgeNode> edges;

  template <class In, class Make>
  int addNode(VertexDef def, Make make) {
    def.id = static_cast<int>(nodes.size());
    auto node = std::make_unique<TypedNode<In, Make>>(std::move(make));
    node->def = std::move(def);
    nodes.push_back(std::move(node));
    return static_cast<int>(nodes.size()) - 1;
  }

  VertexDef& vertex(int id) { return nodes.at(static_cast<std::size_t>(id))->def; }

  LogicalGraph graph() const {
    LogicalGraph g;
    g.name = job_name;
    g.max_parallelism = max_parallelism;
    for (const auto& n : nodes) {
      VertexDef d = n->def;
      if (d.uid.empty()) d.uid = d.op_type + "-" + std::to_string(d.id);
      g.vertices.push_back(std::move(d));
    }
    for (const auto& e : edges)
      g.edges.push_back(e.def);
    return g;
  }
};

}  // namespace detail
}  // namespace weir
