#include "server/torch/torch_device.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/torch/cpu_device.h"
#include "server/torch/cuda_device.h"
#include "server/torch/simulated_device.h"

#ifdef BERTSERVE_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace bertserve::torchrt {
namespace {

// "" -> 0, ":3" -> 3; anything else is not an index.
bool ParseIndex(absl::string_view rest, int* index) {
  if (rest.empty()) {
    *index = 0;
    return true;
  }
  return absl::ConsumePrefix(&rest, ":") && !rest.empty() && absl::SimpleAtoi(rest, index) &&
         *index >= 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TorchDevice>> CreateTorchDevice(
    const std::string& spec, int64_t simulated_capacity_bytes,
    const std::string& simulated_foreign_file) {
  absl::string_view rest = spec;
  int index = 0;
  if (spec == "cpu") return std::make_unique<CpuDevice>();
  if (absl::ConsumePrefix(&rest, "sim")) {
    if (!ParseIndex(rest, &index) || index != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown device \"", spec, "\": the simulated device is sim or sim:0"));
    }
    absl::StatusOr<std::unique_ptr<SimulatedDevice>> sim =
        SimulatedDevice::Create(simulated_capacity_bytes, simulated_foreign_file);
    if (!sim.ok()) return sim.status();
    return std::unique_ptr<TorchDevice>(*std::move(sim));
  }
  if (absl::ConsumePrefix(&rest, "cuda")) {
    if (!ParseIndex(rest, &index)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown device \"", spec, "\": expected cuda or cuda:N"));
    }
#ifdef BERTSERVE_WITH_CUDA
    absl::StatusOr<std::unique_ptr<CudaDevice>> cuda = CudaDevice::Create(index);
    if (!cuda.ok()) return cuda.status();
    return std::unique_ptr<TorchDevice>(*std::move(cuda));
#else
    return absl::FailedPreconditionError(
        absl::StrCat("device \"", spec,
                     "\": this build has no CUDA support (its libtorch is CPU-only); "
                     "use cpu or sim, or build against a CUDA libtorch"));
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device \"", spec, "\": expected auto, cpu, sim or cuda:N"));
}

bool CudaAvailable() {
#ifdef BERTSERVE_WITH_CUDA
  try {
    return c10::cuda::device_count() > 0;
  } catch (...) {
    return false;
  }
#else
  return false;
#endif
}

}  // namespace bertserve::torchrt
