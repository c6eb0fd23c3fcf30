#ifndef BERTSERVE_SERVER_TORCH_RUNTIME_INFO_H_
#define BERTSERVE_SERVER_TORCH_RUNTIME_INFO_H_

#include <string>

namespace bertserve::torchrt {

// libtorch version this binary was built against ("1.13.1").
std::string TorchVersion();
// CUDA version of the libtorch build, or "none" for CPU-only builds.
std::string CudaVersion();

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_RUNTIME_INFO_H_
