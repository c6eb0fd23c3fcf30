#include "server/core/usable_cores.h"

#include <sched.h>

#include <gtest/gtest.h>

#include "tests/test_util/fake_model.h"

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

// A cgroup v2 tree as a container without its own cgroup namespace sees it:
// the process's cgroup has no quota, its parent allows 2.5 CPUs.
TEST(BoundByCgroupQuotaTest, TightestQuotaFromTheProcessCgroupUpV2) {
  testing::TempRepository root;
  root.WriteFile("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  root.WriteFile("sys/fs/cgroup/cpu.max", "max 100000\n");
  root.WriteFile("sys/fs/cgroup/kubepods/cpu.max", "max 100000\n");
  root.WriteFile("sys/fs/cgroup/kubepods/pod1/cpu.max", "250000 100000\n");
  root.WriteFile("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  EXPECT_EQ(BoundByCgroupQuota(16, root.root()), 3);
  EXPECT_EQ(BoundByCgroupQuota(2, root.root()), 2);
}

// With its own namespace the path is "/" and the mount holds its own files.
TEST(BoundByCgroupQuotaTest, NamespacedContainerReadsTheMountPointV2) {
  testing::TempRepository root;
  root.WriteFile("proc/self/cgroup", "0::/\n");
  root.WriteFile("sys/fs/cgroup/cpu.max", "800000 100000\n");
  EXPECT_EQ(BoundByCgroupQuota(64, root.root()), 8);
}

TEST(BoundByCgroupQuotaTest, CpuControllerOfV1) {
  testing::TempRepository root;
  root.WriteFile("proc/self/cgroup",
                 "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n");
  root.WriteFile("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  root.WriteFile("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  root.WriteFile("sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "150000\n");
  root.WriteFile("sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(BoundByCgroupQuota(8, root.root()), 2);
}

TEST(BoundByCgroupQuotaTest, NoCgroupFilesMeansNoQuota) {
  testing::TempRepository root;
  EXPECT_EQ(BoundByCgroupQuota(6, root.root()), 6);
  root.WriteFile("proc/self/cgroup", "0::/user.slice\n");
  EXPECT_EQ(BoundByCgroupQuota(6, root.root()), 6);
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
