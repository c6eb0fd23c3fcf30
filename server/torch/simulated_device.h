#ifndef BERTSERVE_SERVER_TORCH_SIMULATED_DEVICE_H_
#define BERTSERVE_SERVER_TORCH_SIMULATED_DEVICE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/torch/torch_device.h"

namespace bertserve::torchrt {

// "sim:N": a device with a fixed capacity, made of ordinary CPU memory, for
// CPU-only builds. Budgets, eviction, OOM recovery and several devices then
// run for real: weights are real tensors and a forward that needs more than
// the room left fails with a real c10::OutOfMemoryError from inside libtorch.
//
// How: the first Create() installs a budgeted allocator as c10's CPU
// allocator, wrapping the one it replaces. Only allocations made on a thread
// inside a device scope (Enter(), and ToDevice, which enters one) count,
// against the device of that scope; they fail with c10::OutOfMemoryError
// ("out of memory", with the bytes asked, used and the limit) when the
// counted bytes would pass its limit. Everything else (host copies,
// tokenizer buffers, other threads, intra-op worker threads of a forward) is
// allocated as before and never counted. A counted block is tagged with its
// device, so freeing it later on any thread, in scope or not, gives its
// bytes back to that device.
//
// The CPU allocator is global and counted blocks may outlive their device,
// so each index is made at most once per process: Create() refuses a second
// sim:N with FailedPrecondition, even after the first is destroyed. The
// allocator stays installed for the life of the process.
//
// Memory(): total = capacity; free = capacity - allocated - foreign; allocated =
// counted live bytes; reserved = allocated (no cache); peak since ResetPeak.
// Thread-safe (atomics).
class SimulatedDevice : public TorchDevice {
 public:
  static constexpr int kMaxDevices = 16;
  class State;  // one device's accounting (simulated_device.cc)

  // sim:`index` (0..kMaxDevices-1) with `capacity_bytes` > 0, else
  // InvalidArgument. `foreign_file`, if not empty, simulates other processes
  // on the device: it holds the number of bytes they use (re-read every few
  // milliseconds; missing means 0), which lowers free_bytes and the room
  // allocations have, as on a shared GPU. `fault_file`, if not empty, is
  // the fault knob: once it holds this device's name ("sim:1"; several
  // names may be listed, separated by white space) the device has failed
  // for good, like a GPU after an illegal memory access: every counted
  // allocation on it (a forward, a copy to it) throws an error that says
  // "illegal memory access", which torch_errors classifies as sticky.
  static absl::StatusOr<std::unique_ptr<SimulatedDevice>> Create(
      int index, int64_t capacity_bytes, const std::string& foreign_file,
      const std::string& fault_file);
  // sim:0, without a fault knob.
  static absl::StatusOr<std::unique_ptr<SimulatedDevice>> Create(
      int64_t capacity_bytes, const std::string& foreign_file = "");

  SimulatedDevice(const SimulatedDevice&) = delete;
  SimulatedDevice& operator=(const SimulatedDevice&) = delete;
  ~SimulatedDevice() override = default;

  std::string name() const override;
  bool has_budget() const override { return true; }
  core::DeviceMemory Memory() const override;
  void ResetPeak() override;
  // Sets the limit counted allocations fail at to `bytes` clamped to
  // [0, capacity], like setMemoryFraction on CUDA. Beyond the capacity it
  // does nothing more than restore the capacity as the limit: the device
  // never grows. Memory() keeps reporting the capacity as total.
  void CapAllocator(int64_t bytes) override;
  // No cache to release: freed bytes go back at once.
  void ReleaseCachedMemory() override {}

  c10::Device execution_device() const override { return c10::Device(c10::kCPU); }
  // A counted clone.
  at::Tensor ToDevice(const at::Tensor& t) const override;
  // An uncounted clone, also when called inside a device scope.
  at::Tensor ToHost(const at::Tensor& t) const override;
  // Uncounted, also inside a device scope.
  at::Tensor AllocateHost(int64_t bytes) const override;
  std::unique_ptr<ExecutionScope> Enter() const override;

  // The limit in force, in bytes (capacity, or a lower cap).
  int64_t limit_bytes() const;
  // True once the fault file has named it.
  bool failed() const;

 private:
  explicit SimulatedDevice(State* state) : state_(state) {}

  State* const state_;  // never freed (see State)
};

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_SIMULATED_DEVICE_H_
