#include "server/grpc/inference_service.h"

#include <utility>

#include "server/grpc/ordered_stream.h"

namespace bertserve::grpcsvc {

std::string InferenceService::ModelLabel(const std::string& name) const {
  return registry_->Contains(name) ? name : std::string();
}

grpc::ServerUnaryReactor* InferenceService::Classify(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  CallOptions<v1::ClassifyRequest> options;
  options.request_id = [](const v1::ClassifyRequest& r) { return r.request_id(); };
  options.refusal = access_->Check(*context, CallKind::kInference);
  return RunUnaryAsync<v1::ClassifyRequest, v1::ClassifyResponse>(
      context, request, response, pool_, "Classify", observer_,
      [this](const v1::ClassifyRequest& r) { return ModelLabel(r.model()); },
      [this](const v1::ClassifyRequest& r, absl::Time received, absl::Time deadline,
             std::function<void(absl::StatusOr<v1::ClassifyResponse>)> respond) {
        classifier_->ClassifyAsync(r, received, deadline, std::move(respond));
      },
      std::move(options));
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  CallOptions<v1::TokenizeRequest> options;
  options.refusal = access_->Check(*context, CallKind::kInference);
  return RunUnaryAsync<v1::TokenizeRequest, v1::TokenizeResponse>(
      context, request, response, pool_, "Tokenize", observer_,
      [this](const v1::TokenizeRequest& r) { return ModelLabel(r.model()); },
      [this](const v1::TokenizeRequest& r, absl::Time, absl::Time deadline,
             std::function<void(absl::StatusOr<v1::TokenizeResponse>)> respond) {
        classifier_->TokenizeAsync(r, deadline, std::move(respond));
      },
      std::move(options));
}

// One ClassifyStream message: parsed, refused while draining (messages
// already taken are answered), else classified; the answer carries the
// error, if any, so the stream goes on.
void InferenceService::StreamMessage(const grpc::ByteBuffer& bytes, absl::Time received,
                                     absl::Time deadline,
                                     std::function<void(grpc::ByteBuffer)> answer) const {
  auto complete = [this, received, answer](const std::string& model,
                                           const std::string& request_id,
                                           absl::StatusOr<v1::ClassifyResponse> response) {
    v1::ClassifyStreamResponse out;
    out.set_request_id(request_id);
    const absl::Status status = response.status();
    if (response.ok()) *out.mutable_response() = *std::move(response);
    out.set_error_code(static_cast<int32_t>(status.code()));
    out.set_error_message(std::string(status.message()));
    if (observer_ != nullptr && *observer_) {
      (*observer_)(model, "ClassifyStream", ToGrpcStatus(status),
                   absl::ToDoubleSeconds(absl::Now() - received), request_id);
    }
    grpc::ByteBuffer serialized;
    (void)SerializeResponse(out, &serialized);
    answer(std::move(serialized));
  };
  v1::ClassifyRequest request;
  absl::Status status = ParseRequest(bytes, &request);
  if (!status.ok()) return complete("", "", status);
  std::string model = ModelLabel(request.model());
  std::string request_id = request.request_id();
  if (draining_.load()) {
    return complete(model, request_id,
                    absl::UnavailableError("the server is draining; send to another replica"));
  }
  classifier_->ClassifyAsync(
      request, received, deadline,
      [complete, model, request_id](absl::StatusOr<v1::ClassifyResponse> response) {
        complete(model, request_id, std::move(response));
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferenceService::ClassifyStream(
    grpc::CallbackServerContext* context) {
  return OpenOrderedStream(
      context, access_->Check(*context, CallKind::kInference), observer_, "ClassifyStream", pool_,
      [this](const grpc::ByteBuffer& bytes, absl::Time received, absl::Time deadline,
             std::function<void(grpc::ByteBuffer)> answer) {
        StreamMessage(bytes, received, deadline, std::move(answer));
      });
}

}  // namespace bertserve::grpcsvc
