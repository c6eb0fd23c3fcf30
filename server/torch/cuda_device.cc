#include "server/torch/cuda_device.h"

#ifdef BERTSERVE_WITH_CUDA

#include <algorithm>
#include <cstddef>

#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "server/torch/torch_errors.h"

namespace bertserve::torchrt {
namespace {

namespace allocator = c10::cuda::CUDACachingAllocator;

// StatType::AGGREGATE, by index: the enum moved between 2.x releases
// (CUDACachingAllocator::StatType, later c10::CachingAllocator::StatType)
// while the arrays kept AGGREGATE first.
constexpr size_t kAggregateStat = 0;

class CudaScope final : public TorchDevice::ExecutionScope {
 public:
  explicit CudaScope(c10::Device device) : guard_(device) {}

 private:
  c10::cuda::CUDAGuard guard_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CudaDevice>> CudaDevice::Create(int index) {
  const int count = c10::cuda::device_count();
  const std::string name = absl::StrCat("cuda:", index);
  if (count == 0) {
    return absl::FailedPreconditionError(absl::StrCat("device ", name, ": no CUDA device is visible"));
  }
  if (index < 0 || index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", name, ": this machine has ", count, " CUDA device(s)"));
  }
  const c10::Device device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  // The caching allocator's per-device state exists only after CUDA's lazy
  // init; setMemoryFraction and getDeviceStats index it. One tensor forces it.
  try {
    at::Tensor probe = at::empty({1}, at::TensorOptions().device(device));
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat("device ", name, ": cannot start CUDA"),
                               absl::StatusCode::kFailedPrecondition);
  }
  return std::unique_ptr<CudaDevice>(new CudaDevice(device));
}

core::DeviceMemory CudaDevice::Memory() const {
  core::DeviceMemory m;
  {
    c10::cuda::CUDAGuard guard(device_);
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      m.total_bytes = static_cast<int64_t>(total_bytes);
      m.free_bytes = static_cast<int64_t>(free_bytes);
    } else {
      (void)cudaGetLastError();  // so the error does not surface in an unrelated check
    }
  }
  const auto stats = allocator::getDeviceStats(device_.index());
  m.allocated_bytes = stats.allocated_bytes[kAggregateStat].current;
  m.reserved_bytes = stats.reserved_bytes[kAggregateStat].current;
  m.peak_bytes = stats.allocated_bytes[kAggregateStat].peak;
  return m;
}

void CudaDevice::ResetPeak() { allocator::resetPeakStats(device_.index()); }

void CudaDevice::CapAllocator(int64_t bytes) {
  const int64_t total = Memory().total_bytes;
  if (total <= 0) return;
  const double fraction =
      std::clamp(static_cast<double>(bytes) / static_cast<double>(total), 0.0, 1.0);
  allocator::setMemoryFraction(fraction, device_.index());
}

void CudaDevice::ReleaseCachedMemory() { allocator::emptyCache(); }

at::Tensor CudaDevice::ToDevice(const at::Tensor& t) const {
  c10::cuda::CUDAGuard guard(device_);
  at::Tensor out =
      t.to(at::TensorOptions().device(device_), /*non_blocking=*/true, /*copy=*/true);
  c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
  return out;
}

at::Tensor CudaDevice::ToHost(const at::Tensor& t) const {
  // One copy straight into pinned memory (t.to(kCPU).pin_memory() makes two).
  at::Tensor host =
      at::empty(t.sizes(), at::TensorOptions().dtype(t.scalar_type()).pinned_memory(true));
  host.copy_(t);
  return host;
}

at::Tensor CudaDevice::AllocateHost(int64_t bytes) const {
  return at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
}

std::unique_ptr<TorchDevice::ExecutionScope> CudaDevice::Enter() const {
  return std::make_unique<CudaScope>(device_);
}

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_WITH_CUDA
