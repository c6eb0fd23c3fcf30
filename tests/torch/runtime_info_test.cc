#include "server/torch/runtime_info.h"

#include <dirent.h>

#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace bertserve::torchrt {
namespace {

// Forward passes run on the batcher's executor threads, not the thread that
// read the flags: the setting must reach threads started after it.
int IntraOpThreadsOnAnotherThread() {
  int seen = 0;
  std::thread([&seen] { seen = IntraOpThreads(); }).join();
  return seen;
}

TEST(IntraOpThreadsTest, SettingReachesEveryThread) {
  ASSERT_TRUE(SetIntraOpThreads(1).ok());
  EXPECT_EQ(IntraOpThreads(), 1);
  EXPECT_EQ(IntraOpThreadsOnAnotherThread(), 1);
  ASSERT_TRUE(SetIntraOpThreads(2).ok());
  EXPECT_EQ(IntraOpThreads(), 2);
  EXPECT_EQ(IntraOpThreadsOnAnotherThread(), 2);
}

TEST(IntraOpThreadsTest, ZeroIsRefusedAndChangesNothing) {
  ASSERT_TRUE(SetIntraOpThreads(2).ok());
  const absl::Status zero = SetIntraOpThreads(0);
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IntraOpThreads(), 2);
}

int ThreadsInThisProcess() {
  int threads = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++threads;
  }
  closedir(dir);
  return threads;
}

// A thread that ran a parallel region holds an OpenMP team until it exits;
// ReleaseThreadPool lets it go (and the next region starts a new one).
TEST(ReleaseThreadPoolTest, GivesBackTheTeamThisThreadStarted) {
  ASSERT_TRUE(SetIntraOpThreads(2).ok());
  int before = 0, with_team = 0, after = 0, again = 0;
  bool released = false;
  // Work a forward does: an element-wise operator and a matrix product
  // (OpenBLAS's own OpenMP region).
  auto region = [] {
    c10::InferenceMode guard;
    const at::Tensor x = torch::randn({512, 512});
    (void)torch::mm(x.exp(), x);
  };
  std::thread([&] {
    before = ThreadsInThisProcess();
    region();
    with_team = ThreadsInThisProcess();
    released = ReleaseThreadPool();
    after = ThreadsInThisProcess();
    region();  // still works, on a new team
    again = ThreadsInThisProcess();
    ReleaseThreadPool();
  }).join();
  if (with_team == before) GTEST_SKIP() << "this libtorch runs parallel_for without OpenMP";
  ASSERT_TRUE(released) << "no omp_pause_resource_all in this OpenMP runtime";
  EXPECT_GT(with_team, before);
  EXPECT_EQ(after, before);
  EXPECT_EQ(again, with_team);
}

TEST(RuntimeInfoTest, VersionsAreNamed) {
  EXPECT_FALSE(TorchVersion().empty());
  EXPECT_FALSE(CudaVersion().empty());
}

}  // namespace
}  // namespace bertserve::torchrt
