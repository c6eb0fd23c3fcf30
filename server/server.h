#ifndef BERTSERVE_SERVER_SERVER_H_
#define BERTSERVE_SERVER_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bertserve/v1/config.pb.h"

namespace bertserve {

// Every setting of a server, each default written here and nowhere else
// (flag help texts print these values). Built from a v1::ServerConfig (the
// --config file with the command line's flags applied) by FromConfig, which
// checks it; the numbers that default to the machine (threads) are resolved
// there.
struct Options {
  std::string model_repository;  // required
  // gRPC, HOST:PORT (port 0 picks a free one) or unix:PATH. 0.0.0.0: a server
  // in a container must be reachable from outside it; what is dangerous to
  // expose (management, reflection) is closed unless asked for.
  std::string listen = "0.0.0.0:50051";
  std::string metrics_listen = "0.0.0.0:9400";  // plaintext /metrics, /healthz, /readyz
  // Optional plaintext gRPC listener serving bertserve.v1.Models with no
  // token asked (management included): loopback or unix:PATH only. "" = none.
  std::string admin_listen;
  // Startup models; empty: every model, best-effort; {"none"}: none.
  std::vector<std::string> load;
  std::string log_format = "text";
  std::string log_level = "info";
  int worker_threads = 0;    // 0: the usable cores, at least 2
  int intra_op_threads = 0;  // 0: OMP_NUM_THREADS, else the usable cores
  double drain_timeout_seconds = 30;
  double startup_load_timeout_seconds = 300;
  int64_t max_grpc_message_bytes = int64_t{4} << 20;
  std::string device = "auto";
  std::string vram_budget = "90%";
  std::string vram_reserve;  // "": 1GiB on CUDA, 0 elsewhere
  std::string host_budget = "8GiB";
  std::string simulated_device_memory = "1GiB";
  std::string simulated_foreign_memory_file;
  std::string simulated_device_fault_file;
  int64_t max_queued_inputs_per_model = 1024;
  int64_t max_queued_tokens_per_model = int64_t{1} << 20;
  int64_t max_queued_inputs = 4096;
  int64_t max_queued_tokens = int64_t{4} << 20;
  // Security (README "Security"). TLS on the gRPC listener when both files
  // are set; with a client CA, client certificates are required and checked.
  // The files are watched and re-read when they change.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::string management_token_file;  // "": management refused on `listen`
  std::string inference_token_file;   // "": inference open
  bool reflection = false;
  bool follow_symlinks = false;  // model files whose real path leaves the repository

  // Defaults for what `config` leaves unset (0 or empty), then checks:
  // InvalidArgument naming the flag for a negative number, a malformed
  // address or a port outside 0-65535, TLS files given by halves, an admin
  // listener that is not loopback.
  static absl::StatusOr<Options> FromConfig(const v1::ServerConfig& config);
};

// A running bertserve: model registry, batcher, gRPC services and listeners,
// metrics endpoint. Not copyable; not thread-safe (one owner drives it).
class Server {
 public:
  // Builds every part, starts the listeners and the loads of the startup
  // models. An error is a configuration or environment problem (a port in
  // use, a bad flag, an unreadable file), for exit code 2, and leaves nothing
  // running. The caller blocks SIGTERM and SIGINT in every thread before.
  static absl::StatusOr<std::unique_ptr<Server>> BuildAndStart(const Options& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Blocks until SIGTERM or SIGINT; returns the signal. Without --load it
  // also turns the server ready after --startup-load-timeout.
  int WaitForSignal();

  // The drain after `signal_number` (README "Server flags", --drain-timeout);
  // returns the process exit code: 0, or 3 when a model read was still stuck
  // in I/O (then it exits the process itself, since such a thread cannot be
  // stopped).
  int Drain(int signal_number);

 private:
  struct Parts;
  explicit Server(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace bertserve

#endif  // BERTSERVE_SERVER_SERVER_H_
