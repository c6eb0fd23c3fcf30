#include "server/torch/runtime_info.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#ifdef BERTSERVE_WITH_CUDA
#include <cuda.h>  // CUDA_VERSION
#endif

namespace bertserve::torchrt {

std::string TorchVersion() { return TORCH_VERSION; }

std::string CudaVersion() {
#ifdef BERTSERVE_WITH_CUDA
  return std::to_string(CUDA_VERSION / 1000) + "." + std::to_string(CUDA_VERSION % 1000 / 10);
#else
  return "none";
#endif
}

void SetIntraOpThreads(int threads) { at::set_num_threads(threads); }

int IntraOpThreads() { return at::get_num_threads(); }

}  // namespace bertserve::torchrt
