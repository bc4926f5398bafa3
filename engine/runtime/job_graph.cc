#include "runtime/job_graph.h"

#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <map>
#include <memory>
#include <queue>
#include <vector>

#include "state/state_settings.h"
#include "weir/key_groups.h"

namespace weir::engine {

namespace {

thrift::Partitioner::type toThrift(Partitioner p) {
  switch (p) {
    case Partitioner::kForward:
      return thrift::Partitioner::FORWARD;
    case Partitioner::kRebalance:
      return thrift::Partitioner::REBALANCE;
    case Partitioner::kHash:
      return thrift::Partitioner::HASH;
    case Partitioner::kBroadcast:
      return thrift::Partitioner::BROADCAST;
    case Partitioner::kDefault:
      break;
  }
  return thrift::Partitioner::REBALANCE;
}

thrift::VertexKind::type toThrift(VertexKind k) {
  switch (k) {
    case VertexKind::kSource:
      return thrift::VertexKind::SOURCE;
    case VertexKind::kSink:
      return thrift::VertexKind::SINK;
    case VertexKind::kOperator:
      break;
  }
  return thrift::VertexKind::OPERATOR;
}

const char* partitionerText(thrift::Partitioner::type p) {
  switch (p) {
    case thrift::Partitioner::FORWARD:
      return "forward";
    case thrift::Partitioner::REBALANCE:
      return "rebalance";
    case thrift::Partitioner::HASH:
      return "hash";
    case thrift::Partitioner::BROADCAST:
      return "broadcast";
  }
  return "unknown";
}

}  // namespace

std::string describeVertex(const JobGraph& graph, int vertex) {
  if (vertex < 0 || vertex >= static_cast<int>(graph.vertices.size())) {
    return "vertex #" + std::to_string(vertex);
  }
  const auto& v = graph.vertices[vertex];
  return "'" + v.name + "' (uid " + v.uid + ")";
}

JobGraph toJobGraph(const LogicalGraph& logical, int default_parallelism, const JobArgs& args) {
  JobGraph g;
  g.name = logical.name;
  g.maxParallelism = logical.max_parallelism > 0 ? logical.max_parallelism : kDefaultMaxParallelism;
  for (const VertexDef& d : logical.vertices) {
    thrift::JobVertex v;
    v.id = d.id;
    v.uid = d.uid;
    v.name = d.name;
    v.opType = d.op_type;
    v.kind = toThrift(d.kind);
    v.parallelism = d.parallelism > 0 ? d.parallelism : default_parallelism;
    v.maxParallelism = d.max_parallelism > 0 ? d.max_parallelism : g.maxParallelism;
    v.keyed = d.keyed;
    v.bounded = d.bounded;
    v.startNewChain = d.start_new_chain;
    v.uidSetByUser = d.uid_set_by_user;
    g.vertices.push_back(std::move(v));
  }
  for (const EdgeDef& d : logical.edges) {
    thrift::JobEdge e;
    e.id = d.id;
    e.source = d.source;
    e.target = d.target;
    Partitioner p = d.partitioner;
    if (p == Partitioner::kDefault) {
      const bool in_range = d.source >= 0 && d.target >= 0 &&
                            d.source < static_cast<int>(g.vertices.size()) &&
                            d.target < static_cast<int>(g.vertices.size());
      const bool same =
          in_range && g.vertices[d.source].parallelism == g.vertices[d.target].parallelism;
      p = same ? Partitioner::kForward : Partitioner::kRebalance;
    }
    e.partitioner = toThrift(p);
    e.__set_sideOutput(d.side_output);
    g.edges.push_back(std::move(e));
  }
  g.jobArgs = args.all();
  return g;
}

Status validateJobGraph(const JobGraph& g) {
  const int n = static_cast<int>(g.vertices.size());
  if (n == 0) return Status::invalidArgument("invalid job graph: no operators");
  if (g.maxParallelism < 1 || g.maxParallelism > kUpperBoundMaxParallelism) {
    return Status::invalidArgument("invalid job graph: max parallelism " +
                                   std::to_string(g.maxParallelism) + " is outside [1, " +
                                   std::to_string(kUpperBoundMaxParallelism) + "]");
  }
  std::map<std::string, int> uids;
  for (int i = 0; i < n; ++i) {
    const auto& v = g.vertices[i];
    const std::string who = "invalid job graph: vertex " + describeVertex(g, i);
    if (v.id != i)
      return Status::invalidArgument(who + ": id " + std::to_string(v.id) + " out of order");
    if (v.uid.empty()) return Status::invalidArgument(who + ": empty uid");
    auto [it, inserted] = uids.emplace(v.uid, i);
    if (!inserted) {
      return Status::invalidArgument("invalid job graph: duplicate uid '" + v.uid + "' on " +
                                     describeVertex(g, it->second) + " and " +
                                     describeVertex(g, i));
    }
    if (v.maxParallelism < 1 || v.maxParallelism > kUpperBoundMaxParallelism) {
      return Status::invalidArgument(who + ": max parallelism " + std::to_string(v.maxParallelism) +
                                     " is outside [1, " +
                                     std::to_string(kUpperBoundMaxParallelism) + "]");
    }
    if (v.parallelism < 1) {
      return Status::invalidArgument(who + ": parallelism " + std::to_string(v.parallelism) +
                                     " is below 1");
    }
    if (v.parallelism > v.maxParallelism) {
      return Status::invalidArgument(who + ": parallelism " + std::to_string(v.parallelism) +
                                     " exceeds max parallelism " +
                                     std::to_string(v.maxParallelism));
    }
  }

  std::vector<int> in_degree(n, 0);
  std::vector<std::vector<int>> out(n);
  bool has_source = false;
  for (const auto& e : g.edges) {
    const std::string who = "invalid job graph: edge #" + std::to_string(e.id);
    if (e.source < 0 || e.source >= n || e.target < 0 || e.target >= n) {
      return Status::invalidArgument(who + " refers to a vertex that does not exist");
    }
    if (e.source == e.target) {
      return Status::invalidArgument(who + " connects " + describeVertex(g, e.source) +
                                     " to itself");
    }
    const auto& src = g.vertices[e.source];
    const auto& dst = g.vertices[e.target];
    if (src.kind == thrift::VertexKind::SINK) {
      return Status::invalidArgument(who + ": sink " + describeVertex(g, e.source) +
                                     " cannot have outputs");
    }
    if (dst.kind == thrift::VertexKind::SOURCE) {
      return Status::invalidArgument(who + ": source " + describeVertex(g, e.target) +
                                     " cannot have inputs");
    }
    if (e.partitioner == thrift::Partitioner::FORWARD && src.parallelism != dst.parallelism) {
      return Status::invalidArgument(
          who + ": forward partitioning from " + describeVertex(g, e.source) + " (parallelism " +
          std::to_string(src.parallelism) + ") to " + describeVertex(g, e.target) +
          " (parallelism " + std::to_string(dst.parallelism) +
          ") needs equal parallelism; use rebalance()");
    }
    if (dst.keyed && e.partitioner != thrift::Partitioner::HASH) {
      return Status::invalidArgument("invalid job graph: keyed operator " +
                                     describeVertex(g, e.target) + " has a " +
                                     partitionerText(e.partitioner) + " input from " +
                                     describeVertex(g, e.source) + "; key the stream with keyBy");
    }
    if (!dst.keyed && e.partitioner == thrift::Partitioner::HASH) {
      return Status::invalidArgument(who + ": hash-partitioned input into " +
                                     describeVertex(g, e.target) + ", which is not keyed");
    }
    ++in_degree[e.target];
    out[e.source].push_back(e.target);
  }
  for (int i = 0; i < n; ++i) {
    const auto& v = g.vertices[i];
    if (v.kind == thrift::VertexKind::SOURCE) {
      has_source = true;
    } else if (in_degree[i] == 0) {
      return Status::invalidArgument("invalid job graph: " + describeVertex(g, i) +
                                     " has no input");
    }
  }
  if (!has_source) return Status::invalidArgument("invalid job graph: no source");

  // Kahn's algorithm: every vertex must be reached, or there is a cycle.
  std::queue<int> ready;
  std::vector<int> remaining = in_degree;
  for (int i = 0; i < n; ++i) {
    if (remaining[i] == 0) ready.push(i);
  }
  int visited = 0;
  while (!ready.empty()) {
    const int v = ready.front();
    ready.pop();
    ++visited;
    for (int t : out[v]) {
      if (--remaining[t] == 0) ready.push(t);
    }
  }
  if (visited != n) return Status::invalidArgument("invalid job graph: the graph has a cycle");
  return Status::ok();
}

Result<JobGraph> buildJobGraph(const LogicalGraph& logical, int default_parallelism,
                               const JobArgs& args) {
  if (default_parallelism < 1) {
    return Status::invalidArgument("parallelism must be at least 1, got " +
                                   std::to_string(default_parallelism));
  }
  Status s = validateJobStateArgs(args.all());
  if (!s.isOk()) return s;
  JobGraph g = toJobGraph(logical, default_parallelism, args);
  s = validateJobGraph(g);
  if (!s.isOk()) return s;
  return g;
}

Status checkSameGraph(const JobGraph& submitted, const LogicalGraph& rebuilt) {
  const std::string prefix = "job builder is not deterministic: ";
  if (submitted.vertices.size() != rebuilt.vertices.size() ||
      submitted.edges.size() != rebuilt.edges.size()) {
    return Status::invalidArgument(prefix + "the rebuilt job has " +
                                   std::to_string(rebuilt.vertices.size()) + " operators and " +
                                   std::to_string(rebuilt.edges.size()) + " edges, the submitted " +
                                   std::to_string(submitted.vertices.size()) + " and " +
                                   std::to_string(submitted.edges.size()));
  }
  for (std::size_t i = 0; i < rebuilt.vertices.size(); ++i) {
    const auto& a = submitted.vertices[i];
    const auto& b = rebuilt.vertices[i];
    const bool parallelism_ok = b.parallelism == 0 || b.parallelism == a.parallelism;
    if (a.uid != b.uid || a.opType != b.op_type || a.name != b.name || a.kind != toThrift(b.kind) ||
        a.keyed != b.keyed || !parallelism_ok) {
      return Status::invalidArgument(prefix + "operator #" + std::to_string(i) + " was " +
                                     describeVertex(submitted, static_cast<int>(i)) +
                                     " when submitted and '" + b.name + "' (uid " + b.uid +
                                     ") when rebuilt");
    }
  }
  for (std::size_t i = 0; i < rebuilt.edges.size(); ++i) {
    const auto& a = submitted.edges[i];
    const auto& b = rebuilt.edges[i];
    const bool partitioner_ok =
        b.partitioner == Partitioner::kDefault || toThrift(b.partitioner) == a.partitioner;
    if (a.source != b.source || a.target != b.target || !partitioner_ok ||
        a.sideOutput != b.side_output) {
      return Status::invalidArgument(prefix + "edge #" + std::to_string(i) + " differs");
    }
  }
  return Status::ok();
}

std::string serializeJobGraph(const JobGraph& graph) {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  apache::thrift::protocol::TCompactProtocol protocol(buffer);
  graph.write(&protocol);
  return buffer->getBufferAsString();
}

Result<JobGraph> deserializeJobGraph(const std::string& bytes) {
  try {
    auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(const_cast<char*>(bytes.data())),
        static_cast<uint32_t>(bytes.size()));
    apache::thrift::protocol::TCompactProtocol protocol(buffer);
    JobGraph g;
    g.read(&protocol);
    return g;
  } catch (const std::exception& e) {
    return Status::corruption(std::string("cannot decode job graph: ") + e.what());
  }
}

}  // namespace weir::engine
