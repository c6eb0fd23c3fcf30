#include "server/grpc/v2_service.h"

#include <initializer_list>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/model_state.h"
#include "server/grpc/management_call.h"
#include "server/grpc/ordered_stream.h"
#include "server/grpc/v2_tensors.h"

namespace bertserve::grpcsvc {
namespace {

using inference::ModelMetadataResponse;

// Labels a model has before its first load: the config's, if it names them.
int64_t NumLabels(const core::ModelInfo& info) {
  if (info.num_labels > 0) return info.num_labels;
  if (info.config.labels_size() > 0) return info.config.labels_size();
  return -1;  // known once the model has been loaded
}

void AddTensor(ModelMetadataResponse* out, bool input, const char* name, const char* datatype,
               std::initializer_list<int64_t> shape) {
  ModelMetadataResponse::TensorMetadata* t = input ? out->add_inputs() : out->add_outputs();
  t->set_name(name);
  t->set_datatype(datatype);
  for (int64_t d : shape) t->add_shape(d);
}

// bertserve models have a single version; "1" names it for clients that
// insist on one.
absl::Status CheckVersion(const std::string& version) {
  if (version.empty() || version == "1") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "version is \"", version, "\"; bertserve models have one version: send \"\" or \"1\""));
}

template <typename Request>
std::string ModelNameOf(const Request& request) {
  return request.model_name();
}

// Triton's words for a model's state; bertserve's own goes in the reason.
void SetIndexState(const core::ModelInfo& info,
                   inference::RepositoryIndexResponse::ModelIndex* out) {
  const std::string state(core::ModelStateName(info.state));
  switch (info.state) {
    case core::ModelState::kReady:
      out->set_state("READY");
      return;
    case core::ModelState::kLoading:
    case core::ModelState::kPlacing:
      out->set_state("LOADING");
      out->set_reason(state);
      return;
    case core::ModelState::kFailed:
      out->set_state("UNAVAILABLE");
      out->set_reason(absl::StrCat(state, ": ", info.last_error));
      return;
    default:
      // HOST, EVICTING, UNLOADED: served all the same, placed on demand.
      out->set_state("UNAVAILABLE");
      out->set_reason(absl::StrCat(state, ": an inference request places it"));
      return;
  }
}

}  // namespace

inference::ModelMetadataResponse ToModelMetadata(const core::ModelInfo& info) {
  ModelMetadataResponse out;
  out.set_name(info.name);
  out.add_versions("1");
  out.set_platform("pytorch_libtorch");
  const int64_t labels = NumLabels(info);
  AddTensor(&out, true, v2::kText, "BYTES", {-1});
  AddTensor(&out, true, v2::kTextPair, "BYTES", {-1});
  AddTensor(&out, true, v2::kInputIds, "INT64", {-1, -1});
  AddTensor(&out, true, v2::kAttentionMask, "INT64", {-1, -1});
  AddTensor(&out, true, v2::kTokenTypeIds, "INT64", {-1, -1});
  AddTensor(&out, false, v2::kLogits, "FP32", {-1, labels});
  AddTensor(&out, false, v2::kProbabilities, "FP32", {-1, labels});
  AddTensor(&out, false, v2::kLabel, "BYTES", {-1});
  return out;
}

inference::ModelConfig ToTritonModelConfig(const core::ModelInfo& info) {
  inference::ModelConfig config;
  config.set_name(info.name);
  config.set_platform("pytorch_libtorch");
  config.set_backend("pytorch");
  config.set_max_batch_size(info.config.batch().max_client_batch_size());
  // A text per batch item: dims [1] (clients send [batch, 1]), seen as
  // [batch]. A request carries texts or token ids, never both: TEXT is the
  // one input Triton's tools (which make data for every input that is not
  // optional) must send; the others are optional.
  for (const char* name : {v2::kText, v2::kTextPair}) {
    inference::ModelInput* input = config.add_input();
    input->set_name(name);
    input->set_data_type(inference::TYPE_STRING);
    input->add_dims(1);
    input->mutable_reshape();
    input->set_optional(absl::string_view(name) == v2::kTextPair);
  }
  for (const char* name : {v2::kInputIds, v2::kAttentionMask, v2::kTokenTypeIds}) {
    inference::ModelInput* input = config.add_input();
    input->set_name(name);
    input->set_data_type(inference::TYPE_INT64);
    input->add_dims(-1);
    input->set_allow_ragged_batch(true);
    input->set_optional(true);
  }
  const int64_t labels = NumLabels(info);
  for (const char* name : {v2::kLogits, v2::kProbabilities}) {
    inference::ModelOutput* output = config.add_output();
    output->set_name(name);
    output->set_data_type(inference::TYPE_FP32);
    output->add_dims(labels);
  }
  inference::ModelOutput* label = config.add_output();
  label->set_name(v2::kLabel);
  label->set_data_type(inference::TYPE_STRING);
  label->add_dims(1);
  label->mutable_reshape();
  config.mutable_dynamic_batching()->set_max_queue_delay_microseconds(
      static_cast<uint64_t>(info.config.batch().max_queue_delay_us()));
  return config;
}

std::string V2InferenceService::ModelLabel(const std::string& name) const {
  return registry_->Contains(name) ? name : std::string();
}

grpc::ServerUnaryReactor* V2InferenceService::ServerLive(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  return RunUnary<inference::ServerLiveRequest, inference::ServerLiveResponse>(
      context, request, response, pool_, "v2.ServerLive", observer_,
      [](const inference::ServerLiveRequest&) { return std::string(); },
      [this](const inference::ServerLiveRequest&,
             absl::Time) -> absl::StatusOr<inference::ServerLiveResponse> {
        inference::ServerLiveResponse out;
        out.set_live(health_->IsServing(kLivenessService));
        return out;
      });
}

grpc::ServerUnaryReactor* V2InferenceService::ServerReady(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  return RunUnary<inference::ServerReadyRequest, inference::ServerReadyResponse>(
      context, request, response, pool_, "v2.ServerReady", observer_,
      [](const inference::ServerReadyRequest&) { return std::string(); },
      [this](const inference::ServerReadyRequest&,
             absl::Time) -> absl::StatusOr<inference::ServerReadyResponse> {
        inference::ServerReadyResponse out;
        out.set_ready(health_->IsServing(kReadinessService));
        return out;
      });
}

grpc::ServerUnaryReactor* V2InferenceService::ServerMetadata(grpc::CallbackServerContext* context,
                                                             const grpc::ByteBuffer* request,
                                                             grpc::ByteBuffer* response) {
  return RunUnary<inference::ServerMetadataRequest, inference::ServerMetadataResponse>(
      context, request, response, pool_, "v2.ServerMetadata", observer_,
      [](const inference::ServerMetadataRequest&) { return std::string(); },
      [this](const inference::ServerMetadataRequest&,
             absl::Time) -> absl::StatusOr<inference::ServerMetadataResponse> {
        inference::ServerMetadataResponse out;
        out.set_name("bertserve");
        out.set_version(version_);
        for (const char* e : {"model_repository", "model_configuration", "parameters"}) {
          out.add_extensions(e);
        }
        return out;
      },
      ReadCall<inference::ServerMetadataRequest>(context, access_));
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* V2InferenceService::DescribeModel(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response, absl::string_view method,
    std::function<Response(const core::ModelInfo&)> describe) {
  return RunUnary<Request, Response>(
      context, request, response, pool_, method, observer_,
      [this](const Request& r) { return ModelLabel(r.name()); },
      [this, describe](const Request& r, absl::Time) -> absl::StatusOr<Response> {
        if (absl::Status s = CheckVersion(r.version()); !s.ok()) return s;
        absl::StatusOr<core::ModelInfo> info = registry_->Get(r.name());
        if (!info.ok()) return info.status();
        return describe(*info);
      },
      ReadCall<Request>(context, access_));
}

grpc::ServerUnaryReactor* V2InferenceService::ModelReady(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  return DescribeModel<inference::ModelReadyRequest, inference::ModelReadyResponse>(
      context, request, response, "v2.ModelReady", [](const core::ModelInfo& info) {
        inference::ModelReadyResponse out;
        out.set_ready(info.state == core::ModelState::kReady);
        return out;
      });
}

grpc::ServerUnaryReactor* V2InferenceService::ModelMetadata(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  return DescribeModel<inference::ModelMetadataRequest, inference::ModelMetadataResponse>(
      context, request, response, "v2.ModelMetadata", ToModelMetadata);
}

grpc::ServerUnaryReactor* V2InferenceService::ModelConfig(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  return DescribeModel<inference::ModelConfigRequest, inference::ModelConfigResponse>(
      context, request, response, "v2.ModelConfig", [](const core::ModelInfo& info) {
        inference::ModelConfigResponse out;
        *out.mutable_config() = ToTritonModelConfig(info);
        return out;
      });
}

void V2InferenceService::Infer(
    const inference::ModelInferRequest& request, absl::Time received, absl::Time deadline,
    std::function<void(absl::StatusOr<inference::ModelInferResponse>)> respond) const {
  absl::StatusOr<v2::DecodedRequest> decoded = v2::DecodeInferRequest(request);
  if (!decoded.ok()) return respond(decoded.status());
  absl::StatusOr<v2::OutputPlan> plan = v2::PlanOutputs(request);
  if (!plan.ok()) return respond(plan.status());
  classifier_->ClassifyRowsAsync(
      decoded->request, std::move(decoded->tokens), received, deadline,
      [model = request.model_name(), id = request.id(), outputs = *std::move(plan),
       top_k = decoded->request.top_k(), respond](absl::StatusOr<core::ClassifiedRows> rows) {
        if (!rows.ok()) return respond(rows.status());
        respond(v2::EncodeInferResponse(model, id, outputs, top_k, *rows));
      });
}

grpc::ServerUnaryReactor* V2InferenceService::ModelInfer(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  CallOptions<inference::ModelInferRequest> options;
  options.request_id = [](const inference::ModelInferRequest& r) { return r.id(); };
  options.refusal = access_->Check(*context, CallKind::kInference);
  return RunUnaryAsync<inference::ModelInferRequest, inference::ModelInferResponse>(
      context, request, response, pool_, "v2.ModelInfer", observer_,
      [this](const inference::ModelInferRequest& r) { return ModelLabel(r.model_name()); },
      [this](const inference::ModelInferRequest& r, absl::Time received, absl::Time deadline,
             std::function<void(absl::StatusOr<inference::ModelInferResponse>)> respond) {
        Infer(r, received, deadline, std::move(respond));
      },
      std::move(options));
}

// Triton's stream answers carry a message, not a code: an error answers
// with error_message and, so that clients can match it, the model and id.
void V2InferenceService::StreamMessage(const grpc::ByteBuffer& bytes, absl::Time received,
                                       absl::Time deadline,
                                       std::function<void(grpc::ByteBuffer)> answer) const {
  auto request = std::make_shared<inference::ModelInferRequest>();
  auto complete = [this, received, request,
                   answer](const std::string& model,
                           absl::StatusOr<inference::ModelInferResponse> response) {
    inference::ModelStreamInferResponse out;
    const absl::Status status = response.status();
    if (response.ok()) {
      *out.mutable_infer_response() = *std::move(response);
    } else {
      out.set_error_message(std::string(status.message()));
      out.mutable_infer_response()->set_model_name(request->model_name());
      out.mutable_infer_response()->set_id(request->id());
    }
    if (observer_ != nullptr && *observer_) {
      (*observer_)(model, "v2.ModelStreamInfer", ToGrpcStatus(status),
                   absl::ToDoubleSeconds(absl::Now() - received), request->id());
    }
    grpc::ByteBuffer serialized;
    (void)SerializeResponse(out, &serialized);
    answer(std::move(serialized));
  };
  if (absl::Status parsed = ParseRequest(bytes, request.get()); !parsed.ok()) {
    return complete("", parsed);
  }
  const std::string model = ModelLabel(request->model_name());
  if (draining_.load()) {
    return complete(model,
                    absl::UnavailableError("the server is draining; send to another replica"));
  }
  Infer(*request, received, deadline,
        [complete, model](absl::StatusOr<inference::ModelInferResponse> response) {
          complete(model, std::move(response));
        });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* V2InferenceService::ModelStreamInfer(
    grpc::CallbackServerContext* context) {
  return OpenOrderedStream(
      context, access_->Check(*context, CallKind::kInference), observer_,
      "v2.ModelStreamInfer", pool_,
      [this](const grpc::ByteBuffer& bytes, absl::Time received, absl::Time deadline,
             std::function<void(grpc::ByteBuffer)> answer) {
        StreamMessage(bytes, received, deadline, std::move(answer));
      });
}

grpc::ServerUnaryReactor* V2InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return RunUnary<inference::RepositoryIndexRequest, inference::RepositoryIndexResponse>(
      context, request, response, pool_, "v2.RepositoryIndex", observer_,
      [](const inference::RepositoryIndexRequest&) { return std::string(); },
      [this](const inference::RepositoryIndexRequest& r,
             absl::Time) -> absl::StatusOr<inference::RepositoryIndexResponse> {
        inference::RepositoryIndexResponse out;
        for (const core::ModelInfo& info : registry_->List()) {
          if (r.ready() && info.state != core::ModelState::kReady) continue;
          inference::RepositoryIndexResponse::ModelIndex* model = out.add_models();
          model->set_name(info.name);
          model->set_version("1");
          SetIndexState(info, model);
        }
        return out;
      },
      ReadCall<inference::RepositoryIndexRequest>(context, access_));
}

grpc::ServerUnaryReactor* V2InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  using Request = inference::RepositoryModelLoadRequest;
  using Response = inference::RepositoryModelLoadResponse;
  // As Models.Load: answered once the model is READY or failed, without a
  // thread held meanwhile.
  return RunUnaryAsync<Request, Response>(
      context, request, response, pool_, "v2.RepositoryModelLoad", observer_,
      [this](const Request& r) { return ModelLabel(r.model_name()); },
      [this](const Request& r, absl::Time, absl::Time deadline,
             std::function<void(absl::StatusOr<Response>)> respond) {
        registry_->LoadAsync(r.model_name(), deadline,
                             [respond](absl::StatusOr<core::ModelInfo> info) {
                               if (!info.ok()) return respond(info.status());
                               respond(Response());
                             });
      },
      ManagementCall<Request>(context, access_, "v2.RepositoryModelLoad", listener_,
                              ModelNameOf<Request>));
}

grpc::ServerUnaryReactor* V2InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  using Request = inference::RepositoryModelUnloadRequest;
  using Response = inference::RepositoryModelUnloadResponse;
  return RunUnaryAsync<Request, Response>(
      context, request, response, pool_, "v2.RepositoryModelUnload", observer_,
      [this](const Request& r) { return ModelLabel(r.model_name()); },
      [this](const Request& r, absl::Time, absl::Time deadline,
             std::function<void(absl::StatusOr<Response>)> respond) {
        registry_->UnloadAsync(r.model_name(), deadline,
                               [respond](absl::StatusOr<core::ModelInfo> info) {
                                 if (!info.ok()) return respond(info.status());
                                 respond(Response());
                               });
      },
      ManagementCall<Request>(context, access_, "v2.RepositoryModelUnload", listener_,
                              ModelNameOf<Request>));
}

}  // namespace bertserve::grpcsvc
