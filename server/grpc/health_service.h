#ifndef BERTSERVE_SERVER_GRPC_HEALTH_SERVICE_H_
#define BERTSERVE_SERVER_GRPC_HEALTH_SERVICE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace bertserve::grpcsvc {

// Service names the server answers for.
inline constexpr char kLivenessService[] = "";          // the process works
inline constexpr char kReadinessService[] = "readiness";  // startup models are READY

// grpc.health.v1.Health with explicit states, so that readiness is NOT_SERVING
// from the first probe until the server says otherwise (gRPC's built-in
// service reports SERVING as soon as the port opens). Unknown service names:
// Check is NOT_FOUND, Watch reports SERVICE_UNKNOWN. Thread-safe.
class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  HealthService();
  ~HealthService() override;

  void SetServing(const std::string& service, bool serving) ABSL_LOCKS_EXCLUDED(mu_);
  // What Check would answer for `service`: true only for SERVING.
  bool IsServing(const std::string& service) const ABSL_LOCKS_EXCLUDED(mu_);
  // An execution device failed for good. Liveness turns NOT_SERVING and
  // stays so, so that the orchestrator restarts the process at its next
  // chance (a CUDA context with a sticky error is not recovered in process,
  // and the pod's GPU count is lower than the one it asked for). Readiness
  // follows: NOT_SERVING too when no device is left (`devices_remain`
  // false), else it stays as it is, since the other devices still serve
  // every model until the restart. Watch streams stay open and see the change.
  void SetDeviceLost(bool devices_remain = false) ABSL_LOCKS_EXCLUDED(mu_);
  // The drain begins: readiness (every service but liveness) NOT_SERVING,
  // and every Watch stream finished; later changes are ignored. Liveness
  // stays as it was: a draining process still works, and an orchestrator
  // that saw it fail would kill the drain it is waiting for. Call before
  // grpc::Server::Shutdown so watchers do not hold the drain open.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;
  friend class Watcher;
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  Status StatusOf(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unregister(Watcher* watcher) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  bool device_lost_ ABSL_GUARDED_BY(mu_) = false;    // every service NOT_SERVING
  bool liveness_lost_ ABSL_GUARDED_BY(mu_) = false;  // liveness NOT_SERVING
};

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_HEALTH_SERVICE_H_
