#ifndef BERTSERVE_SERVER_TORCH_TORCH_DEVICE_H_
#define BERTSERVE_SERVER_TORCH_TORCH_DEVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/statusor.h"
#include "server/core/device.h"

namespace bertserve::torchrt {

// A core::Device with what the libtorch runtime needs to place weights and
// run forwards on it. Three kinds, made by CreateTorchDevice:
//   "cuda:N"  a GPU (CUDA builds only), see cuda_device.h
//   "sim:0"   the CPU with a byte budget enforced on real tensors, see
//             simulated_device.h
//   "cpu"     the plain CPU: no budget, no tiers, see cpu_device.h
// Thread-safe. Devices outlive the models that use them.
class TorchDevice : public core::Device {
 public:
  // Work on the device happens while one of these is alive, on the thread
  // that made it (CUDA: the current device is set; simulated: allocations
  // count against the budget). Scopes nest. Destroy on the creating thread.
  class ExecutionScope {
   public:
    virtual ~ExecutionScope() = default;
  };

  // Where tensors of models placed on this device live when they run
  // (the simulated device executes on c10::kCPU).
  virtual c10::Device execution_device() const = 0;

  // A new tensor in device memory with the values of `t` (any device).
  // Always a copy, never an alias of `t`; complete when this returns.
  // Throws c10::OutOfMemoryError (or a libtorch error saying "out of
  // memory") when the device has no room.
  virtual at::Tensor ToDevice(const at::Tensor& t) const = 0;

  // A new tensor in host memory with the values of `t`: pinned on CUDA
  // devices, uncounted on the simulated one. Always a copy.
  virtual at::Tensor ToHost(const at::Tensor& t) const = 0;

  // An uninitialised block of `bytes` bytes (kByte, 1-D) in host memory of
  // the kind ToHost makes: pinned on CUDA devices, uncounted on the
  // simulated one. Offloaded weights live in one such block per model.
  virtual at::Tensor AllocateHost(int64_t bytes) const = 0;

  // True when AllocateHost makes pinned memory.
  virtual bool pins_host_memory() const { return false; }

  virtual std::unique_ptr<ExecutionScope> Enter() const = 0;
};

// Makes the device named by `spec`:
//   "cpu"                  the plain CPU
//   "sim", "sim:N"         simulated device N (default 0, at most 15),
//                          `simulated_capacity_bytes` of capacity (> 0);
//                          each N at most once per process, a second is
//                          FailedPrecondition
//   "cuda", "cuda:N"       GPU N (default 0); InvalidArgument past the
//                          device count; FailedPrecondition in builds
//                          without CUDA support
// Anything else is InvalidArgument.
// `simulated_foreign_file`, `simulated_fault_file`: see SimulatedDevice::Create.
absl::StatusOr<std::unique_ptr<TorchDevice>> CreateTorchDevice(
    const std::string& spec, int64_t simulated_capacity_bytes,
    const std::string& simulated_foreign_file = "", const std::string& simulated_fault_file = "");

// The devices of a --device list: specs as above separated by commas
// ("cuda:0,cuda:1", "sim:0,sim:1"), or "cuda:all" (every visible GPU). One
// kind per list (cpu alone; never cuda with sim), no device twice; errors
// name the spec at fault.
absl::StatusOr<std::vector<std::unique_ptr<TorchDevice>>> CreateTorchDevices(
    const std::string& list, int64_t simulated_capacity_bytes,
    const std::string& simulated_foreign_file = "", const std::string& simulated_fault_file = "");

// True in CUDA builds with at least one visible GPU; GPU tests skip otherwise.
bool CudaAvailable();

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_TORCH_DEVICE_H_
