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
#include "server/core/model_runtime.h"

namespace bertserve::testing {

// A model whose logits are a pure function of the input, so tests can compute
// the expected answer: logit j of a row = sum over real tokens of
// (id * (j + 1)) / 1000 + token_type_sum * 0.5 * j.
class FakeModel : public core::Model {
 public:
  FakeModel(int num_labels, int64_t weight_bytes)
      : num_labels_(num_labels), weight_bytes_(weight_bytes) {}

  absl::StatusOr<core::Logits> Forward(const core::InputBatch& batch) override;
  int64_t weight_bytes() const override { return weight_bytes_; }
  int num_labels() const override { return num_labels_; }
  std::vector<std::string> input_names() const override {
    return {"input_ids", "attention_mask", "token_type_ids"};
  }
  std::string device() const override { return "fake"; }

  // Expected logits for one unpadded row.
  static std::vector<float> ExpectedRow(const std::vector<int32_t>& ids,
                                        const std::vector<int32_t>& type_ids, int num_labels);

  int forwards() const { return forwards_.load(); }

 private:
  const int num_labels_;
  const int64_t weight_bytes_;
  std::atomic<int> forwards_{0};
};

// A loader with fault and timing knobs. Records how many loads ran at once.
// Thread-safe.
class FakeLoader : public core::ModelLoader {
 public:
  absl::StatusOr<std::unique_ptr<core::Model>> Load(const core::ModelSource& source) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // The next load of `name` fails with `status`.
  void FailNextLoad(const std::string& name, absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // Loads of `name` block until `release` is notified; `started` is notified
  // when the load begins. Both must outlive the load.
  void BlockLoad(const std::string& name, absl::Notification* started,
                 absl::Notification* release) ABSL_LOCKS_EXCLUDED(mu_);
  void SetNumLabels(const std::string& name, int n) ABSL_LOCKS_EXCLUDED(mu_);

  int loads() const ABSL_LOCKS_EXCLUDED(mu_);
  int max_concurrent_loads() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::pair<absl::Notification*, absl::Notification*>> blocks_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> labels_ ABSL_GUARDED_BY(mu_);
  int loads_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
};

// Writes a model repository under a fresh temporary directory and removes it
// on destruction.
class TempRepository {
 public:
  TempRepository();
  ~TempRepository();
  // Creates models/<name>/ with config.pbtxt = `config` and a small vocab.txt
  // ([PAD] [UNK] [CLS] [SEP] [MASK] hello world , !).
  void AddModel(const std::string& name, const std::string& config = "");
  void WriteFile(const std::string& relative, const std::string& contents);
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

}  // namespace bertserve::testing

#endif  // BERTSERVE_TESTS_TEST_UTIL_FAKE_MODEL_H_
