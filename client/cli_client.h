#ifndef BERTSERVE_CLIENT_CLI_CLIENT_H_
#define BERTSERVE_CLIENT_CLI_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "bertserve/v1/inference.grpc.pb.h"
#include "bertserve/v1/models.grpc.pb.h"
#include "client/cli_output.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace bertserve::cli {

// The process exit codes of bertserve-cli.
inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;  // unreachable, or answered with an error
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotServing = 3;  // health: answered, but not SERVING

// The global options, shared by every subcommand.
struct Options {
  std::string server = "127.0.0.1:50051";  // HOST:PORT
  bool json = false;                       // one JSON document instead of text
  double timeout_seconds = 60;             // deadline of each RPC, in seconds
  // TLS: on when `tls` or any file below is set. `tls_ca` is the PEM bundle
  // that signs the server's certificate (default: the system's roots);
  // `tls_cert` and `tls_key` the client's own, for mutual TLS.
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;  // the name to check the certificate against
  // A file holding the bearer token sent as `authorization: Bearer <token>`.
  std::string token_file;
};

// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND; "UNKNOWN" outside the range.
const char* CodeName(grpc::StatusCode code);

// One channel to the server and the stubs on it. Each call prints its answer
// to stdout (an error to stderr) and returns the exit code. Not thread-safe;
// one per process.
class Client {
 public:
  // Null, with `error` set, when a TLS or token file cannot be read.
  static std::unique_ptr<Client> Create(const Options& options, std::string* error);

  // Runs one unary RPC: call(context, response) -> grpc::Status; on success
  // prints format(response), or the response as JSON with --json.
  template <typename Response, typename Call, typename Format>
  int Run(Call call, Format format) {
    grpc::ClientContext context;
    Prepare(&context);
    Response response;
    const grpc::Status status = call(&context, &response);
    if (!status.ok()) return PrintError(status);
    std::cout << (options_.json ? ToJson(response) : format(response));
    return kExitOk;
  }

  // Checks grpc.health.v1 services "" (liveness) and "readiness"; prints both.
  // kExitOk only when both are SERVING.
  int Health();

  v1::Inference::Stub& inference() { return *inference_; }
  // Sets the deadline (--timeout) and, with a token, the authorization
  // metadata of a call's context.
  void Prepare(grpc::ClientContext* context) const;
  v1::Models::Stub& models() { return *models_; }

 private:
  Client(const Options& options, std::shared_ptr<grpc::Channel> channel, std::string token);
  static int PrintError(const grpc::Status& status);

  Options options_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> inference_;
  std::unique_ptr<v1::Models::Stub> models_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace bertserve::cli

#endif  // BERTSERVE_CLIENT_CLI_CLIENT_H_
