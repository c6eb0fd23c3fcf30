#ifndef BERTSERVE_SERVER_GRPC_INFERENCE_SERVICE_H_
#define BERTSERVE_SERVER_GRPC_INFERENCE_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "bertserve/v1/inference.grpc.pb.h"
#include "server/core/classifier.h"
#include "server/core/model_registry.h"
#include "server/core/worker_pool.h"
#include "server/grpc/access_control.h"
#include "server/grpc/unary_call.h"

namespace bertserve::grpcsvc {

// bertserve.v1.Inference. Requests are parsed by us (see ParseRequest) and run
// on the worker pool; stream answers keep request order (StartOrderedStream).
class InferenceService final
    : public v1::Inference::WithRawCallbackMethod_Classify<
          v1::Inference::WithRawCallbackMethod_ClassifyStream<
              v1::Inference::WithRawCallbackMethod_Tokenize<v1::Inference::Service>>> {
 public:
  // All pointers must outlive the service. Every call is checked against
  // `access` as CallKind::kInference.
  InferenceService(core::Classifier* classifier, core::ModelRegistry* registry,
                   core::WorkerPool* pool, const CallObserver* observer,
                   const AccessControl* access)
      : classifier_(classifier),
        registry_(registry),
        pool_(pool),
        observer_(observer),
        access_(access) {}

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClassifyStream(
      grpc::CallbackServerContext* context) override;

  // From now on, new messages on open streams are answered UNAVAILABLE
  // (new calls are refused by the gRPC server's own shutdown).
  void StartDraining() { draining_.store(true); }

 private:
  std::string ModelLabel(const std::string& name) const;
  // Answers one ClassifyStream message (a StreamHandler).
  void StreamMessage(const grpc::ByteBuffer& bytes, absl::Time received, absl::Time deadline,
                     std::function<void(grpc::ByteBuffer)> answer) const;

  core::Classifier* const classifier_;
  core::ModelRegistry* const registry_;
  core::WorkerPool* const pool_;
  const CallObserver* const observer_;
  const AccessControl* const access_;
  std::atomic<bool> draining_{false};
};

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_INFERENCE_SERVICE_H_
