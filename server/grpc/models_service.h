#ifndef BERTSERVE_SERVER_GRPC_MODELS_SERVICE_H_
#define BERTSERVE_SERVER_GRPC_MODELS_SERVICE_H_

#include "bertserve/v1/models.grpc.pb.h"
#include "server/core/model_registry.h"
#include "server/core/worker_pool.h"
#include "server/grpc/unary_call.h"

namespace bertserve::grpcsvc {

// Converts a registry snapshot to the API message.
v1::ModelStatus ToModelStatus(const core::ModelInfo& info);
v1::DeviceStatus ToDeviceStatus(const core::MemorySnapshot& memory);

// bertserve.v1.Models over the registry. Load and Unload block on placement,
// so every call runs on the worker pool, never on a gRPC thread.
class ModelsService final
    : public v1::Models::WithRawCallbackMethod_List<v1::Models::WithRawCallbackMethod_Get<
          v1::Models::WithRawCallbackMethod_Load<
              v1::Models::WithRawCallbackMethod_Unload<v1::Models::Service>>>> {
 public:
  // All pointers must outlive the service.
  ModelsService(core::ModelRegistry* registry, core::WorkerPool* pool,
                const CallObserver* observer)
      : registry_(registry), pool_(pool), observer_(observer) {}

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
};

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_MODELS_SERVICE_H_
