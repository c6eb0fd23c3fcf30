#ifndef BERTSERVE_SERVER_CORE_WORKER_POOL_H_
#define BERTSERVE_SERVER_CORE_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace bertserve::core {

// A fixed set of threads running submitted closures in FIFO order; gRPC
// callbacks hand work here so they never block on tokenization, forwards or
// placement. Thread-safe. The destructor runs every queued closure, then joins.
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(std::function<void()> work) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_WORKER_POOL_H_
