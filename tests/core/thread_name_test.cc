#include "server/core/thread_name.h"

#include <pthread.h>

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

std::string ThisThreadsName() {
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = ThisThreadsName();
  std::string inside;
  std::thread([&] {
    NameThisThread("exec-sim:0");
    inside = ThisThreadsName();
  }).join();
  EXPECT_EQ(inside, "exec-sim:0");
  EXPECT_EQ(ThisThreadsName(), before);
}

TEST(ThreadNameTest, LongNamesAreCutToWhatLinuxKeeps) {
  std::string inside;
  std::thread([&] {
    NameThisThread("exec-cuda:12345678901234");
    inside = ThisThreadsName();
  }).join();
  EXPECT_EQ(inside, "exec-cuda:12345");
}

// What scripts/bench.sh relies on: threads a named thread starts (an
// executor's OpenMP workers) begin with its name.
TEST(ThreadNameTest, ThreadsStartedFromANamedThreadInheritItsName) {
  std::string child;
  std::thread([&] {
    NameThisThread("exec-cpu");
    std::thread([&] { child = ThisThreadsName(); }).join();
  }).join();
  EXPECT_EQ(child, "exec-cpu");
}

}  // namespace
}  // namespace bertserve::core
