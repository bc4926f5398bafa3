// The logical job graph as the SDK's builder produces it.
//
// This is the plain-C++ form that crosses the plugin boundary; the engine converts it to the Thrift
// JobGraph (thrift/jobgraph.thrift) that travels between processes, resolves defaults (parallelism,
// max parallelism, default partitioners) and validates it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace weir {

enum class Partitioner : std::uint8_t {
  kDefault = 0,  // forward when both sides have the same parallelism, rebalance otherwise
  kForward,      // subtask i sends to subtask i only; needs equal parallelism
  kRebalance,    // round robin over all consumer subtasks
  kHash,         // key -> key group -> the consumer subtask owning that key group
  kBroadcast,    // every record to every consumer subtask
};

enum class VertexKind : std::uint8_t { kSource = 0, kOperator, kSink };

const char* partitionerName(Partitioner p);

struct VertexDef {
  int id = 0;       // dense, 0-based, in creation order (a topological order)
  std::string uid;  // stable identity for state; user-set or derived deterministically
  bool uid_set_by_user = false;
  std::string name;     // display name
  std::string op_type;  // "source", "map", "filter", "flat_map", "keyed_reduce", ...
  VertexKind kind = VertexKind::kOperator;
  int parallelism = 0;           // 0: the job's default parallelism
  int max_parallelism = 0;       // 0: the job's max parallelism
  bool keyed = false;            // consumes a keyed stream (needs hash-partitioned inputs)
  bool bounded = true;           // sources only: the source ends by itself
  bool start_new_chain = false;  // never chain this vertex to its input
};

struct EdgeDef {
  int id = 0;
  int source = 0;
  int target = 0;
  Partitioner partitioner = Partitioner::kDefault;
  std::string side_output;  // the source's side output (OutputTag id) this edge carries, or empty
};

struct LogicalGraph {
  std::string name;
  int max_parallelism = 0;  // 0: the engine's default (128)
  std::vector<VertexDef> vertices;
  std::vector<EdgeDef> edges;
};

inline const char* partitionerName(Partitioner p) {
  switch (p) {
    case Partitioner::kDefault:
      return "default";
    case Partitioner::kForward:
      return "forward";
    case Partitioner::kRebalance:
      return "rebalance";
    case Partitioner::kHash:
      return "hash";
    case Partitioner::kBroadcast:
      return "broadcast";
  }
  return "unknown";
}

}  // namespace weir
