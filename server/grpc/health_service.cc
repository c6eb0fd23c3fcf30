#include "server/grpc/health_service.h"

#include <optional>

namespace bertserve::grpcsvc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. Sends the current status, then every change; a change
// that arrives while a write is in flight replaces any unsent one, since only
// the latest status matters.
class HealthService::Watcher final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, std::string name) : service_(service), name_(std::move(name)) {}

  void Push(Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    pending_ = status;
    MaybeWrite();
  }

  void Close() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    if (!writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      if (!finished_) {
        finished_ = true;
        Finish(grpc::Status::CANCELLED);
      }
      return;
    }
    MaybeWrite();
    if (!writing_ && closing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    if (!finished_) {
      finished_ = true;
      Finish(grpc::Status::CANCELLED);
    }
  }

  void OnDone() override {
    service_->Unregister(this);
    delete this;
  }

  const std::string& name() const { return name_; }

 private:
  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_) return;  // OnWriteDone sends what is pending
    if (!pending_.has_value() || last_sent_ == pending_) {
      pending_.reset();
      return;
    }
    response_.set_status(*pending_);
    last_sent_ = pending_;
    pending_.reset();
    writing_ = true;
    StartWrite(&response_);
  }

  HealthService* const service_;
  const std::string name_;
  absl::Mutex mu_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  std::optional<Status> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<Status> last_sent_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

HealthService::HealthService() {
  absl::MutexLock lock(&mu_);
  serving_[kLivenessService] = true;
  serving_[kReadinessService] = false;
}

HealthService::~HealthService() = default;

HealthService::Status HealthService::StatusOf(const std::string& service) const {
  auto it = serving_.find(service);
  if (it == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return it->second ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(const std::string& service, bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  serving_[service] = serving && !device_lost_ && !(service == kLivenessService && liveness_lost_);
  for (Watcher* w : watchers_) {
    if (w->name() == service) w->Push(StatusOf(service));
  }
}

void HealthService::SetDeviceLost(bool devices_remain) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  liveness_lost_ = true;
  serving_[kLivenessService] = false;
  if (!devices_remain) {
    device_lost_ = true;
    for (auto& [name, serving] : serving_) serving = false;
  }
  for (Watcher* w : watchers_) w->Push(StatusOf(w->name()));
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [name, serving] : serving_) {
    if (name != kLivenessService) serving = false;
  }
  for (Watcher* w : watchers_) {
    w->Push(StatusOf(w->name()));
    w->Close();
  }
}

void HealthService::Unregister(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

bool HealthService::IsServing(const std::string& service) const {
  absl::MutexLock lock(&mu_);
  return StatusOf(service) == HealthCheckResponse::SERVING;
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const HealthCheckRequest* request,
                                               HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusOf(request->service());
  }
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "unknown health service \"" + request->service() + "\""));
    return reactor;
  }
  response->set_status(status);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this, request->service());
  absl::MutexLock lock(&mu_);
  watchers_.insert(watcher);
  watcher->Push(StatusOf(request->service()));
  if (shut_down_) watcher->Close();
  return watcher;
}

}  // namespace bertserve::grpcsvc
