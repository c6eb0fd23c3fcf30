#ifndef BERTSERVE_SERVER_TORCH_RUNTIME_INFO_H_
#define BERTSERVE_SERVER_TORCH_RUNTIME_INFO_H_

#include <string>

#include "absl/status/status.h"

namespace bertserve::torchrt {

// libtorch version this binary was built against ("1.13.1").
std::string TorchVersion();
// CUDA version of the libtorch build, or "none" for CPU-only builds.
std::string CudaVersion();

// Threads one libtorch operator may use on the CPU (intra-op parallelism).
// Set it once at startup, before any forward pass; InvalidArgument unless
// `threads` > 0. libtorch's own default counts physical cores through
// cpuinfo, which some virtual machines report as 1.
absl::Status SetIntraOpThreads(int threads);
// What libtorch will use, read back from libtorch.
int IntraOpThreads();

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_RUNTIME_INFO_H_
