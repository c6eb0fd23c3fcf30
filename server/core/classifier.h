#ifndef BERTSERVE_SERVER_CORE_CLASSIFIER_H_
#define BERTSERVE_SERVER_CORE_CLASSIFIER_H_

#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bertserve/v1/inference.pb.h"
#include "server/core/batcher.h"
#include "server/core/model_registry.h"
#include "server/core/worker_pool.h"

namespace bertserve::core {

// The ids and type ids of a Tokenize answer: what the model sees of it.
EncodedInput EncodedInputOf(const v1::TokenizeResponse& tokens);

// Largest top_k accepted; anything above is a client bug, not a request for
// "all labels" (use 0 for that).
inline constexpr int kMaxTopK = 65536;

// The request path below gRPC: validate, tokenize, queue the inputs with the
// Batcher, score the rows it returns. Every error names the input and field
// at fault. Thread-safe; a request holds its model handle from validation
// until its last row is back, so the model is not evicted under it.
class Classifier {
 public:
  using Respond = std::function<void(absl::StatusOr<v1::ClassifyResponse>)>;

  // `registry` and `batcher` must outlive the classifier; `observer` (may be
  // null) is told tokenization times. A request for a model that must be
  // placed first waits without holding a thread (ModelRegistry::AcquireAsync);
  // once the model is READY its tokenization continues on `pool` (when
  // given; else on the thread that finished the placement).
  Classifier(ModelRegistry* registry, Batcher* batcher, BatchObserver* observer = nullptr,
             WorkerPool* pool = nullptr)
      : registry_(registry), batcher_(batcher), observer_(observer), pool_(pool) {}

  // `received` is when the request arrived, for the queue time; a model that
  // is not READY is placed first, within `deadline`. `respond` runs exactly
  // once: on this thread when the request fails before its inputs are
  // queued, at the deadline (on the registry's timer) if the model is not
  // placed by then, else on the batch executor that ran its last input.
  void ClassifyAsync(const v1::ClassifyRequest& request, absl::Time received,
                     absl::Time deadline, Respond respond) const;

  // ClassifyAsync, waiting for the answer.
  absl::StatusOr<v1::ClassifyResponse> Classify(
      const v1::ClassifyRequest& request, absl::Time received,
      absl::Time deadline = absl::InfiniteFuture()) const;

  using RespondTokens = std::function<void(absl::StatusOr<v1::TokenizeResponse>)>;
  // Tokenizes as the model would; a model that is not READY is placed first,
  // as for ClassifyAsync. `respond` runs exactly once.
  void TokenizeAsync(const v1::TokenizeRequest& request, absl::Time deadline,
                     RespondTokens respond) const;
  // TokenizeAsync, waiting for the answer.
  absl::StatusOr<v1::TokenizeResponse> Tokenize(
      const v1::TokenizeRequest& request, absl::Time deadline = absl::InfiniteFuture()) const;

 private:
  ModelRegistry* const registry_;
  Batcher* const batcher_;
  BatchObserver* const observer_;
  WorkerPool* const pool_;

  // Runs `then` with a hold on the READY model `name`: here and now when it
  // is READY, else once it is placed (on the pool); or `fail` with the error
  // (the deadline's included).
  void WithModel(const std::string& name, absl::Time deadline,
                 std::function<void(ModelHandle)> then,
                 std::function<void(absl::Status)> fail) const;
  void Queue(const v1::ClassifyRequest& request, ModelHandle handle, absl::Time received,
             absl::Time deadline, Respond respond) const;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_CLASSIFIER_H_
