#ifndef BERTSERVE_TESTS_TEST_UTIL_FAKE_MODEL_H_
#define BERTSERVE_TESTS_TEST_UTIL_FAKE_MODEL_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/core/device.h"
#include "server/core/model_runtime.h"

namespace bertserve::testing {

// A device with a capacity that fake models allocate from. Thread-safe.
class FakeDevice : public core::Device {
 public:
  explicit FakeDevice(int64_t capacity, bool has_budget = true, std::string name = "fake:0")
      : capacity_(capacity), has_budget_(has_budget), name_(std::move(name)) {}

  std::string name() const override { return name_; }
  bool has_budget() const override { return has_budget_; }
  core::DeviceMemory Memory() const override ABSL_LOCKS_EXCLUDED(mu_);
  void ResetPeak() override ABSL_LOCKS_EXCLUDED(mu_);
  void CapAllocator(int64_t) override {}
  void ReleaseCachedMemory() override {}

  // ResourceExhausted past the capacity.
  absl::Status Allocate(int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  void Free(int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  int64_t allocated() const ABSL_LOCKS_EXCLUDED(mu_);
  // Bytes another process holds on the device (lowers free_bytes only).
  void SetForeignBytes(int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // From now on every forward on the device fails with a sticky device
  // error (core::IsDeviceLost), as after a CUDA illegal memory access.
  void FailForGood() { failed_.store(true); }
  bool failed() const { return failed_.load(); }

 private:
  const int64_t capacity_;
  const bool has_budget_;
  const std::string name_;
  std::atomic<bool> failed_{false};
  mutable absl::Mutex mu_;
  int64_t allocated_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t peak_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t foreign_ ABSL_GUARDED_BY(mu_) = 0;
};

// A model whose logits are a pure function of the input, so tests can compute
// the expected answer: logit j of a row = sum over real tokens of
// (id * (j + 1)) / 1000 + token_type_sum * 0.5 * j. Its weights occupy
// `weight_bytes` of the FakeDevice while in the device tier; a forward
// allocates `activation_bytes_per_token` x padded tokens for its duration.
class FakeModel : public core::Model {
 public:
  // `devices`: where it may be placed (Model::MoveToDevice's indices);
  // empty: it executes on the CPU, always "on device".
  FakeModel(int num_labels, int64_t weight_bytes, std::vector<FakeDevice*> devices,
            int64_t activation_bytes_per_token);
  FakeModel(int num_labels, int64_t weight_bytes, FakeDevice* device,
            int64_t activation_bytes_per_token)
      : FakeModel(num_labels, weight_bytes,
                  device == nullptr ? std::vector<FakeDevice*>{} : std::vector<FakeDevice*>{device},
                  activation_bytes_per_token) {}
  ~FakeModel() override;

  absl::StatusOr<core::Logits> Forward(const core::InputBatch& batch) override;
  using core::Model::MoveToDevice;
  absl::Status MoveToDevice(int device) override;
  absl::Status MoveToHost() override;
  core::WeightTier tier() const override { return tier_.load(); }
  int64_t weight_bytes() const override { return weight_bytes_; }
  std::vector<std::string> input_names() const override {
    return {"input_ids", "attention_mask", "token_type_ids"};
  }
  std::string device() const override {
    return devices_.empty() ? "cpu" : devices_[current_.load()]->name();
  }

  // Expected logits for one unpadded row.
  static std::vector<float> ExpectedRow(const std::vector<int32_t>& ids,
                                        const std::vector<int32_t>& type_ids, int num_labels);

  int forwards() const { return forwards_.load(); }
  // The next forward fails with `status` (before touching the device).
  void FailNextForward(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // (batch_size, sequence_length) of every forward so far, warm-up included.
  std::vector<std::pair<int64_t, int64_t>> shapes() const ABSL_LOCKS_EXCLUDED(mu_);
  // The next forward notifies `started` and waits for `release`.
  void BlockNextForward(absl::Notification* started, absl::Notification* release);
  // The name of the thread that ran the latest forward ("" before any).
  std::string last_forward_thread() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const int num_labels_;
  const int64_t weight_bytes_;
  FakeDevice* on() const { return devices_.empty() ? nullptr : devices_[current_.load()]; }

  const std::vector<FakeDevice*> devices_;  // empty: executes on the CPU, always "on device"
  std::atomic<int> current_{0};
  const int64_t activation_bytes_per_token_;
  std::atomic<core::WeightTier> tier_;
  std::atomic<int> forwards_{0};
  std::atomic<absl::Notification*> block_started_{nullptr};
  std::atomic<absl::Notification*> block_release_{nullptr};
  mutable absl::Mutex mu_;
  absl::Status next_failure_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int64_t, int64_t>> shapes_ ABSL_GUARDED_BY(mu_);
  std::string last_forward_thread_ ABSL_GUARDED_BY(mu_);
};

// A loader with fault and timing knobs. Records how many loads ran at once.
// Thread-safe.
class FakeLoader : public core::ModelLoader {
 public:
  // `device` may be null: models then execute on the CPU.
  explicit FakeLoader(FakeDevice* device = nullptr)
      : devices_(device == nullptr ? std::vector<FakeDevice*>{} : std::vector<FakeDevice*>{device}) {}
  // Models may be placed on any of `devices` (Model::MoveToDevice's indices).
  explicit FakeLoader(std::vector<FakeDevice*> devices) : devices_(std::move(devices)) {}

  absl::StatusOr<std::unique_ptr<core::Model>> Load(const core::ModelSource& source) override
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records the calling thread's name (released_on).
  void ReleaseThreadResources() override ABSL_LOCKS_EXCLUDED(mu_);
  // The names of the threads ReleaseThreadResources was called on, in order.
  std::vector<std::string> released_on() const ABSL_LOCKS_EXCLUDED(mu_);

  void FailNextLoad(const std::string& name, absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // The next load of `name` notifies `started` and waits for `release`; both
  // must outlive it. Later loads run freely.
  void BlockLoad(const std::string& name, absl::Notification* started,
                 absl::Notification* release) ABSL_LOCKS_EXCLUDED(mu_);
  void SetNumLabels(const std::string& name, int n) ABSL_LOCKS_EXCLUDED(mu_);
  void SetWeightBytes(const std::string& name, int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  void SetActivationBytesPerToken(int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  int loads() const ABSL_LOCKS_EXCLUDED(mu_);
  int loads_of(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  int max_concurrent_loads() const ABSL_LOCKS_EXCLUDED(mu_);
  // The model most recently loaded under `name` (owned by the registry).
  FakeModel* last_model(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::vector<FakeDevice*> devices_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::pair<absl::Notification*, absl::Notification*>> blocks_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> labels_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> weights_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> loads_by_name_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, FakeModel*> last_ ABSL_GUARDED_BY(mu_);
  int64_t activation_per_token_ ABSL_GUARDED_BY(mu_) = 0;
  int loads_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> released_on_ ABSL_GUARDED_BY(mu_);
};

// Writes a model repository under a fresh temporary directory and removes it
// on destruction.
class TempRepository {
 public:
  TempRepository();
  ~TempRepository();
  // Creates <name>/ with config.pbtxt = `config` and a small vocab.txt
  // ([PAD] [UNK] [CLS] [SEP] [MASK] hello world , !).
  void AddModel(const std::string& name, const std::string& config = "");
  void WriteFile(const std::string& relative, const std::string& contents);
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

}  // namespace bertserve::testing

#endif  // BERTSERVE_TESTS_TEST_UTIL_FAKE_MODEL_H_
