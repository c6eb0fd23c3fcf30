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

// Gives back the OpenMP worker threads the calling thread started (libgomp
// keeps a team per thread that ran a parallel region: a forward, a weight
// conversion or copy). Call it on threads that do such work now and then
// (placements, warm-up, reads), never on a device's executor. Why: once a
// process holds more OpenMP threads than cores, libgomp has every team's
// workers sleep after ~100 spins instead of ~300,000, and each of a
// forward's many parallel regions then waits for its workers to wake; on 2
// cores that cost the executor a third of its throughput at one caller.
// Returns false where the OpenMP runtime has no omp_pause_resource_all
// (OpenMP 5.0) or libtorch does not use OpenMP; nothing changes then.
bool ReleaseThreadPool();

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_RUNTIME_INFO_H_
