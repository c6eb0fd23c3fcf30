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

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Calls `visit` with `path` and each of its parents, ending with "".
template <typename Visit>
void WalkUp(std::string path, Visit visit) {
  while (true) {
    visit(path);
    if (path.empty() || path == "/") return;
    const size_t slash = path.rfind('/');
    path = slash == std::string::npos ? "" : path.substr(0, slash);
  }
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

int BoundByCgroupQuota(int affinity, const std::string& root) {
  int cores = std::max(affinity, 1);
  // Each /proc/self/cgroup line is "ID:CONTROLLERS:PATH"; v2's is "0::PATH",
  // v1's cpu controller is listed as "cpu" or "cpu,cpuacct". In a container
  // with its own cgroup namespace the path is "/" and the mount point holds
  // the container's own files; without one the path leads there from the
  // host's root. Walking up covers both, and parents' quotas bound too.
  std::ifstream self(root + "/proc/self/cgroup");
  for (std::string line; std::getline(self, line);) {
    const std::vector<std::string> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3) continue;
    if (fields[1].empty()) {
      WalkUp(fields[2], [&](const std::string& dir) {
        cores = BoundByCpuMax(cores, ReadFirstLine(root + "/sys/fs/cgroup" + dir + "/cpu.max"));
      });
      continue;
    }
    const std::vector<absl::string_view> controllers = absl::StrSplit(fields[1], ',');
    if (std::find(controllers.begin(), controllers.end(), "cpu") == controllers.end()) continue;
    WalkUp(fields[2], [&](const std::string& dir) {
      const std::string base = root + "/sys/fs/cgroup/cpu" + dir;
      const std::string quota = ReadFirstLine(base + "/cpu.cfs_quota_us");
      const std::string period = ReadFirstLine(base + "/cpu.cfs_period_us");
      if (!quota.empty() && !period.empty()) cores = BoundByCpuMax(cores, quota + " " + period);
    });
  }
  return cores;
}

int UsableCores() {
  int affinity = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) affinity = CPU_COUNT(&set);
  if (affinity <= 0) affinity = static_cast<int>(std::thread::hardware_concurrency());
  return BoundByCgroupQuota(affinity, "");
}

}  // namespace bertserve::core
