#include "runtime/execution_plan.h"

#include <functional>
#include <map>
#include <queue>
#include <stdexcept>

namespace weir::engine {

namespace {

Partitioner fromThrift(thrift::Partitioner::type p) {
  switch (p) {
    case thrift::Partitioner::FORWARD:
      return Partitioner::kForward;
    case thrift::Partitioner::REBALANCE:
      return Partitioner::kRebalance;
    case thrift::Partitioner::HASH:
      return Partitioner::kHash;
    case thrift::Partitioner::BROADCAST:
      return Partitioner::kBroadcast;
  }
  return Partitioner::kRebalance;
}

int inputCount(const JobGraph& g, int vertex) {
  int n = 0;
  for (const auto& e : g.edges)
    n += e.target == vertex ? 1 : 0;
  return n;
}

}  // namespace

std::string chainBreakReason(const JobGraph& g, const thrift::JobEdge& e) {
  const auto& src = g.vertices.at(e.source);
  const auto& dst = g.vertices.at(e.target);
  if (e.partitioner != thrift::Partitioner::FORWARD) return "partitioner is not forward";
  if (src.parallelism != dst.parallelism) return "parallelism differs";
  if (dst.kind == thrift::VertexKind::SOURCE) return "target is a source";
  if (dst.startNewChain) return "target starts a new chain";
  if (inputCount(g, e.target) != 1) return "target has several inputs";
  return {};
}

std::vector<ChainDef> computeChains(const JobGraph& g) {
  const int n = static_cast<int>(g.vertices.size());
  std::vector<int> chain_of(n, -1);
  std::vector<ChainDef> chains;
  // Visit vertices in topological order, lowest id first among the ready ones: for graphs from the
  // builder (whose ids are already topological) that is id order, so chain ids follow their heads.
  std::vector<int> remaining(n, 0);
  for (const auto& e : g.edges)
    ++remaining[e.target];
  std::priority_queue<int, std::vector<int>, std::greater<>> ready;
  for (int i = 0; i < n; ++i) {
    if (remaining[i] == 0) ready.push(i);
  }
  std::vector<int> order;
  while (!ready.empty()) {
    const int v = ready.top();
    ready.pop();
    order.push_back(v);
    for (const auto& e : g.edges) {
      if (e.source == v && --remaining[e.target] == 0) ready.push(e.target);
    }
  }
  for (int v : order) {
    const thrift::JobEdge* chained_input = nullptr;
    for (const auto& e : g.edges) {
      if (e.target == v && chainBreakReason(g, e).empty()) chained_input = &e;
    }
    if (chained_input != nullptr) {
      chain_of[v] = chain_of[chained_input->source];
      chains[chain_of[v]].vertices.push_back(v);
      chains[chain_of[v]].name += " -> " + g.vertices[v].name;
      continue;
    }
    ChainDef c;
    c.id = static_cast<int>(chains.size());
    c.name = g.vertices[v].name;
    c.vertices.push_back(v);
    c.parallelism = g.vertices[v].parallelism;
    chain_of[v] = c.id;
    chains.push_back(std::move(c));
  }
  for (const auto& e : g.edges) {
    const int from = chain_of[e.source];
    const int to = chain_of[e.target];
    if (from == to) continue;
    chains[from].output_edges.push_back(e.id);
    chains[to].input_edges.push_back(e.id);
  }
  return chains;
}

ExecutionPlan planExecution(const JobGraph& g) {
  ExecutionPlan plan;
  plan.chains = computeChains(g);
  std::map<int, int> chain_of_vertex;
  for (const auto& c : plan.chains) {
    for (int v : c.vertices)
      chain_of_vertex[v] = c.id;
  }
  auto edge = [&](int id) -> const thrift::JobEdge& {
    for (const auto& e : g.edges) {
      if (e.id == id) return e;
    }
    throw std::logic_error("unknown edge");
  };
  auto isForward = [&](int id) { return edge(id).partitioner == thrift::Partitioner::FORWARD; };

  // Input channel layout of a consumer chain: per input edge, one channel (forward) or one per
  // producer subtask, in input-edge order.
  std::map<int, int> channel_offset;  // edge id -> first channel in its consumer's gate
  std::vector<int> channel_count(plan.chains.size(), 0);
  for (const auto& c : plan.chains) {
    int offset = 0;
    for (int e : c.input_edges) {
      channel_offset[e] = offset;
      offset += isForward(e) ? 1 : g.vertices[edge(e).source].parallelism;
    }
    channel_count[c.id] = offset;
  }

  for (const auto& c : plan.chains) {
    for (int s = 0; s < c.parallelism; ++s) {
      TaskDeployment t;
      t.chain_id = c.id;
      t.subtask = s;
      t.task_name =
          c.name + " (" + std::to_string(s + 1) + "/" + std::to_string(c.parallelism) + ")";
      t.spec.job_name = g.name;
      t.spec.vertex_ids = c.vertices;
      t.spec.subtask_index = s;
      t.spec.parallelism = c.parallelism;
      for (int v : c.vertices) {
        t.spec.max_parallelism.push_back(g.vertices[v].maxParallelism);
        t.spec.vertex_uids.push_back(g.vertices[v].uid);
      }
      t.spec.num_input_channels = channel_count[c.id];
      for (int e : c.input_edges) {
        const auto& je = edge(e);
        const int producer_chain = chain_of_vertex[je.source];
        if (isForward(e)) {
          t.inputs.push_back({e, producer_chain, s});
        } else {
          for (int j = 0; j < g.vertices[je.source].parallelism; ++j) {
            t.inputs.push_back({e, producer_chain, j});
          }
        }
      }
      for (int e : c.output_edges) {
        const auto& je = edge(e);
        const auto& target = g.vertices[je.target];
        NetworkOutputSpec out;
        out.edge_id = e;
        out.partitioner = fromThrift(je.partitioner);
        out.num_channels = isForward(e) ? 1 : target.parallelism;
        out.target_parallelism = target.parallelism;
        out.target_max_parallelism = target.maxParallelism;
        t.spec.outputs.push_back(out);
        std::vector<ChannelRoute> routes;
        const int consumer_chain = chain_of_vertex[je.target];
        for (int k = 0; k < out.num_channels; ++k) {
          ChannelRoute r;
          r.consumer_chain = consumer_chain;
          r.consumer_subtask = isForward(e) ? s : k;
          r.consumer_channel = channel_offset[e] + (isForward(e) ? 0 : s);
          routes.push_back(r);
        }
        t.routes.push_back(std::move(routes));
      }
      plan.tasks.push_back(std::move(t));
    }
  }
  return plan;
}

}  // namespace weir::engine
