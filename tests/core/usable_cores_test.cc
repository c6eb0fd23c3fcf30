#include "server/core/usable_cores.h"

#include <sched.h>

#include <gtest/gtest.h>

namespace bertserve::core {
namespace {

TEST(BoundByCpuMaxTest, NoQuotaKeepsTheAffinity) {
  EXPECT_EQ(BoundByCpuMax(8, "max 100000"), 8);
  EXPECT_EQ(BoundByCpuMax(8, ""), 8);
  EXPECT_EQ(BoundByCpuMax(8, "garbage"), 8);
  EXPECT_EQ(BoundByCpuMax(8, "-1 100000"), 8);
}

TEST(BoundByCpuMaxTest, QuotaRoundsUpAndNeverExceedsTheAffinity) {
  EXPECT_EQ(BoundByCpuMax(8, "200000 100000"), 2);
  EXPECT_EQ(BoundByCpuMax(8, "250000 100000"), 3);  // 2.5 CPUs: 3 threads
  EXPECT_EQ(BoundByCpuMax(8, "50000 100000"), 1);
  EXPECT_EQ(BoundByCpuMax(4, "1600000 100000"), 4);
  EXPECT_EQ(BoundByCpuMax(0, "max 100000"), 1);
}

TEST(UsableCoresTest, FollowsTheAffinityMask) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  const int before = UsableCores();
  EXPECT_GE(before, 1);
  EXPECT_LE(before, CPU_COUNT(&saved));

  // Pinned to its first allowed CPU, the process may keep one core busy.
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &saved)) {
      CPU_SET(cpu, &one);
      break;
    }
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  EXPECT_EQ(UsableCores(), 1);
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  EXPECT_EQ(UsableCores(), before);
}

}  // namespace
}  // namespace bertserve::core
