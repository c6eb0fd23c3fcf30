#ifndef BERTSERVE_SERVER_CORE_PLACEMENT_QUEUE_H_
#define BERTSERVE_SERVER_CORE_PLACEMENT_QUEUE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

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
    // Runs `callback` with the job's status once it has run: on the thread
    // that finishes it, or at once on this thread if it already has. The
    // callback must not block (it may run on the placement worker).
    void OnDone(std::function<void(absl::Status)> callback) const ABSL_LOCKS_EXCLUDED(mu_);

   private:
    friend class PlacementQueue;
    friend class BlockingJobs;
    void Finish(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
    absl::Status status_;  // written once before done_ is notified
    absl::Notification done_;
    mutable absl::Mutex mu_;
    mutable std::vector<std::function<void(absl::Status)>> callbacks_ ABSL_GUARDED_BY(mu_);
    bool finished_ ABSL_GUARDED_BY(mu_) = false;
  };

  // `after_each_job`, when given, runs on the worker after every job (before
  // the job's waiters wake), outside any lock.
  explicit PlacementQueue(std::function<void()> after_each_job = nullptr);
  ~PlacementQueue();  // Stop()
  // Finishes the running job, cancels the queued ones (their waiters and
  // callbacks get Cancelled) and joins the worker; later jobs are cancelled
  // at once. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
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
  const std::function<void()> after_each_job_;  // before worker_: it starts in the constructor
  std::thread worker_;
};

// Jobs that may block for an unbounded time in I/O (reading a model from a
// stalled network volume, say): each runs on a thread of its own (an idle one
// is reused, else a new one starts), so a stuck one holds only that thread
// and never delays the others or the placement worker. Like PlacementQueue, a job submitted under a key that is running
// shares that job. A thread stuck in a read cannot be interrupted: the
// destructor waits for every job, so a process that must exit regardless
// checks WaitIdle first and, if it times out, exits without destroying this.
// Thread-safe.
class BlockingJobs {
 public:
  // `after_each_job`, when given, runs on a job's thread after its work
  // (before its waiters wake).
  explicit BlockingJobs(std::function<void()> after_each_job = nullptr);
  ~BlockingJobs();  // waits for every running job
  BlockingJobs(const BlockingJobs&) = delete;
  BlockingJobs& operator=(const BlockingJobs&) = delete;

  // Starts `work` under `key` on a new thread, or joins the running job with
  // that key.
  std::shared_ptr<const PlacementQueue::Job> Submit(const std::string& key,
                                                    std::function<absl::Status()> work);
  // The running job with `key`, or null.
  std::shared_ptr<const PlacementQueue::Job> Running(const std::string& key) const;
  // Jobs whose work has not finished.
  size_t running() const;
  // True once no job runs (callbacks included); false if one still does at
  // `deadline`.
  bool WaitIdle(absl::Time deadline) const;

  struct State;  // shared with the job threads (placement_queue.cc)

 private:
  struct Task;  // placement_queue.cc
  static void WorkerLoop(std::shared_ptr<State> state, Task task);
  std::shared_ptr<State> state_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_PLACEMENT_QUEUE_H_
