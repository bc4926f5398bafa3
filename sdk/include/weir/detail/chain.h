// The plugin side of a running chain, and the JobProgram that creates chains.
#pragma once

#include <algorithm>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weir/detail/builder_state.h"
#include "weir/detail/keyed_operators.h"
#include "weir/detail/operator_state.h"
#include "weir/task_api.h"

namespace weir::detail {

// Runs `body`, converting every exception into a Status; nothing escapes the plugin boundary.
template <class Body>
Status boundary(const char* what, Body&& body) noexcept {
  try {
    body();
    return Status::ok();
  } catch (const WriterCancelled&) {
    return Status::cancelled();
  } catch (const OperatorFailure& e) {
    return Status::failed(e.what());
  } catch (const std::exception& e) {
    return Status::failed(std::string(what) + ": " + e.what());
  } catch (...) {
    return Status::failed(std::string(what) + ": unknown exception");
  }
}

// Writes a keyed operator's frozen heap key groups for the engine (off the task thread).
class HeapKeyGroupsWriter final : public KeyGroupsWriter {
 public:
  HeapKeyGroupsWriter(std::string op_name, std::unique_ptr<FrozenKeyGroups> frozen)
      : op_name_(std::move(op_name)), frozen_(std::move(frozen)) {}
  Status write(std::vector<std::string>& key_groups) noexcept override {
    return boundary("checkpoint", [&] {
      guarded(op_name_, [&] {
        const KeyGroupRange range = frozen_->range();
        key_groups.clear();
        key_groups.reserve(static_cast<std::size_t>(std::max(range.size(), 0)));
        for (int kg = range.start; kg <= range.end; ++kg) {
          key_groups.push_back(frozen_->writeKeyGroup(kg));
          frozen_->releaseKeyGroup(kg);
        }
      });
    });
  }

 private:
  std::string op_name_;
  std::unique_ptr<FrozenKeyGroups> frozen_;
};

class ChainRuntime final : public ChainInstance {
 public:
  Status open() noexcept override {
    // Tail first, so every operator's downstream is ready before it can emit.
    return boundary("open", [&] {
      for (std::size_t i = ops_.size(); i-- > 0;) {
        ops_[i]->open(contexts_[i]);
        opened_ = ops_.size() - i;
        restoreKeyGroups(i);
      }
      restored_key_groups_.clear();
      restore_ = ChainRestore{};
    });
  }

  Status restoreState(const ChainRestore& restore) noexcept override {
    if (opened_ != 0) return Status::internal("restoreState after open");
    return boundary("restoring state", [&] {
      restore_ = restore;  // kept until open() has applied its key groups
      restored_key_groups_.assign(ops_.size(), nullptr);
      for (const VertexRestore& v : restore_.vertices) {
        const std::size_t i = indexOf(v.vertex_id);
        if (!v.operator_state.empty()) {
          try {
            operator_states_[i]->restore(decodeOperatorState(v.operator_state));
          } catch (const std::exception& e) {
            throw std::runtime_error("operator '" + ops_[i]->name +
                                     "': cannot restore its operator state: " + e.what());
          }
        }
        if (!v.key_groups.empty()) {
          if (dynamic_cast<KeyGroupSnapshotter*>(ops_[i].get()) == nullptr) {
            throw std::runtime_error("operator '" + ops_[i]->name +
                                     "' has no keyed state, but the checkpoint has keyed state "
                                     "for it");
          }
          const KeyGroupRange range = keyGroupRange(i);
          if (v.key_group_start != range.start ||
              static_cast<int>(v.key_groups.size()) != range.size()) {
            throw std::runtime_error("operator '" + ops_[i]->name +
                                     "': restored key groups do not match the subtask's range");
          }
          restored_key_groups_[i] = &v;
        }
      }
    });
  }

  Status snapshotState(const CheckpointOptions& options, ChainSnapshot& out) noexcept override {
    return boundary("checkpoint", [&] {
      out.vertices.resize(ops_.size());
      for (std::size_t i = 0; i < ops_.size(); ++i) {
        OperatorInstance& op = *ops_[i];
        guarded(op.name, [&] { op.snapshotState(options); });
        VertexSnapshot& v = out.vertices[i];
        v.vertex_id = vertex_ids_[i];
        v.operator_state.clear();
        if (!operator_states_[i]->states().empty()) {
          v.operator_state = encodeOperatorState(operator_states_[i]->snapshot());
        }
        v.key_groups.clear();
        v.key_groups_writer.reset();
        auto* keyed = dynamic_cast<KeyGroupSnapshotter*>(&op);
        if (keyed == nullptr || contexts_[i].internals().state_backend != StateBackendKind::kHeap) {
          continue;
        }
        v.key_group_start = keyGroupRange(i).start;
        guarded(op.name, [&] {
          v.key_groups_writer = std::make_unique<HeapKeyGroupsWriter>(op.name,
                                                                      keyed->freezeKeyGroups());
        });
      }
    });
  }

  Status notifyCheckpointComplete(std::int64_t checkpoint_id) noexcept override {
    return boundary("checkpoint complete", [&] {
      for (auto& op : ops_)
        guarded(op->name, [&] { op->notifyCheckpointComplete(checkpoint_id); });
    });
  }

  Status notifyCheckpointAborted(std::int64_t checkpoint_id) noexcept override {
    return boundary("checkpoint aborted", [&] {
      for (auto& op : ops_)
        guarded(op->name, [&] { op->notifyCheckpointAborted(checkpoint_id); });
    });
  }

  Status pollSource(std::size_t max_records, SourceStatus& status,
                    std::size_t& emitted) noexcept override {
    emitted = 0;
    if (source_ == nullptr) return Status::internal("pollSource on a chain without a source");
    const std::uint64_t before = source_->counters.records_out.load(std::memory_order_relaxed);
    Status s = boundary("source", [&] { status = source_->poll(max_records); });
    emitted = static_cast<std::size_t>(
        source_->counters.records_out.load(std::memory_order_relaxed) - before);
    return s;
  }

  Status processInput(int channel, const std::uint8_t* data, std::size_t size,
                      std::size_t max_records, InputProgress& progress) noexcept override {
    progress = InputProgress{size, 0};
    if (reader_ == nullptr) return Status::internal("processInput on a source chain");
    std::string err;
    Status s = boundary(
        "input", [&] { err = reader_->readBatch(channel, data, size, max_records, progress); });
    if (s.isOk() && !err.empty()) return Status::corruption(err);
    return s;
  }

  Status partialInput(int channel, std::string& out) noexcept override {
    if (reader_ == nullptr) return Status::ok();
    return boundary("input", [&] { reader_->partialFrame(channel, out); });
  }

  Status processWatermark(std::int64_t watermark) noexcept override {
    return boundary("watermark", [&] {
      OperatorInstance& head = *ops_.front();
      guarded(head.name, [&] { head.processWatermark(watermark); });
    });
  }

  Status processWatermarkStatus(bool idle) noexcept override {
    return boundary("watermark status", [&] { ops_.front()->processWatermarkStatus(idle); });
  }

  Status onProcessingTime(std::int64_t now) noexcept override {
    return boundary("processing time", [&] {
      for (auto& op : ops_) {
        if (op->nextProcessingTime() <= now) guarded(op->name, [&] { op->onProcessingTime(now); });
      }
    });
  }

  std::int64_t nextProcessingTime() const noexcept override {
    std::int64_t next = kNoDeadline;
    for (const auto& op : ops_)
      next = std::min(next, op->nextProcessingTime());
    return next;
  }

  Status endInput() noexcept override {
    return boundary("end of input", [&] {
      for (auto& op : ops_)
        guarded(op->name, [&] { op->endInput(); });
    });
  }

  Status close() noexcept override {
    // Head first; every opened operator is closed even when an earlier close fails.
    Status first;
    const std::size_t begin = ops_.size() - opened_;
    for (std::size_t i = begin; i < ops_.size(); ++i) {
      Status s = boundary("close", [&] { ops_[i]->close(); });
      if (!s.isOk() && first.isOk()) first = std::move(s);
    }
    opened_ = 0;
    return first;
  }

  const VertexCounters* counters(int vertex_id) const noexcept override {
    for (std::size_t i = 0; i < vertex_ids_.size(); ++i) {
      if (vertex_ids_[i] == vertex_id) return &ops_[i]->counters;
    }
    return nullptr;
  }

  // The operator state of one vertex of this chain, or null for a vertex not in it.
  OperatorStateStore* operatorState(int vertex_id) noexcept {
    for (std::size_t i = 0; i < vertex_ids_.size(); ++i) {
      if (vertex_ids_[i] == vertex_id) return operator_states_[i].get();
    }
    return nullptr;
  }

 private:
  friend class Program;

  std::size_t indexOf(int vertex_id) const {
    for (std::size_t i = 0; i < vertex_ids_.size(); ++i) {
      if (vertex_ids_[i] == vertex_id) return i;
    }
    throw std::runtime_error("the checkpoint has state for vertex " + std::to_string(vertex_id) +
                             ", which is not part of this chain");
  }
  KeyGroupRange keyGroupRange(std::size_t i) const {
    const RuntimeContext& ctx = contexts_[i];
    return keyGroupRangeForSubtask(ctx.subtaskIndex(), ctx.parallelism(), ctx.maxParallelism());
  }
  // After operator i opened: its restored key groups, if any.
  void restoreKeyGroups(std::size_t i) {
    if (i >= restored_key_groups_.size() || restored_key_groups_[i] == nullptr) return;
    const VertexRestore& v = *restored_key_groups_[i];
    auto* keyed = dynamic_cast<KeyGroupSnapshotter*>(ops_[i].get());
    guarded(ops_[i]->name, [&] {
      for (std::size_t k = 0; k < v.key_groups.size(); ++k) {
        const std::string& bytes = v.key_groups[k];
        if (bytes.empty()) continue;
        keyed->restoreKeyGroup(
            v.key_group_start + static_cast<int>(k),
            std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                          bytes.size()));
      }
    });
  }

  // Declaration order is destruction order reversed: the reader feeds operators, which feed
  // writers; operators (user functions) hold references into their operator state.
  std::vector<std::unique_ptr<OperatorStateStore>> operator_states_;  // parallel to ops_
  std::vector<std::unique_ptr<BatchConsumerBase>> writers_;
  std::vector<std::unique_ptr<OperatorInstance>> ops_;
  std::unique_ptr<InputReaderBase> reader_;
  std::vector<int> vertex_ids_;
  std::vector<RuntimeContext> contexts_;
  SourceOperatorBase* source_ = nullptr;
  ChainRestore restore_;  // until open() applied its key groups
  std::vector<const VertexRestore*> restored_key_groups_;  // parallel to ops_; null: none
  std::size_t opened_ = 0;  // how many operators (counted from the tail) were opened
};

class Program final : public JobProgram {
 public:
  explicit Program(BuilderState state) : state_(std::move(state)), graph_(state_.graph()) {}

  const LogicalGraph& graph() const noexcept override { return graph_; }

  Status createChain(const ChainSpec& spec, TaskEnvironment& env,
                     std::unique_ptr<ChainInstance>& out) noexcept override {
    auto chain = std::make_unique<ChainRuntime>();
    Status s = checkSpec(spec);
    if (!s.isOk()) return s;
    s = boundary("creating the chain", [&] { build(spec, env, *chain); });
    if (!s.isOk()) return s;
    out = std::move(chain);
    return Status::ok();
  }

 private:
  bool inChain(const ChainSpec& spec, int vertex) const {
    return std::find(spec.vertex_ids.begin(), spec.vertex_ids.end(), vertex) !=
           spec.vertex_ids.end();
  }

  Status checkSpec(const ChainSpec& spec) const {
    const int n = static_cast<int>(state_.nodes.size());
    if (spec.vertex_ids.empty()) return Status::invalidArgument("chain has no vertices");
    if (spec.max_parallelism.size() != spec.vertex_ids.size()) {
      return Status::invalidArgument("chain spec: max_parallelism does not match vertex_ids");
    }
    for (int v : spec.vertex_ids) {
      if (v < 0 || v >= n) {
        return Status::invalidArgument("chain names vertex " + std::to_string(v) +
                                       ", which this job does not have");
      }
    }
    const VertexDef& head = state_.nodes[spec.vertex_ids[0]]->def;
    if ((head.kind == VertexKind::kSource) != (spec.num_input_channels == 0)) {
      return Status::invalidArgument("chain head '" + head.name +
                                     "': input channel count does not fit its kind");
    }
    for (std::size_t i = 1; i < spec.vertex_ids.size(); ++i) {
      int inputs = 0;
      for (const auto& e : state_.edges) {
        if (e.def.target != spec.vertex_ids[i]) continue;
        if (!inChain(spec, e.def.source)) {
          return Status::invalidArgument("chained vertex '" +
                                         state_.nodes[spec.vertex_ids[i]]->def.name +
                                         "' has an input from outside its chain");
        }
        ++inputs;
      }
      if (inputs != 1) return Status::invalidArgument("chained vertex must have exactly one input");
    }
    for (const auto& e : state_.edges) {
      if (!inChain(spec, e.def.source) || inChain(spec, e.def.target)) continue;
      const bool covered =
          std::any_of(spec.outputs.begin(), spec.outputs.end(),
                      [&](const NetworkOutputSpec& o) { return o.edge_id == e.def.id; });
      if (!covered) {
        return Status::invalidArgument("edge " + std::to_string(e.def.id) +
                                       " leaves the chain but has no network output");
      }
    }
    for (const auto& o : spec.outputs) {
      if (o.edge_id < 0 || o.edge_id >= static_cast<int>(state_.edges.size())) {
        return Status::invalidArgument("network output names unknown edge " +
                                       std::to_string(o.edge_id));
      }
      const EdgeNode& e = state_.edges[o.edge_id];
      if (!inChain(spec, e.def.source) || inChain(spec, e.def.target)) {
        return Status::invalidArgument("network output edge " + std::to_string(o.edge_id) +
                                       " does not leave this chain");
      }
      if (o.partitioner == Partitioner::kHash && !e.has_key) {
        return Status::invalidArgument("edge " + std::to_string(o.edge_id) +
                                       " is hash-partitioned but has no key selector");
      }
      if (o.num_channels < 1) return Status::invalidArgument("network output without channels");
    }
    return Status::ok();
  }

  void build(const ChainSpec& spec, TaskEnvironment& env, ChainRuntime& chain) const {
    chain.vertex_ids_ = spec.vertex_ids;
    for (std::size_t i = 0; i < spec.vertex_ids.size(); ++i) {
      const NodeBase& node = *state_.nodes[spec.vertex_ids[i]];
      auto op = node.instantiate();
      op->name = node.def.name;
      chain.contexts_.emplace_back(spec.job_name, node.def.name, spec.subtask_index,
                                   spec.parallelism, spec.max_parallelism[i], &env.args());
      RuntimeContext::Internals internals;
      internals.env = &env;
      internals.vertex_id = spec.vertex_ids[i];
      internals.auto_watermark_interval_ms = spec.auto_watermark_interval_ms;
      internals.state_backend = spec.state_backend;
      internals.timers_in_kv_store = spec.timers_in_kv_store;
      internals.checkpointing = spec.checkpointing;
      chain.contexts_.back().setInternals(internals);
      chain.operator_states_.push_back(std::make_unique<OperatorStateStore>());
      chain.contexts_.back().setOperatorStateStore(chain.operator_states_.back().get());
      chain.ops_.push_back(std::move(op));
    }
    auto opFor = [&](int vertex) -> OperatorInstance& {
      for (std::size_t i = 0; i < spec.vertex_ids.size(); ++i) {
        if (spec.vertex_ids[i] == vertex) return *chain.ops_[i];
      }
      throw std::logic_error("vertex not in chain");
    };
    for (const auto& e : state_.edges) {
      if (!inChain(spec, e.def.source)) continue;
      OperatorInstance& from = opFor(e.def.source);
      auto connect = [&](BatchConsumerBase* consumer) {
        if (e.def.side_output.empty()) {
          from.addOutput(consumer);
        } else {
          from.addSideOutput(e.make_side_output(consumer));
        }
      };
      if (inChain(spec, e.def.target)) {
        connect(opFor(e.def.target).inputPort());
        continue;
      }
      for (std::size_t i = 0; i < spec.outputs.size(); ++i) {
        if (spec.outputs[i].edge_id != e.def.id) continue;
        OutputGate& gate = env.outputGate(i);
        if (gate.numChannels() != spec.outputs[i].num_channels) {
          throw std::logic_error("output gate channel count differs from the chain spec");
        }
        chain.writers_.push_back(e.make_writer(gate, spec.outputs[i], spec.subtask_index));
        connect(chain.writers_.back().get());
      }
    }
    for (auto& op : chain.ops_)
      op->finishWiring();
    const NodeBase& head = *state_.nodes[spec.vertex_ids[0]];
    if (head.def.kind == VertexKind::kSource) {
      chain.source_ = static_cast<SourceOperatorBase*>(chain.ops_[0].get());
    } else {
      chain.reader_ = head.makeReader(spec.num_input_channels, *chain.ops_[0]);
    }
  }

  BuilderState state_;
  LogicalGraph graph_;
};

}  // namespace weir::detail
