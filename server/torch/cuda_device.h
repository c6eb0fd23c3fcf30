#ifndef BERTSERVE_SERVER_TORCH_CUDA_DEVICE_H_
#define BERTSERVE_SERVER_TORCH_CUDA_DEVICE_H_

// CUDA builds only (BERTSERVE_WITH_CUDA, set when the libtorch found has
// CUDA). Written against libtorch 2.x.
#ifdef BERTSERVE_WITH_CUDA

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/torch/torch_device.h"

namespace bertserve::torchrt {

// "cuda:N": one GPU. Memory() mixes two sources: total and free come from
// the driver (cudaMemGetInfo, so other processes count), allocated,
// reserved and peak from libtorch's caching allocator for this GPU.
// CapAllocator is setMemoryFraction(bytes / total); ReleaseCachedMemory is
// emptyCache. Host copies are pinned. The execution scope makes this GPU
// the thread's current device. Thread-safe.
class CudaDevice : public TorchDevice {
 public:
  // FailedPrecondition when no GPU is visible or CUDA cannot start;
  // InvalidArgument when `index` is not below the device count.
  static absl::StatusOr<std::unique_ptr<CudaDevice>> Create(int index);

  std::string name() const override { return device_.str(); }
  bool has_budget() const override { return true; }
  core::DeviceMemory Memory() const override;
  void ResetPeak() override;
  void CapAllocator(int64_t bytes) override;
  void ReleaseCachedMemory() override;

  c10::Device execution_device() const override { return device_; }
  // Copies (non_blocking) and waits for the current stream, so the copy is
  // complete and a later free of the source is safe.
  at::Tensor ToDevice(const at::Tensor& t) const override;
  // A copy into pinned host memory; synchronous.
  at::Tensor ToHost(const at::Tensor& t) const override;
  // Pinned.
  at::Tensor AllocateHost(int64_t bytes) const override;
  bool pins_host_memory() const override { return true; }
  std::unique_ptr<ExecutionScope> Enter() const override;

 private:
  explicit CudaDevice(c10::Device device) : device_(device) {}

  const c10::Device device_;
};

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_WITH_CUDA
#endif  // BERTSERVE_SERVER_TORCH_CUDA_DEVICE_H_
