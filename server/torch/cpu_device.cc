#include "server/torch/cpu_device.h"

#include <fstream>
#include <sstream>

#include <ATen/ATen.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bertserve::torchrt {
namespace {

class NoScope final : public TorchDevice::ExecutionScope {};

at::Tensor CopyToCpu(const at::Tensor& t) {
  return t.to(at::TensorOptions().device(c10::kCPU), /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

core::DeviceMemory HostMemoryFromMeminfo(absl::string_view meminfo) {
  core::DeviceMemory m;
  for (absl::string_view line : absl::StrSplit(meminfo, '\n')) {
    // "MemAvailable:   12345678 kB"
    int64_t* field = nullptr;
    if (absl::ConsumePrefix(&line, "MemTotal:")) field = &m.total_bytes;
    if (absl::ConsumePrefix(&line, "MemAvailable:")) field = &m.free_bytes;
    if (field == nullptr) continue;
    line = absl::StripAsciiWhitespace(line);
    const bool in_kb = absl::ConsumeSuffix(&line, "kB");
    int64_t value = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &value)) {
      *field = in_kb ? value * 1024 : value;
    }
  }
  return m;
}

core::DeviceMemory CpuDevice::Memory() const {
  std::ifstream in("/proc/meminfo");
  std::ostringstream text;
  text << in.rdbuf();
  return HostMemoryFromMeminfo(text.str());
}

at::Tensor CpuDevice::ToDevice(const at::Tensor& t) const { return CopyToCpu(t); }

at::Tensor CpuDevice::ToHost(const at::Tensor& t) const { return CopyToCpu(t); }

at::Tensor CpuDevice::AllocateHost(int64_t bytes) const {
  return at::empty({bytes}, at::TensorOptions().dtype(at::kByte));
}

std::unique_ptr<TorchDevice::ExecutionScope> CpuDevice::Enter() const {
  return std::make_unique<NoScope>();
}

}  // namespace bertserve::torchrt
