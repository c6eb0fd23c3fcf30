#include "server/core/placement_queue.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
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
