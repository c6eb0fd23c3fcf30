#ifndef BERTSERVE_SERVER_CORE_ONCE_CALLBACK_H_
#define BERTSERVE_SERVER_CORE_ONCE_CALLBACK_H_

#include <functional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace bertserve::core {

// A callback that runs at most once, whichever of several racing outcomes
// (the work's answer, a deadline, a cancellation) comes first. Share it with
// std::shared_ptr. Thread-safe.
template <typename T>
class OnceCallback {
 public:
  explicit OnceCallback(std::function<void(T)> fn) : fn_(std::move(fn)) {}

  // Runs the callback with `value` (on this thread, outside the lock) unless
  // it already ran; true if it ran now.
  bool Run(T value) ABSL_LOCKS_EXCLUDED(mu_) {
    std::function<void(T)> fn;
    {
      absl::MutexLock lock(&mu_);
      if (!fn_) return false;
      fn.swap(fn_);
    }
    fn(std::move(value));
    return true;
  }

  bool done() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return !fn_;
  }

 private:
  mutable absl::Mutex mu_;
  std::function<void(T)> fn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_ONCE_CALLBACK_H_
