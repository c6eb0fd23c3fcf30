// Open Inference Protocol requests on any bytes a client can send: the wire
// bytes of a ModelInferRequest go through the server's own parse
// (ParseRequest), the tensor decoding (DecodeInferRequest, PlanOutputs) and
// the encoding of an answer for as many inputs as were decoded. Every error
// is InvalidArgument; what decodes is consistent (texts valid UTF-8, token
// rows as long as their type ids, never both kinds), and the answer has the
// outputs asked for, in the shapes promised, its raw contents readable back.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "inference/grpc_service.pb.h"
#include "server/grpc/status_util.h"
#include "server/grpc/v2_tensors.h"
#include "server/tokenizer/unicode.h"
#include "tests/fuzz/fuzz_check.h"

namespace bertserve {
namespace {

namespace v2 = grpcsvc::v2;

constexpr int kLabels = 3;
// Answers are encoded for at most this many inputs: the point is their
// shapes, not their size.
constexpr size_t kMaxRows = 64;

void CheckInvalidArgument(const absl::Status& status, const char* what) {
  BERTSERVE_FUZZ_CHECK(absl::IsInvalidArgument(status), "%s: %s", what,
                       status.ToString().c_str());
}

void CheckAnswer(const inference::ModelInferRequest& request, const v2::OutputPlan& plan,
                 int top_k, size_t rows) {
  core::ClassifiedRows classified;
  classified.labels = {"a", "b", "c"};
  for (size_t i = 0; i < rows; ++i) {
    classified.rows.push_back({static_cast<float>(i), -1.5f, 0.25f * static_cast<float>(i % 7)});
  }
  const inference::ModelInferResponse response =
      v2::EncodeInferResponse(request.model_name(), request.id(), plan, top_k, classified);
  BERTSERVE_FUZZ_CHECK(response.outputs_size() == static_cast<int>(plan.names.size()),
                       "%d outputs for %zu names", response.outputs_size(), plan.names.size());
  BERTSERVE_FUZZ_CHECK(response.raw_output_contents_size() == (plan.raw ? response.outputs_size() : 0),
                       "%d raw contents", response.raw_output_contents_size());
  const int64_t keep = top_k > 0 && top_k < kLabels ? top_k : kLabels;
  for (int o = 0; o < response.outputs_size(); ++o) {
    const auto& out = response.outputs(o);
    BERTSERVE_FUZZ_CHECK(out.name() == plan.names[o], "output %d is %s", o, out.name().c_str());
    BERTSERVE_FUZZ_CHECK(out.shape(0) == static_cast<int64_t>(rows), "batch %lld",
                         static_cast<long long>(out.shape(0)));
    int64_t elements = 1;
    for (int64_t d : out.shape()) elements *= d;
    if (out.datatype() == "BYTES") {
      BERTSERVE_FUZZ_CHECK(elements == static_cast<int64_t>(rows) * (top_k > 0 ? keep : 1),
                           "LABEL has %lld elements", static_cast<long long>(elements));
      if (plan.raw) {
        absl::StatusOr<std::vector<std::string>> labels =
            v2::DecodeRawBytes(response.raw_output_contents(o), elements, "LABEL");
        BERTSERVE_FUZZ_CHECK(labels.ok(), "%s", labels.status().ToString().c_str());
      } else {
        BERTSERVE_FUZZ_CHECK(out.contents().bytes_contents_size() == elements, "LABEL contents");
      }
      continue;
    }
    BERTSERVE_FUZZ_CHECK(out.datatype() == "FP32", "datatype %s", out.datatype().c_str());
    BERTSERVE_FUZZ_CHECK(elements == static_cast<int64_t>(rows) * keep, "%s has %lld elements",
                         out.name().c_str(), static_cast<long long>(elements));
    if (plan.raw) {
      BERTSERVE_FUZZ_CHECK(response.raw_output_contents(o).size() ==
                               static_cast<size_t>(elements) * 4,
                           "raw %s size", out.name().c_str());
    } else {
      BERTSERVE_FUZZ_CHECK(out.contents().fp32_contents_size() == elements, "contents");
      if (out.name() == v2::kProbabilities && top_k == 0 && rows > 0) {
        double sum = 0;
        for (int k = 0; k < kLabels; ++k) sum += out.contents().fp32_contents(k);
        BERTSERVE_FUZZ_CHECK(std::fabs(sum - 1.0) < 1e-5, "probabilities sum to %f", sum);
      }
    }
  }
}

}  // namespace
}  // namespace bertserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bertserve;  // NOLINT
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);  // parse errors are expected
    return true;
  }();
  (void)quiet;
  grpc::Slice slice(data, size);
  grpc::ByteBuffer bytes(&slice, 1);
  inference::ModelInferRequest request;
  if (absl::Status parsed = grpcsvc::ParseRequest(bytes, &request); !parsed.ok()) {
    CheckInvalidArgument(parsed, "ParseRequest");
    return 0;
  }
  absl::StatusOr<v2::DecodedRequest> decoded = v2::DecodeInferRequest(request);
  absl::StatusOr<v2::OutputPlan> plan = v2::PlanOutputs(request);
  if (!plan.ok()) CheckInvalidArgument(plan.status(), "PlanOutputs");
  if (!decoded.ok()) {
    CheckInvalidArgument(decoded.status(), "DecodeInferRequest");
    return 0;
  }
  const v1::ClassifyRequest& classify = decoded->request;
  BERTSERVE_FUZZ_CHECK(classify.inputs_size() == 0 || decoded->tokens.empty(),
                       "texts and tokens both decoded");
  for (const v1::TextInput& input : classify.inputs()) {
    BERTSERVE_FUZZ_CHECK(tokenizer::unicode::ValidateUtf8(input.text(), "text").ok() &&
                             tokenizer::unicode::ValidateUtf8(input.text_pair(), "pair").ok(),
                         "a text that is not UTF-8 was decoded");
  }
  for (const core::EncodedInput& row : decoded->tokens) {
    BERTSERVE_FUZZ_CHECK(row.ids.size() == row.type_ids.size(), "%zu ids, %zu type ids",
                         row.ids.size(), row.type_ids.size());
    for (int32_t id : row.ids) BERTSERVE_FUZZ_CHECK(id >= 0, "id %d", id);
  }
  BERTSERVE_FUZZ_CHECK(classify.top_k() >= 0 && classify.top_k() <= core::kMaxTopK, "top_k %d",
                       classify.top_k());
  if (!plan.ok()) return 0;
  const size_t rows = std::min(
      kMaxRows, std::max(static_cast<size_t>(classify.inputs_size()), decoded->tokens.size()));
  CheckAnswer(request, *plan, classify.top_k(), rows);
  return 0;
}
