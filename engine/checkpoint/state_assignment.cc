#include "checkpoint/state_assignment.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <set>
#include <string_view>

#include "weir/detail/operator_state.h"
#include "weir/key_groups.h"

namespace weir::engine {
namespace {

using detail::OperatorStateSnapshot;

std::string describe(const std::string& uid, const AssignmentVertex* vertex) {
  std::string out = "operator '" + uid + "'";
  if (vertex != nullptr) out += " (vertex '" + vertex->name + "')";
  return out;
}

Status checkVertices(const std::vector<AssignmentVertex>& vertices,
                     std::map<std::string, const AssignmentVertex*>& by_uid) {
  for (const auto& v : vertices) {
    if (!by_uid.emplace(v.uid, &v).second) {
      return Status::invalidArgument("vertices '" + by_uid[v.uid]->name + "' and '" + v.name +
                                     "' share the operator uid '" + v.uid + "'");
    }
    if (v.max_parallelism < 1 || v.max_parallelism > kUpperBoundMaxParallelism) {
      return Status::invalidArgument(describe(v.uid, &v) + ": max parallelism " +
                                     std::to_string(v.max_parallelism) + " is outside [1, " +
                                     std::to_string(kUpperBoundMaxParallelism) + "]");
    }
    if (v.parallelism < 1 || v.parallelism > v.max_parallelism) {
      return Status::invalidArgument(describe(v.uid, &v) + ": parallelism " +
                                     std::to_string(v.parallelism) + " is outside [1, " +
                                     std::to_string(v.max_parallelism) + "]");
    }
  }
  return Status::ok();
}

// The checkpoint's subtasks of `op` by index (nullptr: the subtask recorded nothing).
Result<std::vector<const thrift::SubtaskState*>> subtasksByIndex(const thrift::OperatorState& op,
                                                                 const std::string& what) {
  std::vector<const thrift::SubtaskState*> out(static_cast<std::size_t>(op.parallelism), nullptr);
  for (const auto& st : op.subtasks) {
    if (st.subtask < 0 || st.subtask >= op.parallelism) {
      return Status::corruption(what + ": checkpoint lists subtask " + std::to_string(st.subtask) +
                                " of an operator with parallelism " +
                                std::to_string(op.parallelism));
    }
    auto& slot = out[static_cast<std::size_t>(st.subtask)];
    if (slot != nullptr) {
      return Status::corruption(what + ": checkpoint lists subtask " + std::to_string(st.subtask) +
                                " twice");
    }
    slot = &st;
  }
  return out;
}

// The operator state bytes of each new subtask ("" when it has no state at all).
Result<std::vector<std::string>> assignOperatorState(
    const std::vector<const thrift::SubtaskState*>& old_subtasks, int new_parallelism,
    const std::string& what) {
  const auto old_parallelism = static_cast<int>(old_subtasks.size());
  std::vector<std::vector<OperatorStateSnapshot>> decoded(old_subtasks.size());
  for (std::size_t i = 0; i < old_subtasks.size(); ++i) {
    if (old_subtasks[i] == nullptr || old_subtasks[i]->operatorState.empty()) continue;
    try {
      decoded[i] = detail::decodeOperatorState(old_subtasks[i]->operatorState);
    } catch (const std::exception& e) {
      return Status::corruption(what + ": operator state of subtask " + std::to_string(i) +
                                " in the checkpoint is malformed: " + e.what());
    }
  }
  std::vector<std::string> out(static_cast<std::size_t>(new_parallelism));
  if (old_parallelism == new_parallelism) {
    // Decoded above only to validate; every subtask keeps its bytes.
    for (std::size_t i = 0; i < old_subtasks.size(); ++i) {
      if (old_subtasks[i] != nullptr) out[i] = old_subtasks[i]->operatorState;
    }
    return out;
  }
  std::vector<std::vector<OperatorStateSnapshot>> redistributed;
  try {
    redistributed = detail::redistributeOperatorState(decoded, new_parallelism);
  } catch (const std::exception& e) {
    return Status::corruption(what + ": cannot redistribute operator state from parallelism " +
                              std::to_string(old_parallelism) + " to " +
                              std::to_string(new_parallelism) + ": " + e.what());
  }
  for (std::size_t i = 0; i < redistributed.size(); ++i) {
    if (!redistributed[i].empty()) out[i] = detail::encodeOperatorState(redistributed[i]);
  }
  return out;
}

}  // namespace

Result<StateAssignment> assignState(const thrift::CheckpointMetadata& metadata,
                                    const std::vector<AssignmentVertex>& vertices,
                                    bool allow_non_restored_state) {
  std::map<std::string, const AssignmentVertex*> by_uid;
  if (Status s = checkVertices(vertices, by_uid); !s.isOk()) return s;

  StateAssignment assignment;
  std::set<std::string> seen;
  for (const auto& op : metadata.operators) {
    auto it = by_uid.find(op.uid);
    const AssignmentVertex* vertex = it == by_uid.end() ? nullptr : it->second;
    const std::string what = describe(op.uid, vertex);
    if (!seen.insert(op.uid).second) {
      return Status::corruption(what + ": the checkpoint lists this operator twice");
    }
    if (vertex == nullptr) {
      if (!allow_non_restored_state) {
        return Status::invalidArgument(
            what + ": checkpoint " + std::to_string(metadata.checkpointId) +
            " has state for this operator but no vertex of the job has its uid (allow "
            "non-restored state to drop it)");
      }
      spdlog::info(
          "dropping the state of operator '{}' from checkpoint {} of job {}: no vertex "
          "of the job has this uid (non-restored state allowed)",
          op.uid, metadata.checkpointId, metadata.jobId);
      continue;
    }
    if (vertex->max_parallelism != op.maxParallelism) {
      return Status::invalidArgument(
          what + ": max parallelism " + std::to_string(vertex->max_parallelism) +
          " differs from the checkpoint's " + std::to_string(op.maxParallelism) +
          " (max parallelism is fixed for the job's life)");
    }
    if (op.parallelism < 1 || op.parallelism > op.maxParallelism) {
      return Status::corruption(what + ": checkpoint records parallelism " +
                                std::to_string(op.parallelism) + " outside [1, " +
                                std::to_string(op.maxParallelism) + "]");
    }
    auto old_subtasks = subtasksByIndex(op, what);
    if (!old_subtasks) return old_subtasks.status();

    std::vector<const thrift::KeyedStateHandle*> handles;
    for (const auto* st : *old_subtasks) {
      if (st == nullptr) continue;
      for (const auto& h : st->keyed) {
        if (h.keyGroupStart < 0 || h.keyGroupEnd < h.keyGroupStart ||
            h.keyGroupEnd >= op.maxParallelism) {
          return Status::corruption(what + ": keyed state handle of subtask " +
                                    std::to_string(st->subtask) + " has key-group range [" +
                                    std::to_string(h.keyGroupStart) + ", " +
                                    std::to_string(h.keyGroupEnd) + "], not within [0, " +
                                    std::to_string(op.maxParallelism - 1) + "]");
        }
        handles.push_back(&h);
      }
    }

    auto has_channels = [](const thrift::SubtaskState* st) {
      return st != nullptr && (!st->inputChannelState.empty() || !st->outputChannelState.empty());
    };
    const bool channel_state =
        std::any_of(old_subtasks->begin(), old_subtasks->end(), has_channels);
    if (channel_state && vertex->parallelism != op.parallelism) {
      return Status::invalidArgument("unaligned checkpoint state of '" + op.uid +
                                     "' cannot be redistributed; resume from a savepoint to "
                                     "change the parallelism");
    }

    auto operator_state = assignOperatorState(*old_subtasks, vertex->parallelism, what);
    if (!operator_state) return operator_state.status();

    for (int i = 0; i < vertex->parallelism; ++i) {
      const KeyGroupRange range =
          keyGroupRangeForSubtask(i, vertex->parallelism, vertex->max_parallelism);
      thrift::VertexSubtaskState state;
      state.__set_uid(op.uid);
      std::vector<thrift::KeyedStateHandle> keyed;
      for (const auto* h : handles) {
        if (h->keyGroupStart <= range.end && h->keyGroupEnd >= range.start) keyed.push_back(*h);
      }
      std::string& bytes = (*operator_state)[static_cast<std::size_t>(i)];
      const thrift::SubtaskState* old =
          channel_state ? (*old_subtasks)[static_cast<std::size_t>(i)] : nullptr;
      if (bytes.empty() && keyed.empty() && !has_channels(old)) continue;
      state.__set_operatorState(std::move(bytes));
      state.__set_keyed(std::move(keyed));
      if (old != nullptr && !old->inputChannelState.empty()) {
        state.__set_inputChannelState(old->inputChannelState);
      }
      if (old != nullptr && !old->outputChannelState.empty()) {
        state.__set_outputChannelState(old->outputChannelState);
      }
      assignment.emplace(std::make_pair(op.uid, i), std::move(state));
    }
  }
  return assignment;
}

}  // namespace weir::engine
