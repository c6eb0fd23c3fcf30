#ifndef BERTSERVE_SERVER_TORCH_CPU_DEVICE_H_
#define BERTSERVE_SERVER_TORCH_CPU_DEVICE_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "server/torch/torch_device.h"

namespace bertserve::torchrt {

// "cpu": the plain CPU, where models execute in host memory with no budget.
// A model here has no separate device tier: it is placed at load and its
// Move* calls do nothing, so ToDevice/ToHost are only used for forward
// inputs; they are plain copies (never aliases), keeping the TorchDevice
// contract. Memory() reports the host's MemTotal and MemAvailable from
// /proc/meminfo; the allocator fields are 0 (nothing tracks CPU tensors).
// Thread-safe (no state).
class CpuDevice : public TorchDevice {
 public:
  std::string name() const override { return "cpu"; }
  bool has_budget() const override { return false; }
  core::DeviceMemory Memory() const override;
  void ResetPeak() override {}
  void CapAllocator(int64_t bytes) override {}
  void ReleaseCachedMemory() override {}

  c10::Device execution_device() const override { return c10::Device(c10::kCPU); }
  at::Tensor ToDevice(const at::Tensor& t) const override;
  at::Tensor ToHost(const at::Tensor& t) const override;
  at::Tensor AllocateHost(int64_t bytes) const override;
  std::unique_ptr<ExecutionScope> Enter() const override;
};

// total_bytes and free_bytes from the text of /proc/meminfo (MemTotal and
// MemAvailable, in kB there); other fields 0. Missing lines read as 0.
core::DeviceMemory HostMemoryFromMeminfo(absl::string_view meminfo);

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_CPU_DEVICE_H_
