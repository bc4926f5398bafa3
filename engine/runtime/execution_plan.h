// From a validated JobGraph to the tasks that run it: chaining decisions, then one deployment per
// chain and subtask with its input channels and output routes.
//
// Chaining: an edge joins its target to its source's chain when it is a forward edge between equal
// parallelisms, the target has no other input, is not a source and did not ask to start a new
// chain. A chain runs on one thread with typed records passed by direct calls.
#pragma once

#include <string>
#include <vector>

#include "runtime/job_graph.h"
#include "weir/task_api.h"

namespace weir::engine {

struct ChainDef {
  int id = 0;
  std::string name;           // "Source: Text File -> Flat Map -> Map"
  std::vector<int> vertices;  // head first, topological
  int parallelism = 1;
  std::vector<int> input_edges;   // network inputs of the head, by edge id
  std::vector<int> output_edges;  // network outputs leaving the chain, by edge id
};

// Why an edge is or is not chained (empty when chained): used by tests and `weir` diagnostics.
std::string chainBreakReason(const JobGraph& graph, const thrift::JobEdge& edge);

std::vector<ChainDef> computeChains(const JobGraph& graph);

// Where one channel of a task's output goes.
struct ChannelRoute {
  int consumer_chain = 0;
  int consumer_subtask = 0;
  int consumer_channel = 0;  // index in the consumer's input gate
};

// Where one input channel of a task comes from.
struct InputChannelSource {
  int edge_id = 0;
  int producer_chain = 0;
  int producer_subtask = 0;
};

struct TaskDeployment {
  int chain_id = 0;
  int subtask = 0;
  std::string task_name;  // "<chain name> (i/p)", 1-based like Flink
  ChainSpec spec;
  std::vector<InputChannelSource> inputs;         // indexed by input channel
  std::vector<std::vector<ChannelRoute>> routes;  // [output][channel]
};

struct ExecutionPlan {
  std::vector<ChainDef> chains;
  std::vector<TaskDeployment> tasks;  // chain by chain, subtask by subtask
};

ExecutionPlan planExecution(const JobGraph& graph);

}  // namespace weir::engine
