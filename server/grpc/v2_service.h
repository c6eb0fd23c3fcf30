#ifndef BERTSERVE_SERVER_GRPC_V2_SERVICE_H_
#define BERTSERVE_SERVER_GRPC_V2_SERVICE_H_

#include <atomic>
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
template <typename B>
using RawServerLive = GRPCInferenceService::WithRawCallbackMethod_ServerLive<B>;
template <typename B>
using RawServerReady = GRPCInferenceService::WithRawCallbackMethod_ServerReady<B>;
template <typename B>
using RawModelReady = GRPCInferenceService::WithRawCallbackMethod_ModelReady<B>;
template <typename B>
using RawServerMetadata = GRPCInferenceService::WithRawCallbackMethod_ServerMetadata<B>;
template <typename B>
using RawModelMetadata = GRPCInferenceService::WithRawCallbackMethod_ModelMetadata<B>;
template <typename B>
using RawModelInfer = GRPCInferenceService::WithRawCallbackMethod_ModelInfer<B>;
template <typename B>
using RawModelStreamInfer = GRPCInferenceService::WithRawCallbackMethod_ModelStreamInfer<B>;
template <typename B>
using RawModelConfig = GRPCInferenceService::WithRawCallbackMethod_ModelConfig<B>;
template <typename B>
using RawRepositoryIndex = GRPCInferenceService::WithRawCallbackMethod_RepositoryIndex<B>;
template <typename B>
using RawRepositoryModelLoad = GRPCInferenceService::WithRawCallbackMethod_RepositoryModelLoad<B>;
template <typename B>
using RawRepositoryModelUnload =
    GRPCInferenceService::WithRawCallbackMethod_RepositoryModelUnload<B>;
using Base = RawServerLive<RawServerReady<RawModelReady<RawServerMetadata<RawModelMetadata<
    RawModelInfer<RawModelStreamInfer<RawModelConfig<RawRepositoryIndex<RawRepositoryModelLoad<
    RawRepositoryModelUnload<GRPCInferenceService::Service>>>>>>>>>>>;
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
//    ModelStreamInfer does the same per message, answering in request order
//    as ClassifyStream does (StartOrderedStream);
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
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override;
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

  // From now on, new messages on open streams are answered with an error
  // (new calls are refused by the gRPC server's own shutdown).
  void StartDraining() { draining_.store(true); }

 private:
  // The metrics label: the name if it is a known model, else "".
  std::string ModelLabel(const std::string& name) const;
  // Decodes `request` and classifies it; `respond` runs exactly once.
  void Infer(const inference::ModelInferRequest& request, absl::Time received,
             absl::Time deadline,
             std::function<void(absl::StatusOr<inference::ModelInferResponse>)> respond) const;
  // Answers one ModelStreamInfer message (a StreamHandler).
  void StreamMessage(const grpc::ByteBuffer& bytes, absl::Time received, absl::Time deadline,
                     std::function<void(grpc::ByteBuffer)> answer) const;
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
  std::atomic<bool> draining_{false};
};

// A registry snapshot as the v2 ModelMetadata and as Triton's ModelConfig.
inference::ModelMetadataResponse ToModelMetadata(const core::ModelInfo& info);
inference::ModelConfig ToTritonModelConfig(const core::ModelInfo& info);

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_V2_SERVICE_H_
