#ifndef BERTSERVE_SERVER_CORE_DEADLINE_TIMER_H_
#define BERTSERVE_SERVER_CORE_DEADLINE_TIMER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bertserve::core {

// Runs callbacks at their deadlines on one thread of its own, so that work
// waiting on something slow (a placement, a read from disk) can answer at
// its caller's deadline without a thread blocked per waiter. Callbacks must
// be quick (they run one after another). Thread-safe.
class DeadlineTimer {
 public:
  using Id = uint64_t;

  DeadlineTimer();
  // Drops the callbacks still scheduled (they never run) and joins the thread.
  ~DeadlineTimer();
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  // Runs `fn` at `when` (at once, on the timer thread, if it has passed).
  // InfiniteFuture schedules nothing and returns 0.
  Id Schedule(absl::Time when, std::function<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets a callback that has not run yet; a no-op for 0 or one that ran.
  void Cancel(Id id) ABSL_LOCKS_EXCLUDED(mu_);
  // Callbacks scheduled and not yet run or cancelled.
  size_t pending() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  // By deadline, then by id (ids grow, so equal deadlines run in order).
  std::map<std::pair<absl::Time, Id>, std::function<void()>> due_ ABSL_GUARDED_BY(mu_);
  std::map<Id, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_DEADLINE_TIMER_H_
