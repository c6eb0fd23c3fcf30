#include "server/core/placement_queue.h"

#include <utility>

namespace bertserve::core {

absl::Status PlacementQueue::Job::Wait() const {
  done_.WaitForNotification();
  return status_;
}

absl::Status PlacementQueue::Job::WaitUntil(absl::Time deadline) const {
  if (!done_.WaitForNotificationWithDeadline(deadline)) {
    return absl::DeadlineExceededError("placement did not finish before the deadline");
  }
  return status_;
}

void PlacementQueue::Job::Finish(absl::Status status) {
  status_ = std::move(status);
  done_.Notify();
}

PlacementQueue::PlacementQueue() : worker_([this] { WorkerLoop(); }) {}

PlacementQueue::~PlacementQueue() {
  std::deque<Entry> cancelled;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cancelled.swap(queue_);
    for (const Entry& e : cancelled) active_.erase(e.key);
  }
  for (Entry& e : cancelled) {
    e.job->Finish(absl::CancelledError("server is shutting down"));
  }
  worker_.join();
}

void PlacementQueue::Enqueue(Entry entry) {
  if (!entry.urgent) {
    queue_.push_back(std::move(entry));
    return;
  }
  auto pos = queue_.begin();
  while (pos != queue_.end() && pos->urgent) ++pos;
  queue_.insert(pos, std::move(entry));
}

std::shared_ptr<const PlacementQueue::Job> PlacementQueue::Submit(
    const std::string& key, std::function<absl::Status()> work, bool urgent) {
  auto job = std::make_shared<Job>();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      job->Finish(absl::CancelledError("server is shutting down"));
      return job;
    }
    auto it = active_.find(key);
    if (it != active_.end()) {
      if (urgent) {
        // Promote the queued job (a running one is not in the queue).
        for (auto q = queue_.begin(); q != queue_.end(); ++q) {
          if (q->key == key && !q->urgent) {
            Entry promoted = std::move(*q);
            queue_.erase(q);
            promoted.urgent = true;
            Enqueue(std::move(promoted));
            break;
          }
        }
      }
      return it->second;
    }
    active_.emplace(key, job);
    Enqueue(Entry{key, std::move(work), job, urgent});
  }
  return job;
}

size_t PlacementQueue::depth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void PlacementQueue::WorkerLoop() {
  while (true) {
    Entry entry;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](PlacementQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
            return q->stopping_ || !q->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      entry = std::move(queue_.front());
      queue_.pop_front();
    }
    // The work runs outside the lock: it can take seconds and Submit must
    // stay responsive (a duplicate joins this running job).
    absl::Status status = entry.work();
    {
      absl::MutexLock lock(&mu_);
      active_.erase(entry.key);
    }
    entry.job->Finish(std::move(status));
  }
}

}  // namespace bertserve::core
