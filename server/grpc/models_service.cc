#include "server/grpc/models_service.h"

#include "absl/time/time.h"

namespace bertserve::grpcsvc {

v1::ModelStatus ToModelStatus(const core::ModelInfo& info) {
  v1::ModelStatus status;
  status.set_name(info.name);
  status.set_state(static_cast<v1::ModelState>(info.state));
  status.set_device(info.device);
  status.set_weight_bytes(info.weight_bytes);
  status.set_last_error(info.last_error);
  status.set_num_labels(info.num_labels);
  for (const std::string& label : info.labels) status.add_labels(label);
  for (const std::string& input : info.inputs) status.add_inputs(input);
  *status.mutable_config() = info.config;
  if (info.last_used != absl::InfinitePast()) {
    status.set_last_used_unix_seconds(absl::ToDoubleSeconds(info.last_used - absl::UnixEpoch()));
  }
  return status;
}

namespace {

// The metrics label for a request naming `name`: only known models, so a
// client cannot grow the label set.
std::function<std::string(const std::string&)> LabelIfKnown(core::ModelRegistry* registry) {
  return [registry](const std::string& name) {
    return registry->Contains(name) ? name : std::string();
  };
}

}  // namespace

grpc::ServerUnaryReactor* ModelsService::List(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) {
  return RunUnary<v1::ListModelsRequest, v1::ListModelsResponse>(
      context, request, response, pool_, "Models.List", observer_,
      [](const v1::ListModelsRequest&) { return std::string(); },
      [this](const v1::ListModelsRequest&, absl::Time) -> absl::StatusOr<v1::ListModelsResponse> {
        v1::ListModelsResponse out;
        for (const core::ModelInfo& info : registry_->List()) *out.add_models() = ToModelStatus(info);
        return out;
      });
}

grpc::ServerUnaryReactor* ModelsService::Get(grpc::CallbackServerContext* context,
                                             const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) {
  auto label = LabelIfKnown(registry_);
  return RunUnary<v1::GetModelRequest, v1::ModelStatus>(
      context, request, response, pool_, "Models.Get", observer_,
      [label](const v1::GetModelRequest& r) { return label(r.name()); },
      [this](const v1::GetModelRequest& r, absl::Time) -> absl::StatusOr<v1::ModelStatus> {
        absl::StatusOr<core::ModelInfo> info = registry_->Get(r.name());
        if (!info.ok()) return info.status();
        return ToModelStatus(*info);
      });
}

grpc::ServerUnaryReactor* ModelsService::Load(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) {
  auto label = LabelIfKnown(registry_);
  return RunUnary<v1::LoadModelRequest, v1::ModelStatus>(
      context, request, response, pool_, "Models.Load", observer_,
      [label](const v1::LoadModelRequest& r) { return label(r.name()); },
      [this](const v1::LoadModelRequest& r, absl::Time) -> absl::StatusOr<v1::ModelStatus> {
        absl::StatusOr<core::ModelInfo> info = registry_->Load(r.name());
        if (!info.ok()) return info.status();
        return ToModelStatus(*info);
      });
}

grpc::ServerUnaryReactor* ModelsService::Unload(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) {
  auto label = LabelIfKnown(registry_);
  return RunUnary<v1::UnloadModelRequest, v1::ModelStatus>(
      context, request, response, pool_, "Models.Unload", observer_,
      [label](const v1::UnloadModelRequest& r) { return label(r.name()); },
      [this](const v1::UnloadModelRequest& r, absl::Time) -> absl::StatusOr<v1::ModelStatus> {
        absl::StatusOr<core::ModelInfo> info = registry_->Unload(r.name());
        if (!info.ok()) return info.status();
        return ToModelStatus(*info);
      });
}

}  // namespace bertserve::grpcsvc
