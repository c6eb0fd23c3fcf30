#ifndef BERTSERVE_SERVER_CORE_CLASSIFIER_H_
#define BERTSERVE_SERVER_CORE_CLASSIFIER_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bertserve/v1/inference.pb.h"
#include "server/core/model_registry.h"

namespace bertserve::core {

// Largest top_k accepted; anything above is a client bug, not a request for
// "all labels" (use 0 for that).
inline constexpr int kMaxTopK = 65536;

// The request path below gRPC: validate, tokenize, pad, run the model, score.
// Every error names the input and field at fault. Thread-safe; holds a model
// handle only for the duration of one call.
class Classifier {
 public:
  // `registry` must outlive the classifier.
  explicit Classifier(ModelRegistry* registry) : registry_(registry) {}

  // `received` is when the request arrived, for the queue time; a model that
  // is not READY is placed first, within `deadline`.
  absl::StatusOr<v1::ClassifyResponse> Classify(
      const v1::ClassifyRequest& request, absl::Time received,
      absl::Time deadline = absl::InfiniteFuture()) const;

  absl::StatusOr<v1::TokenizeResponse> Tokenize(
      const v1::TokenizeRequest& request, absl::Time deadline = absl::InfiniteFuture()) const;

 private:
  ModelRegistry* const registry_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_CLASSIFIER_H_
