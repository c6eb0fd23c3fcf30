#ifndef BERTSERVE_SERVER_GRPC_V2_SERVICE_H_
#define BERTSERVE_SERVER_GRPC_V2_SERVICE_H_

#include <functional>
#include <string>

#include "inference/grpc_service.grpc.pb.h"
#include "server/core/classifier.h"
#include "server/core/model_registry.h"
#include "server/core/worker_pool.h"
#include "server/grpc/access_control.h"
#include "server/grpc/health_service.h"
#include "server/grpc/unary_call.h"

namespace bertserve::grpcsvc {

namespace v2_detail {
using inference::GRPCInferenceService;
// Every method served raw, so that requests are parsed by ParseRequest and
// run on the worker pool like bertserve.v1's.
using Base = GRPCInferenceService::WithRawCallbackMethod_ServerLive<
    GRPCInferenceService::WithRawCallbackMethod_ServerReady<
        GRPCInferenceService::WithRawCallbackMethod_ModelReady<
            GRPCInferenceService::WithRawCallbackMethod_ServerMetadata<
                GRPCInferenceService::WithRawCallbackMethod_ModelMetadata<
                    GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
                        GRPCInferenceService::WithRawCallbackMethod_ModelConfig<
                            GRPCInferenceService::WithRawCallbackMethod_RepositoryIndex<
                                GRPCInferenceService::WithRawCallbackMethod_RepositoryModelLoad<
                                    GRPCInferenceService::WithRawCallbackMethod_RepositoryModelUnload<
                                        GRPCInferenceService::Service>>>>>>>>>>;
}  // namespace v2_detail

// inference.GRPCInferenceService, the Open Inference Protocol (KServe v2)
// with Triton's model configuration and repository calls, over the same
// registry, classifier, health and access control as bertserve.v1:
//  - ServerLive / ServerReady answer what grpc.health.v1 answers for
//    liveness and readiness (never checked against access control);
//  - ModelInfer decodes the tensors (v2_tensors.h) and runs
//    Classifier::ClassifyRowsAsync, so it shares Classify's checks, error
//    codes and messages, batching, deadlines, and the placement of a model
//    that is not READY (the request waits for it within its deadline);
//  - ModelReady, ModelMetadata, ModelConfig and RepositoryIndex read the
//    registry (CallKind::kInference);
//  - RepositoryModelLoad / Unload are Models.Load / Unload
//    (CallKind::kManagement, audited the same way).
// Metrics and logs see each call as method "v2.<Method>". Thread-safe.
class V2InferenceService final : public v2_detail::Base {
 public:
  // All pointers must outlive the service. `version` is the server's, for
  // ServerMetadata; `listener` names the listener in audit events.
  V2InferenceService(core::Classifier* classifier, core::ModelRegistry* registry,
                     core::WorkerPool* pool, const HealthService* health,
                     const CallObserver* observer, const AccessControl* access,
                     std::string version, std::string listener)
      : classifier_(classifier),
        registry_(registry),
        pool_(pool),
        health_(health),
        observer_(observer),
        access_(access),
        version_(std::move(version)),
        listener_(std::move(listener)) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request,
                                                  grpc::ByteBuffer* response) override;

 private:
  // The metrics label: the name if it is a known model, else "".
  std::string ModelLabel(const std::string& name) const;
  // A call about one model (Request has `name` and `version`): answered with
  // `describe` of the model's registry snapshot.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* DescribeModel(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response, absl::string_view method,
      std::function<Response(const core::ModelInfo&)> describe);

  core::Classifier* const classifier_;
  core::ModelRegistry* const registry_;
  core::WorkerPool* const pool_;
  const HealthService* const health_;
  const CallObserver* const observer_;
  const AccessControl* const access_;
  const std::string version_;
  const std::string listener_;
};

// A registry snapshot as the v2 ModelMetadata and as Triton's ModelConfig.
inference::ModelMetadataResponse ToModelMetadata(const core::ModelInfo& info);
inference::ModelConfig ToTritonModelConfig(const core::ModelInfo& info);

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_V2_SERVICE_H_
