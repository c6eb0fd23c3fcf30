#ifndef BERTSERVE_SERVER_CORE_DEVICE_H_
#define BERTSERVE_SERVER_CORE_DEVICE_H_

#include <cstdint>
#include <string>

namespace bertserve::core {

// Memory of one execution device, all in bytes.
struct DeviceMemory {
  int64_t total_bytes = 0;      // what the device reports (driver / simulated capacity)
  int64_t free_bytes = 0;       // what the device reports free, all processes counted
  int64_t allocated_bytes = 0;  // live tensor bytes in the framework allocator
  int64_t reserved_bytes = 0;   // allocator reservation (live + cached)
  int64_t peak_bytes = 0;       // highest allocated_bytes since ResetPeak
};

// Where models execute: a CUDA GPU, the simulated device of CPU-only builds
// (a capacity enforced on real CPU tensors), or the plain CPU (no budget).
// Implementations live in server/torch. Thread-safe.
class Device {
 public:
  virtual ~Device() = default;

  // "cuda:0", "sim:0", "cpu".
  virtual std::string name() const = 0;
  // False for the plain CPU: models there have no device tier to budget.
  virtual bool has_budget() const = 0;
  virtual DeviceMemory Memory() const = 0;
  virtual void ResetPeak() = 0;
  // Caps the framework allocator at `bytes` (CUDA: setMemoryFraction), so an
  // accounting mistake becomes a handled OOM, not harm to a neighbour process.
  virtual void CapAllocator(int64_t bytes) = 0;
  // Returns cached, unused allocator memory to the device (CUDA: emptyCache).
  virtual void ReleaseCachedMemory() = 0;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_DEVICE_H_
