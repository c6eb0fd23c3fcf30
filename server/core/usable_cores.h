#ifndef BERTSERVE_SERVER_CORE_USABLE_CORES_H_
#define BERTSERVE_SERVER_CORE_USABLE_CORES_H_

#include "absl/strings/string_view.h"

namespace bertserve::core {

// Cores this process may keep busy: the CPUs in its affinity mask, bounded by
// its cgroup CPU quota rounded up (a container limited to "2500m" gets 3).
// At least 1. std::thread::hardware_concurrency() counts the node's cores
// instead, which overcommits a container on a large node. Thread-safe.
int UsableCores();

// The quota part of UsableCores: `affinity` CPUs bounded by a cgroup v2
// `cpu.max` text ("max 100000", "250000 100000"). Unreadable text leaves
// `affinity` as it is. At least 1.
int BoundByCpuMax(int affinity, absl::string_view cpu_max);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_USABLE_CORES_H_
