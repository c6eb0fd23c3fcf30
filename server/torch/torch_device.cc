#include "server/torch/torch_device.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
    const std::string& simulated_foreign_file, const std::string& simulated_fault_file) {
  absl::string_view rest = spec;
  int index = 0;
  if (spec == "cpu") return std::make_unique<CpuDevice>();
  if (absl::ConsumePrefix(&rest, "sim")) {
    if (!ParseIndex(rest, &index) || index >= SimulatedDevice::kMaxDevices) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown device \"", spec, "\": simulated devices are sim:0 to sim:",
                       SimulatedDevice::kMaxDevices - 1));
    }
    absl::StatusOr<std::unique_ptr<SimulatedDevice>> sim = SimulatedDevice::Create(
        index, simulated_capacity_bytes, simulated_foreign_file, simulated_fault_file);
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

absl::StatusOr<std::vector<std::unique_ptr<TorchDevice>>> CreateTorchDevices(
    const std::string& list, int64_t simulated_capacity_bytes,
    const std::string& simulated_foreign_file, const std::string& simulated_fault_file) {
  std::vector<std::string> specs;
  if (list == "cuda:all") {
    int count = 0;
#ifdef BERTSERVE_WITH_CUDA
    try {
      count = c10::cuda::device_count();
    } catch (...) {
      count = 0;
    }
#endif
    if (count == 0) {
      return absl::FailedPreconditionError(
          "cuda:all: no CUDA device is visible (or this build has no CUDA support)");
    }
    for (int i = 0; i < count; ++i) specs.push_back(absl::StrCat("cuda:", i));
  } else {
    for (absl::string_view part : absl::StrSplit(list, ',')) {
      specs.emplace_back(absl::StripAsciiWhitespace(part));
    }
  }
  std::vector<std::unique_ptr<TorchDevice>> devices;
  for (const std::string& spec : specs) {
    absl::StatusOr<std::unique_ptr<TorchDevice>> device = CreateTorchDevice(
        spec, simulated_capacity_bytes, simulated_foreign_file, simulated_fault_file);
    if (!device.ok()) return device.status();
    for (const auto& earlier : devices) {
      if (earlier->name() == (*device)->name()) {
        return absl::InvalidArgumentError(
            absl::StrCat(spec, " is listed twice (", earlier->name(), ")"));
      }
      if (earlier->has_budget() != (*device)->has_budget() ||
          absl::StartsWith(earlier->name(), "cuda") != absl::StartsWith((*device)->name(), "cuda")) {
        return absl::InvalidArgumentError(absl::StrCat(
            "devices of one server are of one kind: ", earlier->name(), " and ",
            (*device)->name(), " are not (cpu stands alone)"));
      }
    }
    devices.push_back(*std::move(device));
  }
  return devices;
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
