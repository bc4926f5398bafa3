// The logical job graph as it travels between processes (CLI -> JobManager -> TaskManagers).
// Produced by the engine from a plugin's builder output with defaults resolved, then validated.

namespace cpp weir.thrift

enum Partitioner {
  FORWARD = 1,
  REBALANCE = 2,
  HASH = 3,
  BROADCAST = 4,
}

enum VertexKind {
  SOURCE = 1,
  OPERATOR = 2,
  SINK = 3,
}

struct JobVertex {
  1: required i32 id
  2: required string uid
  3: required string name
  4: required string opType
  5: required VertexKind kind
  6: required i32 parallelism
  7: required i32 maxParallelism
  8: required bool keyed
  9: required bool bounded
  10: required bool startNewChain
  11: required bool uidSetByUser
}

struct JobEdge {
  1: required i32 id
  2: required i32 source
  3: required i32 target
  4: required Partitioner partitioner
  // The side output (OutputTag id) of the source vertex this edge carries; empty: its main output.
  5: optional string sideOutput = ""
}

struct JobGraph {
  1: required string name
  2: required i32 maxParallelism
  3: required list<JobVertex> vertices
  4: required list<JobEdge> edges
  5: required map<string, string> jobArgs
  6: optional string pluginName
  7: optional string pluginVersion
}
