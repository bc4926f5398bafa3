// Contexts handed to user functions.
#pragma once

#include <string>

#include "weir/job_args.h"

namespace weir {

// What an operator instance knows about where it runs. Passed to `open` of any user function that
// declares `void open(const weir::RuntimeContext&)`; valid until `close` returns.
class RuntimeContext {
 public:
  RuntimeContext() = default;
  RuntimeContext(std::string job_name, std::string task_name, int subtask_index, int parallelism,
                 int max_parallelism, const JobArgs* args)
      : job_name_(std::move(job_name)),
        task_name_(std::move(task_name)),
        subtask_index_(subtask_index),
        parallelism_(parallelism),
        max_parallelism_(max_parallelism),
        args_(args) {}

  const std::string& jobName() const { return job_name_; }
  const std::string& taskName() const { return task_name_; }
  int subtaskIndex() const { return subtask_index_; }
  int parallelism() const { return parallelism_; }
  int maxParallelism() const { return max_parallelism_; }
  const JobArgs& args() const {
    static const JobArgs kEmpty;
    return args_ ? *args_ : kEmpty;
  }

 private:
  std::string job_name_;
  std::string task_name_;
  int subtask_index_ = 0;
  int parallelism_ = 1;
  int max_parallelism_ = 1;
  const JobArgs* args_ = nullptr;
};

// Per-record context of a keyed process function. Valid only during the processElement call it is
// passed to.
template <class K>
class KeyedContext {
 public:
  const K& currentKey() const { return *key_; }
  int currentKeyGroup() const { return key_group_; }

  // Engine-internal: set by the operator before each call.
  void setCurrent(const K* key, int key_group) {
    key_ = key;
    key_group_ = key_group;
  }

 private:
  const K* key_ = nullptr;
  int key_group_ = 0;
};

}  // namespace weir
