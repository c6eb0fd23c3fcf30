// Request validation on any bytes a client can send: the wire bytes of a
// ClassifyRequest (or, when byte 0 is odd, a TokenizeRequest) go through the
// server's own parse (ParseRequest) and the request path below gRPC
// (Classifier: model lookup, validation, tokenization, batching, scoring)
// with fake models. A request is refused InvalidArgument or NotFound, or
// answered with one result per input whose scores are what the fake model
// computes for the input's own tokens (so padding, type ids and batching
// cannot mix inputs up).
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "bertserve/v1/inference.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "server/core/batcher.h"
#include "server/core/classifier.h"
#include "server/core/model_registry.h"
#include "server/core/model_repository.h"
#include "server/core/scores.h"
#include "server/core/worker_pool.h"
#include "server/grpc/status_util.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/test_util/fake_model.h"

namespace bertserve {
namespace {

constexpr int kLabels = 3;
constexpr int kMaxSequenceLength = 8;
constexpr int kMaxInputs = 4;
// Nothing here waits on anything slow: an answer this late is a hang.
constexpr absl::Duration kDeadline = absl::Seconds(20);

// A registry with "m" placed and "cold" placed on first use, a batcher and
// the classifier over them: what InferenceService calls.
struct Server {
  testing::TempRepository repo;
  testing::FakeDevice cpu{0, /*has_budget=*/false};
  testing::FakeLoader loader;
  std::unique_ptr<core::ModelRegistry> registry;
  std::unique_ptr<core::Batcher> batcher;
  std::unique_ptr<core::WorkerPool> waiters;
  std::unique_ptr<core::Classifier> classifier;

  Server() {
    const std::string config =
        "labels: \"a\" labels: \"b\" labels: \"c\" max_sequence_length: " +
        std::to_string(kMaxSequenceLength) + " batch { max_client_batch_size: " +
        std::to_string(kMaxInputs) + " max_batch_tokens: 32 max_queue_delay_us: 1 }";
    repo.AddModel("m", config);
    repo.AddModel("cold", config);
    loader.SetNumLabels("m", kLabels);
    loader.SetNumLabels("cold", kLabels);
    absl::StatusOr<core::ModelRepository> r = core::ModelRepository::Open(repo.root());
    BERTSERVE_FUZZ_CHECK(r.ok(), "%s", r.status().ToString().c_str());
    core::RegistryOptions options;
    options.device = &cpu;
    auto created = core::ModelRegistry::Create(*r, &loader, options);
    BERTSERVE_FUZZ_CHECK(created.ok(), "%s", created.status().ToString().c_str());
    registry = *std::move(created);
    BERTSERVE_FUZZ_CHECK(registry->Load("m").ok(), "cannot load m");
    batcher = std::make_unique<core::Batcher>(registry.get(), core::BatcherOptions{});
    waiters = std::make_unique<core::WorkerPool>(2);
    classifier = std::make_unique<core::Classifier>(registry.get(), batcher.get(), nullptr,
                                                    waiters.get());
  }
  ~Server() {
    classifier.reset();
    batcher.reset();  // answers what is queued before the registry goes
    waiters.reset();
  }
};

bool Refusal(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsNotFound(status);
}

bool KnownModel(const std::string& name) { return name == "m" || name == "cold"; }

void CheckClassify(Server& server, const v1::ClassifyRequest& request) {
  const absl::StatusOr<v1::ClassifyResponse> response =
      server.classifier->Classify(request, absl::Now(), absl::Now() + kDeadline);
  if (!response.ok()) {
    BERTSERVE_FUZZ_CHECK(Refusal(response.status()), "Classify: %s",
                         response.status().ToString().c_str());
    return;
  }
  BERTSERVE_FUZZ_CHECK(KnownModel(request.model()), "answered for model \"%s\"",
                       request.model().c_str());
  BERTSERVE_FUZZ_CHECK(response->model() == request.model() &&
                           response->request_id() == request.request_id(),
                       "model or request id not echoed");
  BERTSERVE_FUZZ_CHECK(response->results_size() == request.inputs_size() &&
                           request.inputs_size() >= 1 && request.inputs_size() <= kMaxInputs,
                       "%d results for %d inputs", response->results_size(),
                       request.inputs_size());
  BERTSERVE_FUZZ_CHECK(request.top_k() >= 0, "answered top_k %d", request.top_k());
  const bool truncate = !request.has_truncate() || request.truncate();
  for (int i = 0; i < request.inputs_size(); ++i) {
    // What the model saw of this input, asked separately.
    v1::TokenizeRequest tokenize;
    tokenize.set_model(request.model());
    *tokenize.mutable_input() = request.inputs(i);
    tokenize.set_truncate(truncate);
    const absl::StatusOr<v1::TokenizeResponse> tokens =
        server.classifier->Tokenize(tokenize, absl::Now() + kDeadline);
    BERTSERVE_FUZZ_CHECK(tokens.ok(), "input %d classified but not tokenized: %s", i,
                         tokens.status().ToString().c_str());
    const core::EncodedInput input = core::EncodedInputOf(*tokens);
    const v1::Classification& result = response->results(i);
    BERTSERVE_FUZZ_CHECK(result.num_tokens() == static_cast<int>(input.ids.size()) &&
                             result.num_tokens() <= kMaxSequenceLength &&
                             result.truncated() == tokens->truncated(),
                         "input %d: %d tokens (truncated %d), Tokenize says %zu (%d)", i,
                         result.num_tokens(), result.truncated(), input.ids.size(),
                         tokens->truncated());
    const std::vector<float> logits =
        testing::FakeModel::ExpectedRow(input.ids, input.type_ids, kLabels);
    const std::vector<v1::LabelScore> want = core::ScoreRow(
        logits.data(), kLabels, request.raw_scores(), request.top_k(), {"a", "b", "c"});
    BERTSERVE_FUZZ_CHECK(result.scores_size() == static_cast<int>(want.size()),
                         "input %d: %d scores, want %zu", i, result.scores_size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) {
      const v1::LabelScore& got = result.scores(static_cast<int>(k));
      BERTSERVE_FUZZ_CHECK(got.label() == want[k].label() && got.index() == want[k].index() &&
                               std::fabs(got.score() - want[k].score()) <= 1e-5f,
                           "input %d score %zu: %s %f, want %s %f", i, k, got.label().c_str(),
                           got.score(), want[k].label().c_str(), want[k].score());
    }
  }
}

void CheckTokenize(Server& server, const v1::TokenizeRequest& request) {
  const absl::StatusOr<v1::TokenizeResponse> response =
      server.classifier->Tokenize(request, absl::Now() + kDeadline);
  if (!response.ok()) {
    BERTSERVE_FUZZ_CHECK(Refusal(response.status()), "Tokenize: %s",
                         response.status().ToString().c_str());
    return;
  }
  BERTSERVE_FUZZ_CHECK(KnownModel(request.model()), "tokenized for model \"%s\"",
                       request.model().c_str());
  const int n = response->tokens_size();
  const int specials = request.input().text_pair().empty() ? 2 : 3;
  BERTSERVE_FUZZ_CHECK(n >= specials && n <= kMaxSequenceLength, "%d tokens", n);
  BERTSERVE_FUZZ_CHECK(response->tokens(0).token() == "[CLS]" &&
                           response->tokens(n - 1).token() == "[SEP]",
                       "not [CLS] ... [SEP]");
  for (const v1::Token& token : response->tokens()) {
    BERTSERVE_FUZZ_CHECK(token.id() >= 0 && token.id() < 9 && token.start() <= token.end() &&
                             (token.type_id() == 0 || token.type_id() == 1),
                         "token \"%s\" id %d [%d, %d) type %d", token.token().c_str(), token.id(),
                         token.start(), token.end(), token.type_id());
  }
}

}  // namespace
}  // namespace bertserve

// protobuf logs each string field that is not UTF-8; refusing it is the
// behaviour under test, the log line only slows the run down.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bertserve;  // NOLINT
  static Server server;
  if (size < 1) return 0;
  grpc::Slice slice(data + 1, size - 1);
  const grpc::ByteBuffer bytes(&slice, 1);
  if (data[0] % 2 == 0) {
    v1::ClassifyRequest request;
    const absl::Status parsed = grpcsvc::ParseRequest(bytes, &request);
    BERTSERVE_FUZZ_CHECK(parsed.ok() || absl::IsInvalidArgument(parsed), "ParseRequest: %s",
                         parsed.ToString().c_str());
    if (parsed.ok()) CheckClassify(server, request);
  } else {
    v1::TokenizeRequest request;
    const absl::Status parsed = grpcsvc::ParseRequest(bytes, &request);
    BERTSERVE_FUZZ_CHECK(parsed.ok() || absl::IsInvalidArgument(parsed), "ParseRequest: %s",
                         parsed.ToString().c_str());
    if (parsed.ok()) CheckTokenize(server, request);
  }
  return 0;
}
