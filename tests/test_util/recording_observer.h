#ifndef BERTSERVE_TESTS_TEST_UTIL_RECORDING_OBSERVER_H_
#define BERTSERVE_TESTS_TEST_UTIL_RECORDING_OBSERVER_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "server/core/batcher.h"

namespace bertserve::testing {

// Counts what a Batcher reports, for every model together. Thread-safe.
class RecordingObserver : public core::BatchObserver {
 public:
  void OnBatch(const std::string&, int rows, int64_t padded, int64_t real, double) override {
    batches++;
    padded_tokens += padded;
    real_tokens += real;
  }
  void OnQueued(const std::string&, double) override {}
  void OnOom(const std::string&, int64_t, const absl::Status&) override { ooms++; }
  void OnSplit(const std::string&) override { splits++; }
  void OnTokenLimit(const std::string&, int64_t tokens, int change) override {
    limit = tokens;
    if (change < 0) lowered++;
    if (change > 0) raised++;
  }
  void OnQueueDepth(const std::string&, int64_t) override {}
  void OnExpired(const std::string&) override { expired++; }
  void OnTokenized(const std::string&, double) override {}

  std::atomic<int> batches{0}, ooms{0}, splits{0}, lowered{0}, raised{0}, expired{0};
  std::atomic<int64_t> padded_tokens{0}, real_tokens{0}, limit{0};
};

}  // namespace bertserve::testing

#endif  // BERTSERVE_TESTS_TEST_UTIL_RECORDING_OBSERVER_H_
