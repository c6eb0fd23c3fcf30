#include "server/torch/runtime_info.h"

#include <thread>

#include <gtest/gtest.h>

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

TEST(RuntimeInfoTest, VersionsAreNamed) {
  EXPECT_FALSE(TorchVersion().empty());
  EXPECT_FALSE(CudaVersion().empty());
}

}  // namespace
}  // namespace bertserve::torchrt
