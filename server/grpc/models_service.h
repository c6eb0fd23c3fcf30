#ifndef BERTSERVE_SERVER_GRPC_MODELS_SERVICE_H_
#define BERTSERVE_SERVER_GRPC_MODELS_SERVICE_H_

#include <string>

#include "bertserve/v1/models.grpc.pb.h"
#include "absl/container/flat_hash_map.h"
#include "server/core/model_registry.h"
#include "server/core/worker_pool.h"
#include "server/grpc/access_control.h"
#include "server/grpc/unary_call.h"

namespace bertserve::grpcsvc {

// Work queued for a model, by device (core::Batcher::Queued).
using QueuedWorkFn = core::ModelRegistry::QueueProbe;

// Converts a registry snapshot to the API message; `queued` (may be empty)
// fills each copy's queue.
v1::ModelStatus ToModelStatus(const core::ModelInfo& info, const QueuedWorkFn& queued = nullptr);
// Device `index` of `memory` (0 for the first).
v1::DeviceStatus ToDeviceStatus(const core::MemorySnapshot& memory, size_t index);

// bertserve.v1.Models over the registry. Every call runs on the worker pool,
// never on a gRPC thread, and none holds a thread while a placement runs.
// List and Get are checked against `access` as CallKind::kInference, Load and
// Unload as kManagement; each Load and Unload, refused or not, is logged once
// as an audit event (method, model, listener, peer, client certificate
// subject, outcome).
class ModelsService final
    : public v1::Models::WithRawCallbackMethod_List<v1::Models::WithRawCallbackMethod_Get<
          v1::Models::WithRawCallbackMethod_Load<
              v1::Models::WithRawCallbackMethod_Unload<v1::Models::Service>>>> {
 public:
  // All pointers must outlive the service. `listener` names the listener in
  // audit events ("grpc", "admin"); `queued` (may be empty) gives each
  // device copy's queue.
  ModelsService(core::ModelRegistry* registry, core::WorkerPool* pool,
                const CallObserver* observer, const AccessControl* access,
                std::string listener, QueuedWorkFn queued = nullptr)
      : registry_(registry),
        pool_(pool),
        observer_(observer),
        access_(access),
        listener_(std::move(listener)),
        queued_(std::move(queued)) {}

  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* request,
                                grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Load(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Unload(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;

 private:
  core::ModelRegistry* const registry_;
  core::WorkerPool* const pool_;
  const CallObserver* const observer_;
  const AccessControl* const access_;
  const std::string listener_;
  const QueuedWorkFn queued_;
};

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_MODELS_SERVICE_H_
