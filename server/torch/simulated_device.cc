#include "server/torch/simulated_device.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <limits>
#include <map>
#include <new>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace bertserve::torchrt {
namespace {

// Every block starts with this header; the caller gets the bytes after it.
// The header is what lets a block freed anywhere, long after its scope
// ended, give back exactly the bytes it counted: DataPtr deleters are bare
// function pointers with one void* of context, and raw_allocate() demands
// context == data pointer, so there is no room to carry the size elsewhere.
// 64 bytes keep the data as aligned as c10's CPU allocator makes it.
constexpr size_t kHeaderBytes = 64;
constexpr uint64_t kHeaderMagic = 0x6273696d626c6f6bULL;  // "bsimblok"

// A number of bytes in `path` (0 without one, or when it is missing or not
// a number), read again at most every 5 ms; `cache` and `due_ns` hold the
// last reading.
int64_t ReadBytesFile(const std::string& path, std::atomic<int64_t>& cache,
                      std::atomic<int64_t>& due_ns) {
  if (path.empty()) return 0;
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t due = due_ns.load();
  if (now >= due && due_ns.compare_exchange_strong(due, now + 5'000'000)) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int64_t bytes = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &bytes) || bytes < 0) bytes = 0;
    cache.store(bytes);
  }
  return cache.load();
}

}  // namespace

// One simulated device's accounting. Made once per index and never freed:
// blocks it counted may be freed at any time until the process exits.
class SimulatedDevice::State {
 public:
  State(int index, int64_t capacity, std::string foreign_file, std::string fault_file)
      : name_(absl::StrCat("sim:", index)),
        capacity_(capacity),
        foreign_file_(std::move(foreign_file)),
        fault_file_(std::move(fault_file)),
        limit_(capacity) {}

  const std::string& name() const { return name_; }
  int64_t capacity() const { return capacity_; }
  int64_t limit() const { return limit_.load(); }
  int64_t allocated() const { return allocated_.load(); }
  int64_t peak() const { return peak_.load(); }
  void set_limit(int64_t bytes) { limit_.store(std::clamp<int64_t>(bytes, 0, capacity_)); }
  void ResetPeak() { peak_.store(allocated_.load()); }
  void Free(size_t n) const { allocated_.fetch_sub(static_cast<int64_t>(n)); }

  // Bytes other processes hold on the device (see SimulatedDevice::Create).
  int64_t foreign() const { return ReadBytesFile(foreign_file_, foreign_, foreign_due_ns_); }

  // Whether the fault file names this device: it has then failed for good.
  // Read again at most every 5 ms; once failed, always failed.
  bool failed() const {
    if (failed_.load()) return true;
    if (fault_file_.empty()) return false;
    const int64_t now = absl::GetCurrentTimeNanos();
    int64_t due = fault_due_ns_.load();
    if (now >= due && fault_due_ns_.compare_exchange_strong(due, now + 5'000'000)) {
      std::ifstream in(fault_file_);
      std::string word;
      while (in >> word) {
        if (word == name_) failed_.store(true);
      }
    }
    return failed_.load();
  }

  // Adds `n` to the counted bytes, or throws c10::OutOfMemoryError if that
  // would pass the limit (or a sticky device error once failed). A
  // compare-exchange loop, so that concurrent allocations never see a
  // transient total above the limit.
  void Reserve(size_t n) const {
    if (failed()) {
      // Worded like CUDA's sticky error, so it is classified the same way.
      TORCH_CHECK(false, "simulated device ", name_,
                  ": an illegal memory access was encountered (failed for good by "
                  "the fault file)");
    }
    // The cap, or what other processes leave of the capacity if less.
    const int64_t limit = std::min(limit_.load(), capacity_ - foreign());
    const int64_t want = n > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                             ? std::numeric_limits<int64_t>::max()
                             : static_cast<int64_t>(n);
    int64_t current = allocated_.load();
    do {
      if (want > limit - current) {
        C10_THROW_ERROR(OutOfMemoryError,
                        absl::StrCat("simulated device ", name_,
                                     " out of memory: tried to allocate ", want, " bytes with ",
                                     current, " bytes allocated, limit ", limit,
                                     " bytes (capacity ", capacity_, " bytes)"));
      }
    } while (!allocated_.compare_exchange_weak(current, current + want));
    const int64_t now = current + want;
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
  }

 private:
  const std::string name_;
  const int64_t capacity_;
  const std::string foreign_file_;
  const std::string fault_file_;
  mutable std::atomic<int64_t> foreign_{0};
  mutable std::atomic<int64_t> foreign_due_ns_{0};
  mutable std::atomic<bool> failed_{false};
  mutable std::atomic<int64_t> fault_due_ns_{0};
  std::atomic<int64_t> limit_;
  mutable std::atomic<int64_t> allocated_{0};
  mutable std::atomic<int64_t> peak_{0};
};

namespace {

using State = SimulatedDevice::State;

struct BlockHeader {
  uint64_t magic;
  size_t size;           // bytes the caller asked for, header excluded
  const State* counted;  // the device `size` was added to; null: uncounted
};
static_assert(sizeof(BlockHeader) <= kHeaderBytes);
static_assert(kHeaderBytes % alignof(std::max_align_t) == 0);

// Above the default CPU allocator's 0, so the install cannot be ignored.
constexpr uint8_t kAllocatorPriority = 100;

// The device whose scope this thread is in; null: allocations are not
// counted.
thread_local const State* g_scope_device = nullptr;

class CountingScope final : public TorchDevice::ExecutionScope {
 public:
  explicit CountingScope(const State* device) : saved_(g_scope_device) { g_scope_device = device; }
  ~CountingScope() override { g_scope_device = saved_; }

 private:
  const State* const saved_;
};

// Suspends counting on this thread (host copies made inside a forward).
class UncountedScope {
 public:
  UncountedScope() : saved_(g_scope_device) { g_scope_device = nullptr; }
  ~UncountedScope() { g_scope_device = saved_; }
  UncountedScope(const UncountedScope&) = delete;
  UncountedScope& operator=(const UncountedScope&) = delete;

 private:
  const State* const saved_;
};

// Wraps the CPU allocator it replaces. No `override` in this class on
// purpose: libtorch 2.3 made allocate() non-const and copy_data() pure
// virtual, so both allocate() forms and copy_data() are declared, and
// whichever the installed libtorch declares virtual is the one overridden.
class BudgetedCpuAllocator final : public c10::Allocator {
 public:
  explicit BudgetedCpuAllocator(c10::Allocator* wrapped)
      : wrapped_(wrapped), wrapped_delete_(wrapped->raw_deleter()) {}

  c10::DataPtr allocate(size_t n) const {
    if (n == 0) return {nullptr, nullptr, &Delete, c10::Device(c10::kCPU)};
    const State* counted = g_scope_device;
    if (counted != nullptr) counted->Reserve(n);
    void* base = nullptr;
    try {
      TORCH_CHECK_WITH(OutOfMemoryError, n <= std::numeric_limits<size_t>::max() - kHeaderBytes,
                       "simulated device: allocation of ", n, " bytes is out of memory range");
      base = wrapped_->raw_allocate(n + kHeaderBytes);
    } catch (...) {
      if (counted != nullptr) counted->Free(n);
      throw;
    }
    new (base) BlockHeader{kHeaderMagic, n, counted};
    void* data = static_cast<char*>(base) + kHeaderBytes;
    return {data, data, &Delete, c10::Device(c10::kCPU)};
  }
  c10::DataPtr allocate(size_t n) { return static_cast<const BudgetedCpuAllocator*>(this)->allocate(n); }

  c10::DeleterFnPtr raw_deleter() const { return &Delete; }

  void copy_data(void* dest, const void* src, std::size_t count) const {
    std::memcpy(dest, src, count);
  }

 private:
  static void Delete(void* data);

  c10::Allocator* const wrapped_;
  const c10::DeleterFnPtr wrapped_delete_;
};

// Set once, when the first simulated device is made; never freed, because
// blocks it handed out may be freed at any time until the process exits.
std::atomic<BudgetedCpuAllocator*> g_allocator{nullptr};
absl::Mutex g_devices_mu;
// Devices made so far, by index; never freed (see State).
std::map<int, State*>& Devices() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_devices_mu) {
  static auto* devices = new std::map<int, State*>();
  return *devices;
}

void BudgetedCpuAllocator::Delete(void* data) {
  if (data == nullptr) return;
  void* base = static_cast<char*>(data) - kHeaderBytes;
  const auto* header = static_cast<const BlockHeader*>(base);
  TORCH_INTERNAL_ASSERT_DEBUG_ONLY(header->magic == kHeaderMagic);
  if (header->counted != nullptr) header->counted->Free(header->size);
  g_allocator.load()->wrapped_delete_(base);
}

at::Tensor CopyToCpu(const at::Tensor& t) {
  return t.to(at::TensorOptions().device(c10::kCPU), /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SimulatedDevice>> SimulatedDevice::Create(
    int64_t capacity_bytes, const std::string& foreign_file) {
  return Create(0, capacity_bytes, foreign_file, "");
}

absl::StatusOr<std::unique_ptr<SimulatedDevice>> SimulatedDevice::Create(
    int index, int64_t capacity_bytes, const std::string& foreign_file,
    const std::string& fault_file) {
  if (capacity_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated device: capacity must be a positive number of bytes, got ", capacity_bytes));
  }
  if (index < 0 || index >= kMaxDevices) {
    return absl::InvalidArgumentError(absl::StrCat("simulated device: index ", index,
                                                   " is not in 0..", kMaxDevices - 1));
  }
  absl::MutexLock lock(&g_devices_mu);
  if (Devices().count(index) > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "simulated device: this process already made sim:", index,
        " (its counted blocks outlive it, so there is only one sim:", index, " per process)"));
  }
  if (g_allocator.load() == nullptr) {
    c10::Allocator* current = c10::GetCPUAllocator();
    if (current->raw_deleter() == nullptr) {
      return absl::FailedPreconditionError(
          "simulated device: the installed CPU allocator has no raw deleter to wrap");
    }
    auto* allocator = new BudgetedCpuAllocator(current);
    c10::SetCPUAllocator(allocator, kAllocatorPriority);
    if (c10::GetCPUAllocator() != allocator) {
      return absl::FailedPreconditionError(
          "simulated device: libtorch kept another CPU allocator of higher priority");
    }
    g_allocator.store(allocator);
  }
  auto* state = new State(index, capacity_bytes, foreign_file, fault_file);
  Devices()[index] = state;
  return std::unique_ptr<SimulatedDevice>(new SimulatedDevice(state));
}

std::string SimulatedDevice::name() const { return state_->name(); }

core::DeviceMemory SimulatedDevice::Memory() const {
  core::DeviceMemory m;
  m.total_bytes = state_->capacity();
  m.allocated_bytes = state_->allocated();
  m.free_bytes = std::max<int64_t>(0, m.total_bytes - m.allocated_bytes - state_->foreign());
  m.reserved_bytes = m.allocated_bytes;
  m.peak_bytes = state_->peak();
  return m;
}

void SimulatedDevice::ResetPeak() { state_->ResetPeak(); }

void SimulatedDevice::CapAllocator(int64_t bytes) { state_->set_limit(bytes); }

int64_t SimulatedDevice::limit_bytes() const { return state_->limit(); }

bool SimulatedDevice::failed() const { return state_->failed(); }

at::Tensor SimulatedDevice::ToDevice(const at::Tensor& t) const {
  CountingScope scope(state_);
  return CopyToCpu(t);
}

at::Tensor SimulatedDevice::ToHost(const at::Tensor& t) const {
  UncountedScope scope;
  return CopyToCpu(t);
}

at::Tensor SimulatedDevice::AllocateHost(int64_t bytes) const {
  UncountedScope scope;
  return at::empty({bytes}, at::TensorOptions().dtype(at::kByte));
}

std::unique_ptr<TorchDevice::ExecutionScope> SimulatedDevice::Enter() const {
  return std::make_unique<CountingScope>(state_);
}

}  // namespace bertserve::torchrt
