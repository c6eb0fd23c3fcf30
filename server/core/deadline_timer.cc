#include "server/core/deadline_timer.h"

#include "absl/time/clock.h"
#include "server/core/thread_name.h"

namespace bertserve::core {

DeadlineTimer::DeadlineTimer()
    : thread_([this] {
        NameThisThread("deadlines");
        Loop();
      }) {}

DeadlineTimer::~DeadlineTimer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.Signal();
  }
  thread_.join();
}

DeadlineTimer::Id DeadlineTimer::Schedule(absl::Time when, std::function<void()> fn) {
  if (when == absl::InfiniteFuture()) return 0;
  absl::MutexLock lock(&mu_);
  const Id id = next_id_++;
  due_.emplace(std::make_pair(when, id), std::move(fn));
  when_.emplace(id, when);
  changed_.Signal();
  return id;
}

void DeadlineTimer::Cancel(Id id) {
  if (id == 0) return;
  std::function<void()> dropped;  // destroyed outside the lock
  absl::MutexLock lock(&mu_);
  auto it = when_.find(id);
  if (it == when_.end()) return;
  auto entry = due_.find(std::make_pair(it->second, id));
  dropped = std::move(entry->second);
  due_.erase(entry);
  when_.erase(it);
}

size_t DeadlineTimer::pending() const {
  absl::MutexLock lock(&mu_);
  return due_.size();
}

void DeadlineTimer::Loop() {
  mu_.Lock();
  while (!stopping_) {
    if (due_.empty()) {
      changed_.Wait(&mu_);
      continue;
    }
    const absl::Time next = due_.begin()->first.first;
    if (absl::Now() < next) {
      changed_.WaitWithDeadline(&mu_, next);
      continue;
    }
    std::function<void()> fn = std::move(due_.begin()->second);
    when_.erase(due_.begin()->first.second);
    due_.erase(due_.begin());
    // Outside the lock: the callback may schedule or cancel.
    mu_.Unlock();
    fn();
    fn = nullptr;
    mu_.Lock();
  }
  mu_.Unlock();
}

}  // namespace bertserve::core
