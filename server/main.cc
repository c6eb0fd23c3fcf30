// bertserve: flags (over an optional --config file) -> Options -> Server.
// Everything else lives in server/server.{h,cc}.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/core/model_config.h"
#include "server/logging/logging.h"
#include "server/server.h"

namespace {

// The libraries' own log lines in the server's format (one JSON object per
// line with --log-format json, control characters escaped in text):
// protobuf's (a client's invalid UTF-8, say) and gRPC's.
void RouteLibraryLogs() {
  google::protobuf::SetLogHandler(+[](google::protobuf::LogLevel level, const char* file,
                                      int line, const std::string& message) {
    // Its errors are about data from outside (a request's bytes): a warning
    // for the server, whose answer names the problem to the client.
    const spdlog::level::level_enum ours =
        level == google::protobuf::LOGLEVEL_INFO  ? spdlog::level::info
        : level == google::protobuf::LOGLEVEL_FATAL ? spdlog::level::critical
                                                    : spdlog::level::warn;
    bertserve::logging::Log(ours, absl::StrCat("protobuf: ", message),
                            {{"library", "protobuf"}, {"source", absl::StrCat(file, ":", line)}});
  });
  gpr_set_log_function(+[](gpr_log_func_args* args) {
    const spdlog::level::level_enum ours =
        args->severity == GPR_LOG_SEVERITY_DEBUG  ? spdlog::level::debug
        : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                  : spdlog::level::err;
    bertserve::logging::Log(ours, absl::StrCat("grpc: ", args->message),
                            {{"library", "grpc"},
                             {"source", absl::StrCat(args->file, ":", args->line)}});
  });
}

// A bound that must be 1 or more; the message names the value (CLI11 puts
// the flag's name before it).
CLI::Validator AtLeastOne() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        int64_t n = 0;
        if (CLI::detail::lexical_cast(value, n) && n >= 1) return std::string();
        return "must be a whole number, 1 or more, not \"" + value + "\"";
      },
      ">=1");
}

// Flags that were given override the --config file's fields: each flag
// records how to apply itself once parsing is done.
class FlagSet {
 public:
  explicit FlagSet(CLI::App* app) : app_(app) {}

  template <typename T>
  CLI::Option* Add(const std::string& name, const std::string& help,
                   std::function<void(bertserve::v1::ServerConfig*, const T&)> set) {
    auto value = std::make_shared<T>();
    CLI::Option* option = app_->add_option(name, *value, help);
    apply_.push_back([option, value, set](bertserve::v1::ServerConfig* c) {
      if (*option) set(c, *value);
    });
    return option;
  }
  CLI::Option* AddSwitch(const std::string& name, const std::string& help,
                         std::function<void(bertserve::v1::ServerConfig*)> set) {
    auto value = std::make_shared<bool>(false);
    CLI::Option* option = app_->add_flag(name, *value, help);
    apply_.push_back([value, set](bertserve::v1::ServerConfig* c) {
      if (*value) set(c);
    });
    return option;
  }
  void ApplyTo(bertserve::v1::ServerConfig* config) const {
    for (const auto& apply : apply_) apply(config);
  }

 private:
  CLI::App* const app_;
  std::vector<std::function<void(bertserve::v1::ServerConfig*)>> apply_;
};

std::string Default(const std::string& value) { return absl::StrCat(" (default ", value, ")"); }
template <typename T>
std::string Default(T value) {
  return absl::StrCat(" (default ", value, ")");
}

}  // namespace

int main(int argc, char** argv) {
  using bertserve::v1::ServerConfig;
  // Block the stop signals before any thread exists so only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const bertserve::Options d;  // the defaults
  CLI::App app{"bertserve: gRPC inference server for BERT-class TorchScript text classifiers"};
  std::string config_file;
  app.add_option("--config", config_file,
                 "Server config file (bertserve.v1.ServerConfig, protobuf text format); "
                 "flags given on the command line override it");
  FlagSet f(&app);
  using S = std::string;
  f.Add<S>("--model-repository", "Directory with one sub-directory per model (required)",
           [](ServerConfig* c, const S& v) { c->set_model_repository(v); });
  f.Add<S>("--listen",
           "gRPC listen address HOST:PORT (port 0 picks a free one) or unix:PATH" + Default(d.listen),
           [](ServerConfig* c, const S& v) { c->set_listen(v); });
  f.Add<S>("--metrics-listen",
           "Prometheus /metrics (and /healthz, /readyz) listen address HOST:PORT" +
               Default(d.metrics_listen),
           [](ServerConfig* c, const S& v) { c->set_metrics_listen(v); });
  f.Add<S>("--admin-listen",
           "Optional second gRPC listener, plaintext, loopback (127.0.0.1:PORT, [::1]:PORT) or "
           "unix:PATH only: serves bertserve.v1.Models with management (Load, Unload) open to "
           "anyone who reaches it, for an operator on the host or a pod-local sidecar "
           "(default: none)",
           [](ServerConfig* c, const S& v) { c->set_admin_listen(v); });
  f.Add<S>("--load",
           "Comma-separated models placed at startup and required for readiness (default: every "
           "model, best-effort); \"none\": none, each model loads on its first request",
           [](ServerConfig* c, const S& v) {
             c->clear_load();
             for (absl::string_view name : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
               c->add_load(std::string(name));
             }
           });
  f.Add<S>("--log-format", "Log format: text or json" + Default(d.log_format),
           [](ServerConfig* c, const S& v) { c->set_log_format(v); });
  f.Add<S>("--log-level", "trace, debug, info, warn, error, off" + Default(d.log_level),
           [](ServerConfig* c, const S& v) { c->set_log_level(v); });
  f.Add<int>("--worker-threads",
             "Threads that validate and tokenize requests; forward passes run on one executor "
             "thread per device (default: the cores this process may use, at least 2)",
             [](ServerConfig* c, const int& v) { c->set_worker_threads(v); });
  f.Add<int>("--intra-op-threads",
             "Threads one forward pass uses on the CPU (default: OMP_NUM_THREADS, else the "
             "cores this process may use)",
             [](ServerConfig* c, const int& v) { c->set_intra_op_threads(v); });
  f.Add<double>("--drain-timeout",
                "Seconds to finish in-flight requests after SIGTERM; then what is left is "
                "cancelled and the process exits" + Default(d.drain_timeout_seconds),
                [](ServerConfig* c, const double& v) { c->set_drain_timeout_seconds(v); });
  f.Add<double>("--startup-load-timeout",
                "Without --load: the longest readiness waits for the startup models, in "
                "seconds; then the server turns ready and the slow ones keep loading" +
                    Default(d.startup_load_timeout_seconds),
                [](ServerConfig* c, const double& v) { c->set_startup_load_timeout_seconds(v); });
  f.Add<int64_t>("--max-grpc-message-bytes",
                 "Largest gRPC request or response, in bytes; larger requests fail "
                 "RESOURCE_EXHAUSTED" + Default(d.max_grpc_message_bytes),
                 [](ServerConfig* c, const int64_t& v) { c->set_max_grpc_message_bytes(v); });
  f.Add<S>("--device",
           "Execution devices: auto, cuda:N, a list like cuda:0,cuda:1, cuda:all (every "
           "visible GPU), cpu (no budget), or sim:N / a list like sim:0,sim:1 (simulated "
           "devices for CPU-only builds)" + Default(d.device),
           [](ServerConfig* c, const S& v) { c->set_device(v); });
  f.Add<S>("--vram-budget",
           "VRAM budget per device: bytes like 12GiB or a share like 90% of the device; "
           "one value for all devices or a comma list, one per --device entry" +
               Default(d.vram_budget),
           [](ServerConfig* c, const S& v) { c->set_vram_budget(v); });
  f.Add<S>("--vram-reserve",
           "Device memory kept out of the budget for the CUDA context and fragmentation, "
           "per device like --vram-budget (default 1GiB on CUDA, 0 otherwise)",
           [](ServerConfig* c, const S& v) { c->set_vram_reserve(v); });
  f.Add<S>("--host-budget",
           "Host memory for weights offloaded from the device" + Default(d.host_budget),
           [](ServerConfig* c, const S& v) { c->set_host_budget(v); });
  f.Add<S>("--simulated-device-memory",
           "Capacity of each simulated device, with --device sim:N" +
               Default(d.simulated_device_memory),
           [](ServerConfig* c, const S& v) { c->set_simulated_device_memory(v); });
  f.Add<S>("--simulated-foreign-memory-file",
           "With --device sim: a file holding the bytes other processes use on the simulated "
           "device, re-read every few ms (to exercise OOM recovery under outside pressure)",
           [](ServerConfig* c, const S& v) { c->set_simulated_foreign_memory_file(v); });
  f.Add<S>("--simulated-device-fault-file",
           "With simulated devices: a file naming devices (sim:1 ...) that have failed for "
           "good, re-read every few ms (to exercise losing a device)",
           [](ServerConfig* c, const S& v) { c->set_simulated_device_fault_file(v); });
  f.Add<int64_t>("--max-queued-inputs-per-model",
                 "Inputs one model's batch queue holds before requests are refused with "
                 "RESOURCE_EXHAUSTED" + Default(d.max_queued_inputs_per_model),
                 [](ServerConfig* c, const int64_t& v) { c->set_max_queued_inputs_per_model(v); })
      ->check(AtLeastOne());
  f.Add<int64_t>("--max-queued-tokens-per-model",
                 "Tokens one model's batch queue holds before refusing" +
                     Default(d.max_queued_tokens_per_model),
                 [](ServerConfig* c, const int64_t& v) { c->set_max_queued_tokens_per_model(v); })
      ->check(AtLeastOne());
  f.Add<int64_t>("--max-queued-inputs",
                 "Inputs all batch queues together hold before refusing" +
                     Default(d.max_queued_inputs),
                 [](ServerConfig* c, const int64_t& v) { c->set_max_queued_inputs(v); })
      ->check(AtLeastOne());
  f.Add<int64_t>("--max-queued-tokens",
                 "Tokens all batch queues together hold before refusing" +
                     Default(d.max_queued_tokens),
                 [](ServerConfig* c, const int64_t& v) { c->set_max_queued_tokens(v); })
      ->check(AtLeastOne());
  f.Add<S>("--tls-cert",
           "PEM certificate chain for TLS on the gRPC listener (with --tls-key); re-read when "
           "the file changes",
           [](ServerConfig* c, const S& v) { c->set_tls_cert_file(v); });
  f.Add<S>("--tls-key", "PEM private key for --tls-cert",
           [](ServerConfig* c, const S& v) { c->set_tls_key_file(v); });
  f.Add<S>("--tls-client-ca",
           "PEM CA bundle: clients must present a certificate it signed (mutual TLS)",
           [](ServerConfig* c, const S& v) { c->set_tls_client_ca_file(v); });
  f.Add<S>("--management-token-file",
           "File holding the bearer token that Models.Load and Models.Unload need "
           "(metadata 'authorization: Bearer <token>'); without it, management is refused "
           "on --listen (default: none)",
           [](ServerConfig* c, const S& v) { c->set_management_token_file(v); });
  f.Add<S>("--inference-token-file",
           "File holding a bearer token that inference and Models.List/Get need (default: "
           "none, inference is open)",
           [](ServerConfig* c, const S& v) { c->set_inference_token_file(v); });
  f.AddSwitch("--reflection", "Serve gRPC server reflection (default off)",
              [](ServerConfig* c) { c->set_reflection(true); });
  f.AddSwitch("--follow-symlinks",
              "Allow model directories and files whose real path leaves the model repository "
              "(default: refused; links inside the repository are always allowed)",
              [](ServerConfig* c) { c->set_follow_symlinks(true); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print and exit 0; every usage error (an unknown
    // flag, a value that is no number or out of range) exits 2, as bad
    // values that the server checks itself do.
    return app.exit(e) == 0 ? 0 : 2;
  }

  ServerConfig config;
  if (!config_file.empty()) {
    absl::StatusOr<ServerConfig> file = bertserve::core::ReadServerConfig(config_file);
    if (!file.ok()) {
      fprintf(stderr, "bertserve: %s\n", std::string(file.status().message()).c_str());
      return 2;
    }
    config = *std::move(file);
  }
  f.ApplyTo(&config);
  absl::StatusOr<bertserve::Options> options = bertserve::Options::FromConfig(config);
  if (!options.ok()) {
    fprintf(stderr, "bertserve: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  if (absl::Status s = bertserve::logging::Configure(options->log_format, options->log_level);
      !s.ok()) {
    fprintf(stderr, "bertserve: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  RouteLibraryLogs();
  absl::StatusOr<std::unique_ptr<bertserve::Server>> server =
      bertserve::Server::BuildAndStart(*options);
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return 2;
  }
  const int signal_number = (*server)->WaitForSignal();
  return (*server)->Drain(signal_number);
}
