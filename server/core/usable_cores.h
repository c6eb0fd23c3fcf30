#ifndef BERTSERVE_SERVER_CORE_USABLE_CORES_H_
#define BERTSERVE_SERVER_CORE_USABLE_CORES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace bertserve::core {

// Cores this process may keep busy: the CPUs in the calling thread's affinity
// mask (call it from main at startup, before anything pins threads), bounded
// by the tightest cgroup CPU quota over the process's cgroup and its parents,
// rounded up (a container limited to "2500m" gets 3). At least 1.
// std::thread::hardware_concurrency() counts the node's cores instead, which
// overcommits a container on a large node. Thread-safe.
int UsableCores();

// The quota part of UsableCores, reading the files under `root` ("" on a
// live system): cgroup v2's cpu.max, or v1's cpu.cfs_quota_us and
// cpu.cfs_period_us, along the paths /proc/self/cgroup names. At least 1.
int BoundByCgroupQuota(int affinity, const std::string& root);

// `affinity` CPUs bounded by a cgroup v2 `cpu.max` text ("max 100000",
// "250000 100000"). Unreadable text leaves `affinity` as it is. At least 1.
int BoundByCpuMax(int affinity, absl::string_view cpu_max);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_USABLE_CORES_H_
