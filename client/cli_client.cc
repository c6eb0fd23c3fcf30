#include "client/cli_client.h"

namespace bertserve::cli {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",           "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",    "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return (i >= 0 && i < 17) ? kNames[i] : "UNKNOWN";
}

Client::Client(const Options& options)
    : options_(options),
      channel_(grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials())),
      inference_(v1::Inference::NewStub(channel_)),
      models_(v1::Models::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

void Client::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(
                            static_cast<int64_t>(options_.timeout_seconds * 1000)));
}

int Client::PrintError(const grpc::Status& status) {
  fprintf(stderr, "error: %s: %s\n", CodeName(status.error_code()),
          status.error_message().c_str());
  return kExitServerError;
}

int Client::Health() {
  // Both checks run even when the first fails, so an error names the service.
  HealthCheckResponse::ServingStatus statuses[2] = {HealthCheckResponse::UNKNOWN,
                                                    HealthCheckResponse::UNKNOWN};
  const char* const kServices[2] = {"", "readiness"};
  bool failed = false;
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    SetDeadline(&context);
    HealthCheckRequest request;
    request.set_service(kServices[i]);
    HealthCheckResponse response;
    const grpc::Status status = health_->Check(&context, request, &response);
    if (!status.ok()) {
      fprintf(stderr, "error: health check of %s: %s: %s\n",
              i == 0 ? "liveness (service \"\")" : "readiness", CodeName(status.error_code()),
              status.error_message().c_str());
      failed = true;
      continue;
    }
    statuses[i] = response.status();
  }
  if (failed) return kExitServerError;
  const std::string liveness = HealthCheckResponse::ServingStatus_Name(statuses[0]);
  const std::string readiness = HealthCheckResponse::ServingStatus_Name(statuses[1]);
  std::cout << (options_.json ? HealthJson(liveness, readiness)
                              : FormatHealth(liveness, readiness));
  const bool serving =
      statuses[0] == HealthCheckResponse::SERVING && statuses[1] == HealthCheckResponse::SERVING;
  return serving ? kExitOk : kExitNotServing;
}

}  // namespace bertserve::cli
