#ifndef BERTSERVE_SERVER_CORE_PLACEMENT_QUEUE_H_
#define BERTSERVE_SERVER_CORE_PLACEMENT_QUEUE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace bertserve::core {

// Runs placement work (loads, unloads; later swap-ins and evictions) one job
// at a time on a single worker thread, so two loads can never race each other
// for memory. A job submitted under a key that is already queued or running
// shares that job instead of running twice. Urgent jobs (a request is waiting
// on them) run before the others, in submission order among themselves.
//
// Thread-safe. The destructor finishes the running job, cancels the queued
// ones (their waiters get Cancelled) and joins the worker.
class PlacementQueue {
 public:
  // The outcome of one job; shared by every submitter of the same key.
  class Job {
   public:
    // Blocks until the job has run (or was cancelled) and returns its status.
    absl::Status Wait() const;
    // Like Wait, but gives up at `deadline`; DeadlineExceeded then. The job
    // itself still runs.
    absl::Status WaitUntil(absl::Time deadline) const;
    bool done() const { return done_.HasBeenNotified(); }

   private:
    friend class PlacementQueue;
    void Finish(absl::Status status);
    absl::Status status_;  // written once before done_ is notified
    absl::Notification done_;
  };

  PlacementQueue();
  ~PlacementQueue();
  PlacementQueue(const PlacementQueue&) = delete;
  PlacementQueue& operator=(const PlacementQueue&) = delete;

  // Queues `work` under `key` ("place/bert"), or joins the queued or running
  // job with that key; an urgent submit promotes a queued job it joins.
  std::shared_ptr<const Job> Submit(const std::string& key, std::function<absl::Status()> work,
                                    bool urgent = false) ABSL_LOCKS_EXCLUDED(mu_);

  // Jobs queued and not yet started.
  size_t depth() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string key;
    std::function<absl::Status()> work;
    std::shared_ptr<Job> job;
    bool urgent = false;
  };

  // Inserts `entry` after the last urgent entry (urgent) or at the back.
  void Enqueue(Entry entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void WorkerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  // Queued or running jobs by key.
  absl::flat_hash_map<std::string, std::shared_ptr<Job>> active_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_PLACEMENT_QUEUE_H_
