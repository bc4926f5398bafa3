// Assignment of a checkpoint's (or savepoint's) state to the subtasks of a job that restores from
// it, possibly at other parallelisms.
//
// Operators are matched to vertices by uid. For each matched operator:
//   - operator state: at an unchanged parallelism each subtask gets its own bytes back; otherwise
//     the decoded snapshots of all old subtasks are redistributed with
//     detail::redistributeOperatorState (split lists cut evenly, union lists to every subtask) and
//     re-encoded per new subtask;
//   - keyed state: each new subtask gets every keyed handle (of any old subtask) whose key-group
//     range overlaps the subtask's own range (keyGroupRangeForSubtask); the task restricts what it
//     reads to its range.
// A new subtask whose operator state is empty (no states at all) and that gets no keyed handle has
// no entry. A state that exists but has no elements for a subtask still counts: that subtask gets
// an entry carrying the (empty) state, so its operator knows it resumes from a checkpoint.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint_types.h"
#include "weir/status.h"

namespace weir::engine {

struct AssignmentVertex {
  std::string uid;
  std::string name;
  int parallelism = 1;
  int max_parallelism = 128;
};

// The state each subtask of each vertex resumes from, by (uid, subtask).
using StateAssignment = std::map<std::pair<std::string, int>, thrift::VertexSubtaskState>;

// Maps a checkpoint's or savepoint's operators to a job's vertices by uid. Operator state is
// redistributed when the parallelism changed (split lists evenly, union lists to all, via
// redistributeOperatorState on decoded bytes, re-encoded); each new subtask gets the keyed handles
// whose key-group range overlaps its own range (keyGroupRangeForSubtask). Errors (Status
// invalidArgument with a message naming the operator uid and vertex name): a vertex whose max
// parallelism differs from the checkpoint's ("max parallelism is fixed for the job's life"); an
// operator in the checkpoint that no vertex has, unless allow_non_restored_state (then it is
// dropped with an info log line); malformed operator state bytes (corruption). Vertices absent from
// the checkpoint get no entries (they start empty). Subtasks with nothing to restore get no entry.
//
// Also refused: two vertices with one uid, a vertex parallelism outside [1, max parallelism]
// (invalidArgument); an operator listed twice, a subtask index outside the operator's recorded
// parallelism or listed twice, a keyed handle whose range is empty or outside
// [0, max parallelism), and operator state whose subtasks disagree on a state's mode (corruption).
Result<StateAssignment> assignState(const thrift::CheckpointMetadata& metadata,
                                    const std::vector<AssignmentVertex>& vertices,
                                    bool allow_non_restored_state);

}  // namespace weir::engine
