#include "server/core/placement_queue.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/core/deadline_timer.h"
#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

class PlacementQueueTest : public ::testing::TestWithParam<int> {};

TEST_P(PlacementQueueTest, JobsNeverOverlap) {
  const int submitters = GetParam();
  PlacementQueue queue;
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  std::atomic<int> ran{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < submitters; ++i) {
    threads.emplace_back([&, i] {
      auto job = queue.Submit("load/" + std::to_string(i), [&] {
        const int now = running.fetch_add(1) + 1;
        int seen = max_running.load();
        while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
        }
        // Give an overlapping job the chance to show itself.
        std::this_thread::yield();
        running.fetch_sub(1);
        ran.fetch_add(1);
        return absl::OkStatus();
      });
      EXPECT_TRUE(job->Wait().ok());
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ran.load(), submitters);
  EXPECT_EQ(max_running.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Submitters, PlacementQueueTest, ::testing::Values(1, 4, 10, 32));

TEST(PlacementQueueSharing, SameKeyJoinsRunningJob) {
  PlacementQueue queue;
  absl::Notification started, release;
  std::atomic<int> runs{0};
  auto first = queue.Submit("load/m", [&] {
    runs.fetch_add(1);
    started.Notify();
    release.WaitForNotification();
    return absl::InternalError("boom");
  });
  started.WaitForNotification();
  auto second = queue.Submit("load/m", [&] {
    runs.fetch_add(1);
    return absl::OkStatus();
  });
  EXPECT_EQ(first.get(), second.get());
  release.Notify();
  EXPECT_EQ(second->Wait().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(runs.load(), 1);
  // Once finished, the key is free again.
  auto third = queue.Submit("load/m", [&] {
    runs.fetch_add(1);
    return absl::OkStatus();
  });
  EXPECT_TRUE(third->Wait().ok());
  EXPECT_EQ(runs.load(), 2);
}

TEST(PlacementQueueSharing, QueuedJobsCancelledOnDestruction) {
  absl::Notification started, release;
  std::shared_ptr<const PlacementQueue::Job> blocked, queued;
  {
    PlacementQueue queue;
    blocked = queue.Submit("a", [&] {
      started.Notify();
      release.WaitForNotification();
      return absl::OkStatus();
    });
    started.WaitForNotification();
    queued = queue.Submit("b", [] { return absl::OkStatus(); });
    EXPECT_EQ(queue.depth(), 1u);
    std::thread releaser([&] {
      // Released only once the queued job has been cancelled, so the
      // destructor's order is what is tested.
      queued->Wait().IgnoreError();
      release.Notify();
    });
    releaser.detach();
  }
  EXPECT_TRUE(blocked->Wait().ok());
  EXPECT_EQ(queued->Wait().code(), absl::StatusCode::kCancelled);
}

TEST(PlacementQueueSharing, WaitUntilTimesOutWithoutCancellingTheJob) {
  PlacementQueue queue;
  absl::Notification release;
  auto job = queue.Submit("slow", [&] {
    release.WaitForNotification();
    return absl::OkStatus();
  });
  EXPECT_EQ(job->WaitUntil(absl::Now() - absl::Seconds(1)).code(),
            absl::StatusCode::kDeadlineExceeded);
  release.Notify();
  EXPECT_TRUE(job->Wait().ok());
}

}  // namespace
}  // namespace bertserve::core

namespace bertserve::core {
namespace {

TEST(PlacementQueueOrder, UrgentJobsGoFirstAndJoiningPromotes) {
  PlacementQueue queue;
  absl::Notification started, release;
  std::vector<std::string> order;  // written by the worker only
  auto blocker = queue.Submit("blocker", [&] {
    started.Notify();
    release.WaitForNotification();
    return absl::OkStatus();
  });
  started.WaitForNotification();
  auto record = [&](std::string name) {
    return [&order, name] {
      order.push_back(name);
      return absl::OkStatus();
    };
  };
  auto background1 = queue.Submit("b1", record("b1"));
  auto background2 = queue.Submit("b2", record("b2"));
  auto urgent = queue.Submit("u1", record("u1"), /*urgent=*/true);
  // A request now waits on b2: it jumps ahead of b1, behind u1.
  auto promoted = queue.Submit("b2", record("never runs twice"), /*urgent=*/true);
  EXPECT_EQ(promoted.get(), background2.get());
  release.Notify();
  for (auto& job : {blocker, background1, background2, urgent}) EXPECT_TRUE(job->Wait().ok());
  EXPECT_EQ(order, (std::vector<std::string>{"u1", "b2", "b1"}));
}

}  // namespace
}  // namespace bertserve::core

namespace bertserve::core {
namespace {

TEST(PlacementQueueJob, OnDoneRunsOnceFinishedOrAtOnce) {
  PlacementQueue queue;
  absl::Notification release;
  auto job = queue.Submit("k", [&] {
    release.WaitForNotification();
    return absl::AbortedError("x");
  });
  absl::Notification called;
  absl::Status seen;
  job->OnDone([&](absl::Status s) {
    seen = s;
    called.Notify();
  });
  EXPECT_FALSE(called.HasBeenNotified());  // the job cannot have finished
  release.Notify();
  called.WaitForNotification();
  EXPECT_TRUE(absl::IsAborted(seen));
  // Already finished: the callback runs on this thread, before OnDone returns.
  bool inline_call = false;
  job->OnDone([&](absl::Status s) { inline_call = absl::IsAborted(s); });
  EXPECT_TRUE(inline_call);
}

TEST(PlacementQueueJob, StopCancelsQueuedJobsAndLaterOnes) {
  PlacementQueue queue;
  absl::Notification running, release;
  auto first = queue.Submit("a", [&] {
    running.Notify();
    release.WaitForNotification();
    return absl::OkStatus();
  });
  running.WaitForNotification();
  auto queued = queue.Submit("b", [] { return absl::OkStatus(); });
  std::thread stopper([&] { queue.Stop(); });
  // Stop cancels the queued job before it waits for the running one, which
  // cannot finish before `release`.
  EXPECT_TRUE(absl::IsCancelled(queued->Wait()));
  EXPECT_FALSE(first->done());
  release.Notify();
  stopper.join();
  EXPECT_TRUE(first->Wait().ok());
  EXPECT_TRUE(absl::IsCancelled(queue.Submit("c", [] { return absl::OkStatus(); })->Wait()));
}

TEST(BlockingJobsTest, AStuckJobDelaysNoOther) {
  BlockingJobs jobs;
  absl::Notification stuck_started, release;
  auto stuck = jobs.Submit("stuck", [&] {
    stuck_started.Notify();
    release.WaitForNotification();
    return absl::OkStatus();
  });
  stuck_started.WaitForNotification();
  // Another key runs to completion while the first is stuck.
  EXPECT_TRUE(jobs.Submit("other", [] { return absl::OkStatus(); })->Wait().ok());
  // The same key joins the running job instead of starting a second one.
  std::atomic<int> runs{0};
  auto joined = jobs.Submit("stuck", [&] {
    ++runs;
    return absl::OkStatus();
  });
  EXPECT_EQ(joined.get(), stuck.get());
  EXPECT_EQ(jobs.Running("stuck").get(), stuck.get());
  EXPECT_EQ(jobs.running(), 1u);
  EXPECT_FALSE(jobs.WaitIdle(absl::Now() + absl::Milliseconds(10)));
  release.Notify();
  EXPECT_TRUE(jobs.WaitIdle(absl::InfiniteFuture()));
  EXPECT_EQ(runs.load(), 0);
  EXPECT_EQ(jobs.Running("stuck"), nullptr);
}

TEST(BlockingJobsTest, CallbacksMaySubmitTheSameKeyAgain) {
  BlockingJobs jobs;
  absl::Notification second_ran;
  jobs.Submit("k", [] { return absl::OkStatus(); })->OnDone([&](absl::Status) {
    jobs.Submit("k", [&] {
      second_ran.Notify();
      return absl::OkStatus();
    });
  });
  second_ran.WaitForNotification();
  EXPECT_TRUE(jobs.WaitIdle(absl::InfiniteFuture()));
}

TEST(DeadlineTimerTest, RunsInDeadlineOrderAndForgetsCancelled) {
  DeadlineTimer timer;
  absl::Mutex mu;
  std::vector<int> order;
  auto record = [&](int i) {
    absl::MutexLock lock(&mu);
    order.push_back(i);
  };
  // Hold the timer thread so that everything below is scheduled before any
  // of it runs: the order is then the deadlines', not the calls'.
  absl::Notification holding, release, last;
  timer.Schedule(absl::Now(), [&] {
    holding.Notify();
    release.WaitForNotification();
  });
  holding.WaitForNotification();
  const absl::Time base = absl::Now() - absl::Seconds(10);  // all due already
  timer.Schedule(base + absl::Seconds(3), [&] {
    record(3);
    last.Notify();
  });
  const DeadlineTimer::Id cancelled = timer.Schedule(base + absl::Seconds(2), [&] { record(99); });
  timer.Schedule(base + absl::Seconds(1), [&] { record(1); });
  timer.Schedule(base + absl::Seconds(2), [&] { record(2); });
  timer.Cancel(cancelled);
  timer.Cancel(cancelled);  // twice: a no-op
  EXPECT_EQ(timer.Schedule(absl::InfiniteFuture(), [] {}), 0u);
  release.Notify();
  last.WaitForNotification();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(timer.pending(), 0u);
}

TEST(DeadlineTimerTest, DestructionDropsWhatIsPending) {
  bool ran = false;
  {
    DeadlineTimer timer;
    timer.Schedule(absl::Now() + absl::Hours(1), [&] { ran = true; });
    EXPECT_EQ(timer.pending(), 1u);
  }
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace bertserve::core
