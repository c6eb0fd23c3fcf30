#include "server/torch/runtime_info.h"

#include <dlfcn.h>

#include <exception>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "absl/strings/str_cat.h"

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

absl::Status SetIntraOpThreads(int threads) {
  if (threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat("intra-op threads must be at least 1, not ",
                                                   threads));
  }
  try {
    at::set_num_threads(threads);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("setting ", threads, " intra-op threads: ", e.what()));
  }
  return absl::OkStatus();
}

int IntraOpThreads() { return at::get_num_threads(); }

bool ReleaseThreadPool() {
  // Looked up at run time: bertserve does not link the OpenMP runtime
  // itself (libtorch does, and which one depends on its build).
  using PauseResourceAll = int (*)(int kind);
  static const auto pause =
      reinterpret_cast<PauseResourceAll>(dlsym(RTLD_DEFAULT, "omp_pause_resource_all"));
  constexpr int kOmpPauseSoft = 1;  // omp_pause_soft: threads go, settings stay
  return pause != nullptr && pause(kOmpPauseSoft) == 0;
}

}  // namespace bertserve::torchrt
