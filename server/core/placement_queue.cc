#include "server/core/placement_queue.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "server/core/thread_name.h"

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
  std::vector<std::function<void(absl::Status)>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
    finished_ = true;
    callbacks.swap(callbacks_);
  }
  done_.Notify();
  for (auto& callback : callbacks) callback(status_);
}

void PlacementQueue::Job::OnDone(std::function<void(absl::Status)> callback) const {
  {
    absl::MutexLock lock(&mu_);
    if (!finished_) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback(status_);
}

PlacementQueue::PlacementQueue(std::function<void()> after_each_job)
    : after_each_job_(std::move(after_each_job)),
      worker_([this] {
        NameThisThread("placement");
        WorkerLoop();
      }) {}

PlacementQueue::~PlacementQueue() { Stop(); }

void PlacementQueue::Stop() {
  std::deque<Entry> cancelled;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
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
    if (after_each_job_) after_each_job_();
    {
      absl::MutexLock lock(&mu_);
      active_.erase(entry.key);
    }
    entry.job->Finish(std::move(status));
  }
}

struct BlockingJobs::Task {
  std::string key;
  std::function<absl::Status()> work;
  std::shared_ptr<PlacementQueue::Job> job;
};

struct BlockingJobs::State {
  // A thread waiting for its next task; `task` is written and read with
  // `mu` held.
  struct Idle {
    std::optional<Task> task;
  };
  mutable absl::Mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<PlacementQueue::Job>> running
      ABSL_GUARDED_BY(mu);
  // Most recently idle last: a new task goes to the thread that finished
  // last, so jobs that come one after another run on one thread.
  std::vector<Idle*> idle ABSL_GUARDED_BY(mu);
  // Jobs submitted and not yet done with their callbacks (a job leaves
  // `running` before its callbacks run, so that they may submit the same key
  // again).
  int busy ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  // Set once, before any thread starts. It runs before `busy` drops, so the
  // destructor's wait covers it.
  std::function<void()> after_each_job;
};

namespace {

// How long a thread with nothing to do waits for the next job before it
// exits. Reusing one thread for jobs that come one after another keeps model
// reads in one malloc arena, as they were when the placement worker read
// them: a new thread per read spread model copies over arenas that glibc
// never hands back (measured: RSS grew 200 MB over 50 load/unload cycles of
// an 8 MB model, tests/integration/test_memory.py).
constexpr absl::Duration kIdleThreadLinger = absl::Seconds(60);

}  // namespace

BlockingJobs::BlockingJobs(std::function<void()> after_each_job)
    : state_(std::make_shared<State>()) {
  state_->after_each_job = std::move(after_each_job);
}

BlockingJobs::~BlockingJobs() {
  WaitIdle(absl::InfiniteFuture());
  absl::MutexLock lock(&state_->mu);
  state_->stopping = true;  // idle threads exit (they own the state)
}

std::shared_ptr<const PlacementQueue::Job> BlockingJobs::Submit(
    const std::string& key, std::function<absl::Status()> work) {
  auto job = std::make_shared<PlacementQueue::Job>();
  Task task{key, std::move(work), job};
  {
    absl::MutexLock lock(&state_->mu);
    auto it = state_->running.find(key);
    if (it != state_->running.end()) return it->second;
    state_->running.emplace(key, job);
    ++state_->busy;
    // The most recently idle thread takes it; with none idle (all busy,
    // perhaps stuck in a read), a new thread does: a stuck job never delays
    // another.
    if (!state_->idle.empty()) {
      state_->idle.back()->task = std::move(task);
      state_->idle.pop_back();
      return job;
    }
  }
  // Detached: the thread owns what it touches (the state, its jobs), so a
  // stuck one outliving this object (see the class comment) harms nothing.
  std::thread(WorkerLoop, state_, std::move(task)).detach();
  return job;
}

void BlockingJobs::WorkerLoop(std::shared_ptr<State> state, Task task) {
  NameThisThread("model-read");
  while (true) {
    absl::Status status = task.work();
    if (state->after_each_job) state->after_each_job();
    State::Idle idle;
    struct Wait {
      State* state;
      State::Idle* idle;
    } wait{state.get(), &idle};
    {
      absl::MutexLock lock(&state->mu);
      state->running.erase(task.key);
      // Idle from now on, before the callbacks run: a job they (or anyone)
      // submit next comes to this thread and starts once they return.
      state->idle.push_back(&idle);
    }
    task.job->Finish(std::move(status));
    task = Task{};  // drop the work's captures before waiting
    absl::MutexLock lock(&state->mu);
    --state->busy;
    state->mu.AwaitWithTimeout(
        absl::Condition(
            +[](Wait* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->state->mu) {
              return w->state->stopping || w->idle->task.has_value();
            },
            &wait),
        kIdleThreadLinger);
    if (!idle.task.has_value()) {
      // Stopping, or idle too long: leave the idle list and exit.
      auto self = std::find(state->idle.begin(), state->idle.end(), &idle);
      if (self != state->idle.end()) state->idle.erase(self);
      return;
    }
    task = *std::move(idle.task);
  }
}

std::shared_ptr<const PlacementQueue::Job> BlockingJobs::Running(const std::string& key) const {
  absl::MutexLock lock(&state_->mu);
  auto it = state_->running.find(key);
  return it == state_->running.end() ? nullptr : it->second;
}

size_t BlockingJobs::running() const {
  absl::MutexLock lock(&state_->mu);
  return state_->running.size();
}

bool BlockingJobs::WaitIdle(absl::Time deadline) const {
  absl::MutexLock lock(&state_->mu);
  return state_->mu.AwaitWithDeadline(
      absl::Condition(
          +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) { return s->busy == 0; },
          state_.get()),
      deadline);
}

}  // namespace bertserve::core
