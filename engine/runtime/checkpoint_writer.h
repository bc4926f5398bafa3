// The asynchronous part of checkpoints: one thread per job and TaskManager that writes the state
// the tasks snapshotted (heap key groups to files, RocksDB checkpoints to shared storage) while the
// tasks go on processing records, then acknowledges or declines each subtask's part.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace weir::engine {

class AsyncCheckpointWriter {
 public:
  AsyncCheckpointWriter();
  // Runs the work still queued, then joins the thread.
  ~AsyncCheckpointWriter();
  AsyncCheckpointWriter(const AsyncCheckpointWriter&) = delete;
  AsyncCheckpointWriter& operator=(const AsyncCheckpointWriter&) = delete;

  // Queues `work`; it runs on the writer's thread, in submission order. `work` must not throw.
  void submit(std::function<void()> work);

 private:
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::thread thread_;
};

}  // namespace weir::engine
