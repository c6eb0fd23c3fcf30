#ifndef BERTSERVE_SERVER_CORE_CLASSIFIER_H_
#define BERTSERVE_SERVER_CORE_CLASSIFIER_H_

#include <functional>
#include <string>
#include <vector>

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

// What a request's forward passes produced, before it becomes scores: for
// protocols that shape the answer themselves (the Open Inference Protocol).
struct ClassifiedRows {
  std::vector<LogitsRow> rows;      // one per input, in input order
  std::vector<int32_t> num_tokens;  // tokens the model saw, per input
  std::vector<bool> truncated;      // per input
  std::vector<std::string> labels;  // the model's, one per logit
  v1::Timing timing;
};

// The request path below gRPC: validate, tokenize, queue the inputs with the
// Batcher, score the rows it returns. Every error names the input and field
// at fault. Thread-safe; a request holds its model handle from validation
// until its last row is back, so the model is not evicted under it.
class Classifier {
 public:
  using Respond = std::function<void(absl::StatusOr<v1::ClassifyResponse>)>;
  using RespondRows = std::function<void(absl::StatusOr<ClassifiedRows>)>;

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

  // ClassifyAsync's path and checks, answering with the logits rows. When
  // `tokens` is not empty the client tokenized the inputs itself:
  // `request.inputs` must then be empty, and each row is checked against the
  // model instead of tokenized (ids within its vocabulary, type ids 0 or 1,
  // at most max_sequence_length tokens; never truncated). Either way the
  // inputs take the same batcher, token limits and deadlines.
  void ClassifyRowsAsync(const v1::ClassifyRequest& request, std::vector<EncodedInput> tokens,
                         absl::Time received, absl::Time deadline, RespondRows respond) const;

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
  void Queue(const v1::ClassifyRequest& request, std::vector<EncodedInput> tokens,
             ModelHandle handle, absl::Time received, absl::Time deadline,
             RespondRows respond) const;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_CLASSIFIER_H_
