#include "client/cli_client.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

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

namespace {

// The whole file, or false with `error` naming the option and the path.
bool ReadFile(const char* option, const std::string& path, std::string* contents,
              std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string(option) + " " + path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream out;
  out << in.rdbuf();
  *contents = out.str();
  return true;
}

}  // namespace

std::unique_ptr<Client> Client::Create(const Options& options, std::string* error) {
  std::string token;
  if (!options.token_file.empty()) {
    if (!ReadFile("--token-file", options.token_file, &token, error)) return nullptr;
    const size_t begin = token.find_first_not_of(" \t\r\n");
    const size_t end = token.find_last_not_of(" \t\r\n");
    token = begin == std::string::npos ? "" : token.substr(begin, end - begin + 1);
    if (token.empty()) {
      *error = "--token-file " + options.token_file + " holds no token";
      return nullptr;
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments arguments;
  const bool tls = options.tls || !options.tls_ca.empty() || !options.tls_cert.empty() ||
                   !options.tls_key.empty();
  if (tls) {
    if (options.tls_cert.empty() != options.tls_key.empty()) {
      *error = "--tls-cert and --tls-key go together";
      return nullptr;
    }
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty() &&
        !ReadFile("--tls-ca", options.tls_ca, &ssl.pem_root_certs, error)) {
      return nullptr;
    }
    if (!options.tls_cert.empty() &&
        (!ReadFile("--tls-cert", options.tls_cert, &ssl.pem_cert_chain, error) ||
         !ReadFile("--tls-key", options.tls_key, &ssl.pem_private_key, error))) {
      return nullptr;
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      arguments.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  return std::unique_ptr<Client>(new Client(
      options, grpc::CreateCustomChannel(options.server, credentials, arguments), token));
}

Client::Client(const Options& options, std::shared_ptr<grpc::Channel> channel, std::string token)
    : options_(options),
      token_(std::move(token)),
      channel_(std::move(channel)),
      inference_(v1::Inference::NewStub(channel_)),
      models_(v1::Models::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

void Client::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(
                            static_cast<int64_t>(options_.timeout_seconds * 1000)));
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
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
    Prepare(&context);
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
