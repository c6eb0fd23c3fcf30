#include "server/grpc/models_service.h"

#include "absl/time/time.h"
#include "server/grpc/management_call.h"

namespace bertserve::grpcsvc {

v1::ModelStatus ToModelStatus(const core::ModelInfo& info, const QueuedWorkFn& queued) {
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
  if (info.device_bytes > 0) {
    status.set_tier("device");
  } else if (info.host_bytes > 0) {
    status.set_tier("host");
  }
  status.set_device_bytes(info.device_bytes);
  status.set_host_bytes(info.host_bytes);
  status.set_activation_reserve_bytes(info.activation_reserve);
  status.set_activation_reserve_measured(info.reserve_measured);
  status.set_in_use(info.in_use);
  status.set_batch_token_limit(info.batch_token_limit);
  status.set_placements_free(info.placed_free);
  status.set_placements_evict(info.placed_evict);
  status.set_placements_wait(info.placed_wait);
  absl::flat_hash_map<std::string, core::QueuedWork> waiting;
  if (queued && !info.copies.empty()) waiting = queued(info.name);
  for (const core::ModelCopy& copy : info.copies) {
    v1::ModelCopy* out = status.add_copies();
    out->set_device(copy.device);
    out->set_device_bytes(copy.device_bytes);
    out->set_in_use(copy.in_use);
    out->set_replica(copy.replica);
    out->set_state(static_cast<v1::ModelState>(copy.state));
    if (auto it = waiting.find(copy.device); it != waiting.end()) {
      out->set_queued_inputs(it->second.inputs);
      out->set_queued_tokens(it->second.tokens);
    }
  }
  status.set_loads(info.loads);
  status.set_swap_ins(info.swap_ins);
  status.set_evictions(info.evictions);
  status.set_unloads(info.unloads);
  status.set_last_load_seconds(info.last_load_seconds);
  status.set_last_swap_in_seconds(info.last_swap_in_seconds);
  if (info.last_used != absl::InfinitePast()) {
    status.set_last_used_unix_seconds(absl::ToDoubleSeconds(info.last_used - absl::UnixEpoch()));
  }
  return status;
}

v1::DeviceStatus ToDeviceStatus(const core::MemorySnapshot& m, size_t index) {
  const core::DeviceSnapshot& device = m.devices.at(index);
  v1::DeviceStatus d;
  d.set_name(device.device);
  d.set_total_bytes(device.memory.total_bytes);
  d.set_free_bytes(device.memory.free_bytes);
  d.set_budget_bytes(device.budget);
  d.set_reserved_bytes(device.reserved);
  d.set_allocator_allocated_bytes(device.memory.allocated_bytes);
  d.set_allocator_reserved_bytes(device.memory.reserved_bytes);
  d.set_allocator_peak_bytes(device.memory.peak_bytes);
  d.set_host_bytes(m.host_bytes);
  d.set_host_budget_bytes(m.host_budget);
  d.set_placement_queue_depth(static_cast<int32_t>(m.placement_queue_depth));
  d.set_resident_models(device.resident_models);
  d.set_lost(device.lost);
  return d;
}

namespace {

// The metrics label for a request naming `name`: only known models, so a
// client cannot grow the label set.
std::function<std::string(const std::string&)> LabelIfKnown(core::ModelRegistry* registry) {
  return [registry](const std::string& name) {
    return registry->Contains(name) ? name : std::string();
  };
}

// The registry's answer as the API's.
core::ModelRegistry::InfoCallback ToStatusAnswer(
    std::function<void(absl::StatusOr<v1::ModelStatus>)> respond, QueuedWorkFn queued) {
  return [respond = std::move(respond),
          queued = std::move(queued)](absl::StatusOr<core::ModelInfo> info) {
    if (!info.ok()) return respond(info.status());
    respond(ToModelStatus(*info, queued));
  };
}

template <typename Request>
std::string NameOf(const Request& request) {
  return request.name();
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
        for (const core::ModelInfo& info : registry_->List()) *out.add_models() = ToModelStatus(info, queued_);
        const core::MemorySnapshot memory = registry_->Memory();
        for (size_t i = 0; i < memory.devices.size(); ++i) {
          *out.add_devices() = ToDeviceStatus(memory, i);
        }
        *out.mutable_device() = out.devices(0);
        return out;
      },
      ReadCall<v1::ListModelsRequest>(context, access_));
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
        return ToModelStatus(*info, queued_);
      },
      ReadCall<v1::GetModelRequest>(context, access_));
}

grpc::ServerUnaryReactor* ModelsService::Load(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) {
  auto label = LabelIfKnown(registry_);
  // Neither call holds a thread while its placement runs: the registry calls
  // back when it is done, or at the call's deadline.
  return RunUnaryAsync<v1::LoadModelRequest, v1::ModelStatus>(
      context, request, response, pool_, "Models.Load", observer_,
      [label](const v1::LoadModelRequest& r) { return label(r.name()); },
      [this](const v1::LoadModelRequest& r, absl::Time, absl::Time deadline,
             std::function<void(absl::StatusOr<v1::ModelStatus>)> respond) {
        registry_->LoadAsync(r.name(), deadline, ToStatusAnswer(std::move(respond), queued_));
      },
      ManagementCall<v1::LoadModelRequest>(context, access_, "Models.Load", listener_,
                                           NameOf<v1::LoadModelRequest>));
}

grpc::ServerUnaryReactor* ModelsService::Unload(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) {
  auto label = LabelIfKnown(registry_);
  return RunUnaryAsync<v1::UnloadModelRequest, v1::ModelStatus>(
      context, request, response, pool_, "Models.Unload", observer_,
      [label](const v1::UnloadModelRequest& r) { return label(r.name()); },
      [this](const v1::UnloadModelRequest& r, absl::Time, absl::Time deadline,
             std::function<void(absl::StatusOr<v1::ModelStatus>)> respond) {
        registry_->UnloadAsync(r.name(), deadline, ToStatusAnswer(std::move(respond), queued_));
      },
      ManagementCall<v1::UnloadModelRequest>(context, access_, "Models.Unload", listener_,
                                             NameOf<v1::UnloadModelRequest>));
}

}  // namespace bertserve::grpcsvc
