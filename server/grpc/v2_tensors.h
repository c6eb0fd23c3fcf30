#ifndef BERTSERVE_SERVER_GRPC_V2_TENSORS_H_
#define BERTSERVE_SERVER_GRPC_V2_TENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bertserve/v1/inference.pb.h"
#include "inference/grpc_service.pb.h"
#include "server/core/batcher.h"
#include "server/core/classifier.h"

// Text classification as Open Inference Protocol (KServe v2) tensors: what a
// ModelInferRequest's tensors and parameters mean to bertserve, and the
// answer as output tensors. Pure functions over messages; every error is
// InvalidArgument naming the tensor, element or parameter at fault.
namespace bertserve::grpcsvc::v2 {

// Tensor names (README "Open Inference Protocol").
inline constexpr char kText[] = "TEXT";            // BYTES [batch] or [batch, 1]
inline constexpr char kTextPair[] = "TEXT_PAIR";   // optional, as TEXT
inline constexpr char kInputIds[] = "input_ids";   // INT64 or INT32 [batch, seq]
inline constexpr char kAttentionMask[] = "attention_mask";  // optional, as input_ids
inline constexpr char kTokenTypeIds[] = "token_type_ids";   // optional, as input_ids
inline constexpr char kLogits[] = "LOGITS";                 // FP32 [batch, labels]
inline constexpr char kProbabilities[] = "PROBABILITIES";   // FP32 [batch, labels]
inline constexpr char kLabel[] = "LABEL";                   // BYTES [batch]

// A request as bertserve.v1 would have it: `request` carries the model, the
// texts (when the client sent TEXT), top_k, raw_scores, truncate and the id;
// `tokens` the rows of a client that tokenized itself (input_ids; attention
// mask padding removed), for Classifier::ClassifyRowsAsync.
struct DecodedRequest {
  v1::ClassifyRequest request;
  std::vector<core::EncodedInput> tokens;
};

// Decodes the inputs (from `contents` or `raw_input_contents`, never both)
// and the parameters top_k (int64), raw_scores and truncate (bool); other
// parameters are ignored. The model version must be "" or "1".
absl::StatusOr<DecodedRequest> DecodeInferRequest(const inference::ModelInferRequest& request);

// The outputs a request asked for, in its order, and their encoding.
struct OutputPlan {
  std::vector<std::string> names;
  // raw_output_contents rather than contents: when the request sent
  // raw_input_contents, or an output asks with the parameter binary_data.
  bool raw = false;
};

// The outputs named (LOGITS, PROBABILITIES, LABEL; each at most once), or
// with none named, LABEL and PROBABILITIES (LOGITS with raw_scores).
absl::StatusOr<OutputPlan> PlanOutputs(const inference::ModelInferRequest& request);

// The answer to the request for `model_name` with `id`: per output, one
// row per input. With top_k 0 the score
// outputs hold every label in label order and LABEL the best one; with
// top_k k, the best min(k, labels) of each, best first, and LABEL their
// names in the same order ([batch, k]). Probabilities and logits are
// computed exactly as bertserve.v1 computes its scores (core::ScoreRow).
inference::ModelInferResponse EncodeInferResponse(const std::string& model_name,
                                                  const std::string& id, const OutputPlan& plan,
                                                  int top_k, const core::ClassifiedRows& rows);

// BYTES elements in the protocol's raw form: each a 4-byte little-endian
// length, then its bytes. DecodeRawBytes reads exactly `count` elements
// and nothing after; `what` names the tensor in errors.
std::string EncodeRawBytes(const std::vector<std::string>& elements);
absl::StatusOr<std::vector<std::string>> DecodeRawBytes(const std::string& raw, int64_t count,
                                                        absl::string_view what);

}  // namespace bertserve::grpcsvc::v2

#endif  // BERTSERVE_SERVER_GRPC_V2_TENSORS_H_
