#include "server/core/usable_cores.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace bertserve::core {
namespace {

std::string ReadFirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// cgroup v1 keeps the quota and the period in two files; -1 means no quota.
std::string CpuMaxFromV1() {
  const std::string quota = ReadFirstLine("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const std::string period = ReadFirstLine("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  if (quota.empty() || period.empty()) return "";
  return (quota == "-1" ? std::string("max") : quota) + " " + period;
}

// cgroup v2: the tightest cpu.max from the process's own cgroup up to the
// mount point. In a container with its own cgroup namespace the walk starts
// and ends at /sys/fs/cgroup; without one, /proc/self/cgroup names the path.
int BoundByCgroupV2(int affinity) {
  std::string path;
  std::ifstream self("/proc/self/cgroup");
  for (std::string line; std::getline(self, line);) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  int cores = affinity;
  while (true) {
    cores = BoundByCpuMax(cores, ReadFirstLine(("/sys/fs/cgroup" + path + "/cpu.max").c_str()));
    if (path.empty() || path == "/") break;
    path = path.substr(0, path.rfind('/'));
  }
  return cores;
}

}  // namespace

int BoundByCpuMax(int affinity, absl::string_view cpu_max) {
  affinity = std::max(affinity, 1);
  const std::vector<absl::string_view> fields =
      absl::StrSplit(cpu_max, ' ', absl::SkipWhitespace());
  int64_t quota = 0;
  int64_t period = 0;
  if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &quota) ||
      !absl::SimpleAtoi(fields[1], &period) || quota <= 0 || period <= 0) {
    return affinity;  // "max", or nothing readable: no quota
  }
  const int64_t cores = (quota + period - 1) / period;
  return static_cast<int>(std::clamp<int64_t>(cores, 1, affinity));
}

int UsableCores() {
  int affinity = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) affinity = CPU_COUNT(&set);
  if (affinity <= 0) affinity = static_cast<int>(std::thread::hardware_concurrency());
  return BoundByCpuMax(BoundByCgroupV2(affinity), CpuMaxFromV1());
}

}  // namespace bertserve::core
