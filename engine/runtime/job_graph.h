// The JobGraph: the logical graph with defaults resolved, as it travels between processes (Thrift
// struct, thrift/jobgraph.thrift), and its validation.
#pragma once

#include <string>

#include "jobgraph_types.h"
#include "weir/graph.h"
#include "weir/job_args.h"
#include "weir/status.h"
#include "weir/task_api.h"

namespace weir::engine {

using thrift::JobGraph;

// Resolves the builder's graph: vertices without parallelism get `default_parallelism`, vertices
// without max parallelism get the job's (128 unless the job sets one), and default partitioners
// become forward (equal parallelism) or rebalance.
JobGraph toJobGraph(const LogicalGraph& logical, int default_parallelism, const JobArgs& args);

// Refuses graphs the runtime cannot run, with a message naming the offending vertex or edge:
// no sources, dangling or self edges, cycles, duplicate or empty uids, parallelism outside
// [1, max parallelism], max parallelism outside [1, 32768], forward edges between different
// parallelisms, keyed operators with an input that is not hash-partitioned (no keyBy), hash edges
// into operators that are not keyed, sources with inputs, and operators without inputs.
Status validateJobGraph(const JobGraph& graph);

// Compact binary encoding (Thrift compact protocol), deterministic for equal graphs.
std::string serializeJobGraph(const JobGraph& graph);
Result<JobGraph> deserializeJobGraph(const std::string& bytes);

// Resolves and validates the graph of a freshly built program, and the job arguments the engine
// reads (validateJobStateArgs).
Result<JobGraph> buildJobGraph(const LogicalGraph& logical, int default_parallelism,
                               const JobArgs& args);

// Checks that a program rebuilt from the same plugin and arguments (as every TaskManager does)
// describes the submitted graph: same vertices, uids, kinds and edges. A job builder that is not
// deterministic is refused here rather than running with mismatched operators.
Status checkSameGraph(const JobGraph& submitted, const LogicalGraph& rebuilt);

// "name (uid)" of a vertex, for error messages.
std::string describeVertex(const JobGraph& graph, int vertex);

}  // namespace weir::engine
