#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>
#include <utility>

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <spdlog/spdlog.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/batcher.h"
#include "server/core/byte_size.h"
#include "server/core/classifier.h"
#include "server/core/model_config.h"
#include "server/core/model_registry.h"
#include "server/core/model_repository.h"
#include "server/core/usable_cores.h"
#include "server/core/worker_pool.h"
#include "server/grpc/access_control.h"
#include "server/grpc/health_service.h"
#include "server/grpc/v2_service.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/models_service.h"
#include "server/logging/logging.h"
#include "server/metrics/metrics_http_server.h"
#include "server/metrics/server_metrics.h"
#include "server/torch/runtime_info.h"
#include "server/torch/torch_device.h"
#include "server/torch/torch_model.h"

namespace bertserve {
namespace {

using logging::Log;

// How often the TLS files are looked at for a rotation, in seconds. Reading
// three small files this often costs nothing; a Kubernetes Secret update
// reaches the pod's volume within about a minute anyway.
constexpr unsigned int kTlsRefreshSeconds = 5;

// HOST:PORT with a port from 0 to 65535 (metrics::ParseHostPort) and a
// host, or unix:PATH. `flag` names the setting in the error.
absl::Status CheckListenAddress(const std::string& flag, const std::string& address) {
  if (absl::StartsWith(address, "unix:")) {
    if (address.size() == 5) return absl::InvalidArgumentError(absl::StrCat(flag, " unix: needs a path"));
    return absl::OkStatus();
  }
  if (absl::StartsWith(address, ":")) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " \"", address, "\" is not HOST:PORT (or unix:PATH)"));
  }
  absl::StatusOr<metrics::HostPort> parsed = metrics::ParseHostPort(address);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", parsed.status().message()));
  return absl::OkStatus();
}

// Loopback hosts and unix sockets: what --admin-listen may use.
bool IsLocalAddress(const std::string& address) {
  if (absl::StartsWith(address, "unix:")) return true;
  absl::StatusOr<metrics::HostPort> parsed = metrics::ParseHostPort(address);
  if (!parsed.ok()) return false;
  const std::string& host = parsed->host;
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

// Why a gRPC listener could not start: gRPC itself only says that it did
// not. Binding the address once more (without SO_REUSEPORT, as gRPC was
// told) tells "address in use" from the rest.
std::string WhyCannotListen(const std::string& address) {
  if (absl::StartsWith(address, "unix:")) return "cannot listen there (check the path)";
  absl::StatusOr<int> fd = metrics::BindTcpSocket(address, 0);
  if (!fd.ok()) return std::string(fd.status().message());
  close(*fd);
  return "gRPC could not listen there";
}

// A PEM file that can be read and holds `what` ("CERTIFICATE", "PRIVATE KEY").
absl::Status CheckPemFile(const std::string& flag, const std::string& path,
                          const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  const std::string pem = contents.str();
  if (pem.find("-----BEGIN") == std::string::npos || pem.find(what) == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": no PEM ", what, " in the file"));
  }
  return absl::OkStatus();
}

// The credentials of the main gRPC listener: plaintext, TLS, or TLS that
// requires and verifies client certificates. gRPC's file watcher re-reads
// the files every kTlsRefreshSeconds; new handshakes use the new files and
// open connections keep theirs.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListenerCredentials(const Options& o) {
  if (o.tls_cert_file.empty() && o.tls_key_file.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (absl::Status s = CheckPemFile("--tls-cert", o.tls_cert_file, "CERTIFICATE"); !s.ok()) return s;
  if (absl::Status s = CheckPemFile("--tls-key", o.tls_key_file, "PRIVATE KEY"); !s.ok()) return s;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (o.tls_client_ca_file.empty()) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        o.tls_key_file, o.tls_cert_file, kTlsRefreshSeconds);
  } else {
    if (absl::Status s = CheckPemFile("--tls-client-ca", o.tls_client_ca_file, "CERTIFICATE");
        !s.ok()) {
      return s;
    }
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        o.tls_key_file, o.tls_cert_file, o.tls_client_ca_file, kTlsRefreshSeconds);
  }
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (o.tls_client_ca_file.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

// The devices and the memory limits the flags ask for, checked against what
// each device has. Errors are the flag's name and what is wrong with it.
struct Placement {
  std::vector<std::unique_ptr<torchrt::TorchDevice>> devices;  // --device, in order
  std::unique_ptr<torchrt::TorchDevice> cpu;  // for models configured DEVICE_CPU
  core::RegistryOptions options;
};

// A flag's value for each of `count` devices: one value for all, or a
// comma list with one per device.
absl::StatusOr<std::vector<std::string>> PerDevice(const std::string& value, size_t count,
                                                   absl::string_view flag) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    parts.emplace_back(absl::StripAsciiWhitespace(part));
  }
  if (parts.size() == 1) return std::vector<std::string>(count, parts[0]);
  if (parts.size() != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", value, ": ", parts.size(), " values for ", count,
        " devices; give one value for all or one per --device entry"));
  }
  return parts;
}

absl::StatusOr<Placement> MakePlacement(const Options& o) {
  absl::StatusOr<core::ByteSize> sim =
      core::ParseByteSize(o.simulated_device_memory, "--simulated-device-memory");
  if (!sim.ok()) return sim.status();
  if (sim->is_fraction) {
    return absl::InvalidArgumentError("--simulated-device-memory must be bytes, not a share");
  }
  std::string spec = o.device;
  if (spec == "auto") spec = torchrt::CudaAvailable() ? "cuda:0" : "cpu";
  Placement p;
  absl::StatusOr<std::vector<std::unique_ptr<torchrt::TorchDevice>>> devices =
      torchrt::CreateTorchDevices(spec, sim->bytes, o.simulated_foreign_memory_file,
                                  o.simulated_device_fault_file);
  if (!devices.ok()) {
    return absl::Status(devices.status().code(),
                        absl::StrCat("--device ", spec, ": ", devices.status().message()));
  }
  p.devices = *std::move(devices);
  const torchrt::TorchDevice& first = *p.devices.front();
  if (first.name() != "cpu") {
    absl::StatusOr<std::unique_ptr<torchrt::TorchDevice>> cpu = torchrt::CreateTorchDevice("cpu", 0);
    if (!cpu.ok()) return cpu.status();
    p.cpu = *std::move(cpu);
  }
  if (!o.simulated_device_fault_file.empty() && !absl::StartsWith(first.name(), "sim")) {
    return absl::InvalidArgumentError(
        "--simulated-device-fault-file works only with simulated devices (--device sim:N)");
  }

  const size_t count = p.devices.size();
  absl::StatusOr<std::vector<std::string>> budgets = PerDevice(o.vram_budget, count, "--vram-budget");
  if (!budgets.ok()) return budgets.status();
  const bool cuda = absl::StartsWith(first.name(), "cuda");
  absl::StatusOr<std::vector<std::string>> reserves =
      PerDevice(o.vram_reserve.empty() ? (cuda ? "1GiB" : "0") : o.vram_reserve, count,
                "--vram-reserve");
  if (!reserves.ok()) return reserves.status();
  absl::StatusOr<core::ByteSize> host = core::ParseByteSize(o.host_budget, "--host-budget");
  if (!host.ok()) return host.status();
  if (host->is_fraction) return absl::InvalidArgumentError("--host-budget must be bytes, not a share");

  for (size_t i = 0; i < count; ++i) {
    torchrt::TorchDevice& device = *p.devices[i];
    const std::string& budget_spec = (*budgets)[i];
    const std::string& reserve_spec = (*reserves)[i];
    absl::StatusOr<core::ByteSize> budget = core::ParseByteSize(budget_spec, "--vram-budget");
    if (!budget.ok()) return budget.status();
    absl::StatusOr<core::ByteSize> reserve = core::ParseByteSize(reserve_spec, "--vram-reserve");
    if (!reserve.ok()) return reserve.status();
    const int64_t total = device.Memory().total_bytes;
    const int64_t reserve_bytes = reserve->Resolve(total);
    int64_t budget_bytes = budget->Resolve(total);
    if (device.has_budget()) {
      if (reserve_bytes >= total) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--vram-reserve ", reserve_spec, " (", reserve_bytes, " bytes) leaves nothing of ",
            device.name(), "'s ", total, " bytes"));
      }
      budget_bytes = std::min(budget_bytes, total - reserve_bytes);
      if (budget_bytes <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("--vram-budget ", budget_spec,
                                                       " is no memory at all (", device.name(),
                                                       ")"));
      }
      device.CapAllocator(budget_bytes);
    }
    p.options.devices.push_back({&device, device.has_budget() ? budget_bytes : 0});
  }
  p.options.device = p.options.devices.front().device;
  p.options.vram_budget = p.options.devices.front().vram_budget;
  p.options.host_budget = host->bytes;
  return p;
}

// Batching events into Prometheus (metrics stays free of core types).
class MetricsBatchObserver : public core::BatchObserver {
 public:
  explicit MetricsBatchObserver(metrics::ServerMetrics* metrics) : metrics_(metrics) {}
  void OnBatch(const std::string& model, int rows, int64_t padded_tokens, int64_t real_tokens,
               double seconds) override {
    metrics_->RecordBatch(model, rows, padded_tokens, real_tokens, seconds);
  }
  void OnQueued(const std::string& model, double seconds) override {
    metrics_->RecordQueueWait(model, seconds);
  }
  void OnOom(const std::string& model, int64_t padded_tokens, const absl::Status& error) override {
    metrics_->RecordOom(model);
    Log(spdlog::level::warn,
        absl::StrCat("model ", model, ": a forward of ", padded_tokens,
                     " tokens ran out of memory, splitting it: ", error.message()),
        {{"model", model}, {"tokens", padded_tokens}});
  }
  void OnSplit(const std::string& model) override { metrics_->RecordSplit(model); }
  void OnTokenLimit(const std::string& model, int64_t tokens, int change) override {
    metrics_->SetBatchTokenLimit(model, tokens, change);
    if (change != 0) {
      Log(spdlog::level::info,
          absl::StrCat("model ", model, ": batch token limit ", change < 0 ? "lowered" : "raised",
                       " to ", tokens),
          {{"model", model}, {"batch_token_limit", tokens}});
    }
  }
  void OnQueueDepth(const std::string& model, int64_t inputs) override {
    metrics_->SetQueueDepth(model, inputs);
  }
  void OnExpired(const std::string& model) override { metrics_->RecordExpired(model); }
  void OnTokenized(const std::string& model, double seconds) override {
    metrics_->RecordTokenize(model, seconds);
  }
  void OnModelWait(const std::string& model, double seconds) override {
    metrics_->RecordModelWait(model, seconds);
  }

 private:
  metrics::ServerMetrics* const metrics_;
};

// Takes gRPC's reflection plugin out of a server builder. Linking
// libgrpc++_reflection registers the plugin for every builder from a static
// initializer, so reflection would be on whatever the flag says.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return dynamic_cast<grpc::reflection::ProtoServerReflectionPlugin*>(
                                               p.get()) != nullptr;
                                  }),
                   plugins->end());
  }
};

// "0.0.0.0:0" with the port the server got -> "0.0.0.0:43121".
std::string WithPort(const std::string& address, int port) {
  if (absl::StartsWith(address, "unix:")) return address;
  const size_t colon = address.rfind(':');
  return absl::StrCat(address.substr(0, colon), ":", port);
}

// Readiness turns SERVING once the startup models settled (or the startup
// timeout passed): the health service, the metrics gauge and the log.
void TurnReady(grpcsvc::HealthService& health, metrics::ServerMetrics& metrics, size_t settled,
               size_t failed, size_t total) {
  health.SetServing(grpcsvc::kReadinessService, true);
  metrics.SetReady(true);
  if (failed == 0) {
    spdlog::info("ready: {} of {} startup model(s) settled, every one READY", settled, total);
  } else {
    // Best-effort startup: the failures were logged each with its reason.
    spdlog::warn("ready: {} of {} startup model(s) settled, {} of them failed to load (see "
                 "above; they serve nothing until a load succeeds)",
                 settled, total, failed);
  }
}

// What the admin listener does not serve (inference, health, reflection)
// is answered UNIMPLEMENTED with where to call it, not gRPC's bare code.
class AdminElsewhere final : public grpc::CallbackGenericService {
 public:
  explicit AdminElsewhere(std::string listen) : listen_(std::move(listen)) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    class Refusal final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Refusal(const grpc::Status& status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    return new Refusal(grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        absl::StrCat(context->method().substr(0, 256),
                     " is not served on the admin listener (--admin-listen), which serves "
                     "bertserve.v1.Models only; call it on the gRPC listener (--listen ",
                     listen_, ")")));
  }

 private:
  const std::string listen_;
};

// Startup models settle here; readiness follows.
struct Startup {
  absl::Mutex mu;
  size_t settled ABSL_GUARDED_BY(mu) = 0;
  size_t failures ABSL_GUARDED_BY(mu) = 0;
  bool failed ABSL_GUARDED_BY(mu) = false;
  bool ready ABSL_GUARDED_BY(mu) = false;
  // Set when draining starts: late load callbacks then touch nothing that
  // the server's destruction takes away.
  bool closed ABSL_GUARDED_BY(mu) = false;
};

}  // namespace

absl::StatusOr<Options> Options::FromConfig(const v1::ServerConfig& c) {
  // Numbers that make no sense negative; 0 means "the default" for each.
  const std::pair<const char*, double> numbers[] = {
      {"--worker-threads", c.worker_threads()},
      {"--intra-op-threads", c.intra_op_threads()},
      {"--drain-timeout", c.drain_timeout_seconds()},
      {"--startup-load-timeout", c.startup_load_timeout_seconds()},
      {"--max-grpc-message-bytes", static_cast<double>(c.max_grpc_message_bytes())},
      {"--max-queued-inputs-per-model", static_cast<double>(c.max_queued_inputs_per_model())},
      {"--max-queued-tokens-per-model", static_cast<double>(c.max_queued_tokens_per_model())},
      {"--max-queued-inputs", static_cast<double>(c.max_queued_inputs())},
      {"--max-queued-tokens", static_cast<double>(c.max_queued_tokens())},
  };
  for (const auto& [flag, value] : numbers) {
    if (value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " is ", value, "; it must be 0 (the default) or more"));
    }
  }
  if (c.max_grpc_message_bytes() > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-grpc-message-bytes is ", c.max_grpc_message_bytes(), "; at most ",
        std::numeric_limits<int>::max(), " (gRPC counts message sizes in an int)"));
  }
  if (c.model_repository().empty()) {
    return absl::InvalidArgumentError("--model-repository is required");
  }

  Options o;
  auto text = [](const std::string& value, std::string* field) {
    if (!value.empty()) *field = value;
  };
  auto number = [](auto value, auto* field) {
    if (value > 0) *field = value;
  };
  o.model_repository = c.model_repository();
  text(c.listen(), &o.listen);
  text(c.metrics_listen(), &o.metrics_listen);
  text(c.admin_listen(), &o.admin_listen);
  o.load.assign(c.load().begin(), c.load().end());
  text(c.log_format(), &o.log_format);
  text(c.log_level(), &o.log_level);
  number(c.drain_timeout_seconds(), &o.drain_timeout_seconds);
  number(c.startup_load_timeout_seconds(), &o.startup_load_timeout_seconds);
  number(c.max_grpc_message_bytes(), &o.max_grpc_message_bytes);
  text(c.device(), &o.device);
  text(c.vram_budget(), &o.vram_budget);
  text(c.vram_reserve(), &o.vram_reserve);
  text(c.host_budget(), &o.host_budget);
  text(c.simulated_device_memory(), &o.simulated_device_memory);
  text(c.simulated_foreign_memory_file(), &o.simulated_foreign_memory_file);
  text(c.simulated_device_fault_file(), &o.simulated_device_fault_file);
  number(c.max_queued_inputs_per_model(), &o.max_queued_inputs_per_model);
  number(c.max_queued_tokens_per_model(), &o.max_queued_tokens_per_model);
  number(c.max_queued_inputs(), &o.max_queued_inputs);
  number(c.max_queued_tokens(), &o.max_queued_tokens);
  text(c.tls_cert_file(), &o.tls_cert_file);
  text(c.tls_key_file(), &o.tls_key_file);
  text(c.tls_client_ca_file(), &o.tls_client_ca_file);
  text(c.management_token_file(), &o.management_token_file);
  text(c.inference_token_file(), &o.inference_token_file);
  o.reflection = c.reflection();
  o.follow_symlinks = c.follow_symlinks();

  const int cores = core::UsableCores();
  o.worker_threads = c.worker_threads() > 0 ? c.worker_threads() : std::max(2, cores);
  if (c.intra_op_threads() > 0) {
    o.intra_op_threads = c.intra_op_threads();
  } else {
    // OMP_NUM_THREADS, where set, is the operator's word for the same thing.
    int omp = 0;
    const char* env = std::getenv("OMP_NUM_THREADS");
    o.intra_op_threads = env != nullptr && absl::SimpleAtoi(env, &omp) && omp > 0 ? omp : cores;
  }

  for (const auto& [flag, address] : {std::pair<const char*, const std::string&>{"--listen", o.listen},
                                      {"--metrics-listen", o.metrics_listen},
                                      {"--admin-listen", o.admin_listen}}) {
    if (address.empty() && std::string(flag) == "--admin-listen") continue;
    if (absl::Status s = CheckListenAddress(flag, address); !s.ok()) return s;
  }
  if (absl::StartsWith(o.metrics_listen, "unix:")) {
    return absl::InvalidArgumentError("--metrics-listen must be HOST:PORT");
  }
  if (!o.admin_listen.empty() && !IsLocalAddress(o.admin_listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--admin-listen ", o.admin_listen,
        ": must be a loopback address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT) or "
        "unix:PATH, since it serves model management to anyone who reaches it"));
  }
  if (!o.admin_listen.empty() && o.admin_listen == o.listen && !absl::EndsWith(o.listen, ":0")) {
    return absl::InvalidArgumentError("--admin-listen must differ from --listen");
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together: give both or neither");
  }
  if (!o.tls_client_ca_file.empty() && o.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)");
  }
  return o;
}

// Everything a running server owns, in construction order; members are
// destroyed in reverse, so the listeners stop before the services, the
// services before the batcher and registry they call.
struct Server::Parts {
  explicit Parts(const Options& o) : options(o) {}
  const Options options;
  std::unique_ptr<core::ModelRepository> repository;
  Placement placement;
  std::unique_ptr<torchrt::TorchModelLoader> loader;
  std::unique_ptr<core::ModelRegistry> registry;
  // Before the metrics endpoint, which asks it for /healthz and /readyz and
  // so must be destroyed first.
  grpcsvc::HealthService health;
  std::unique_ptr<metrics::ServerMetrics> metrics;
  grpcsvc::CallObserver observer;
  std::unique_ptr<core::WorkerPool> inference_pool;
  // Management calls never block a thread on a placement (the registry
  // calls back); these run their parsing and bookkeeping.
  std::unique_ptr<core::WorkerPool> admin_pool;
  std::unique_ptr<MetricsBatchObserver> batch_metrics;
  std::unique_ptr<core::Batcher> batcher;
  std::unique_ptr<core::Classifier> classifier;
  std::unique_ptr<grpcsvc::AccessControl> access;        // the main listener
  std::unique_ptr<grpcsvc::AccessControl> admin_access;  // --admin-listen
  std::unique_ptr<grpcsvc::InferenceService> inference;
  std::unique_ptr<grpcsvc::ModelsService> models;
  // inference.GRPCInferenceService (Open Inference Protocol) beside them.
  std::unique_ptr<grpcsvc::V2InferenceService> v2;
  std::unique_ptr<grpcsvc::ModelsService> admin_models;
  std::unique_ptr<grpc::CallbackGenericService> admin_elsewhere;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<grpc::Server> admin_server;
  std::shared_ptr<Startup> startup = std::make_shared<Startup>();
  std::vector<std::string> startup_models;
  bool explicit_load = false;
};

Server::Server(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Server::~Server() = default;

absl::StatusOr<std::unique_ptr<Server>> Server::BuildAndStart(const Options& o) {
  auto parts = std::make_unique<Parts>(o);
  Parts& p = *parts;
  absl::StatusOr<core::ModelRepository> repository =
      core::ModelRepository::Open(o.model_repository, o.follow_symlinks);
  if (!repository.ok()) return repository.status();
  p.repository = std::make_unique<core::ModelRepository>(*std::move(repository));
  // A directory whose name is no model name is never served: say so once,
  // rather than leave an operator wondering where the model went.
  if (auto unserved = p.repository->UnservedDirectories(); unserved.ok()) {
    for (const auto& [directory, reason] : *unserved) {
      logging::Log(spdlog::level::warn,
                   absl::StrCat("model repository: directory \"", directory,
                                "\" is not served: ", reason, "; rename it to serve it"),
                   {{"directory", directory}});
    }
  }
  // Before any forward pass: the executor threads pick the setting up.
  if (absl::Status s = torchrt::SetIntraOpThreads(o.intra_op_threads); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--intra-op-threads: ", s.message()));
  }
  // Token files before anything listens: a missing Secret is a
  // configuration error, not a server that refuses everyone.
  grpcsvc::AccessOptions access;
  if (!o.management_token_file.empty()) {
    absl::StatusOr<std::shared_ptr<grpcsvc::TokenFile>> token =
        grpcsvc::TokenFile::Open(o.management_token_file, "--management-token-file");
    if (!token.ok()) return token.status();
    access.management_token = *std::move(token);
  }
  if (!o.inference_token_file.empty()) {
    absl::StatusOr<std::shared_ptr<grpcsvc::TokenFile>> token =
        grpcsvc::TokenFile::Open(o.inference_token_file, "--inference-token-file");
    if (!token.ok()) return token.status();
    access.inference_token = *std::move(token);
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ListenerCredentials(o);
  if (!credentials.ok()) return credentials.status();

  absl::StatusOr<Placement> placement = MakePlacement(o);
  if (!placement.ok()) return placement.status();
  p.placement = *std::move(placement);
  std::vector<torchrt::TorchDevice*> execution_devices;
  for (const auto& device : p.placement.devices) execution_devices.push_back(device.get());
  p.loader = std::make_unique<torchrt::TorchModelLoader>(
      execution_devices, p.placement.cpu ? p.placement.cpu.get() : execution_devices.front());
  absl::StatusOr<std::unique_ptr<core::ModelRegistry>> registry =
      core::ModelRegistry::Create(*p.repository, p.loader.get(), p.placement.options);
  if (!registry.ok()) return registry.status();
  p.registry = *std::move(registry);

  // Startup models: --load, or everything in the repository. A name that is
  // not there is a configuration error, found before anything listens.
  p.startup_models = o.load;
  p.explicit_load = !p.startup_models.empty();
  if (p.startup_models == std::vector<std::string>{"none"}) {
    p.startup_models.clear();  // every model waits in the repository for its first request
  } else if (!p.explicit_load) {
    for (const core::ModelInfo& info : p.registry->List()) p.startup_models.push_back(info.name);
  }
  for (const std::string& name : p.startup_models) {
    if (absl::StatusOr<core::ModelInfo> info = p.registry->Get(name); !info.ok()) {
      return absl::Status(info.status().code(), absl::StrCat("--load ", name, ": ",
                                                             info.status().message()));
    }
  }

  absl::StatusOr<std::unique_ptr<metrics::ServerMetrics>> metrics =
      metrics::ServerMetrics::Create(o.metrics_listen, PROJECT_VERSION, torchrt::TorchVersion(),
                                     torchrt::CudaVersion());
  if (!metrics.ok()) return metrics.status();
  p.metrics = *std::move(metrics);
  metrics::ServerMetrics& m = *p.metrics;
  grpcsvc::HealthService& health = p.health;
  m.SetHealthChecks([&health] { return health.IsServing(""); },
                    [&health] { return health.IsServing(grpcsvc::kReadinessService); });

  std::vector<absl::string_view> state_names;
  for (core::ModelState s : core::kAllModelStates) state_names.push_back(core::ModelStateName(s));
  auto export_model = [&m, state_names](const core::ModelInfo& info) {
    m.SetModelState(info.name, core::ModelStateName(info.state), state_names);
    std::vector<std::pair<std::string, double>> by_device;
    for (const core::ModelCopy& copy : info.copies) {
      by_device.emplace_back(copy.device, static_cast<double>(copy.device_bytes));
    }
    // Models that execute on the CPU have no copies: their weights are there.
    if (by_device.empty() && info.device_bytes > 0) {
      by_device.emplace_back(info.device, static_cast<double>(info.device_bytes));
    }
    m.SetModelDeviceMemory(info.name, by_device);
    m.SetModelReplicas(info.name, static_cast<double>(info.copies.size()));
    m.SetModelMemory(info.name, "host", static_cast<double>(info.host_bytes));
    m.SetActivationReserve(info.name, static_cast<double>(info.activation_reserve));
  };
  for (const core::ModelInfo& info : p.registry->List()) {
    m.InitModel(info.name);
    export_model(info);
  }
  p.registry->AddStateListener([export_model](const core::ModelInfo& info) {
    export_model(info);
    if (info.state == core::ModelState::kFailed) {
      Log(spdlog::level::err, absl::StrCat("model ", info.name, " failed: ", info.last_error),
          {{"model", info.name}, {"state", std::string(core::ModelStateName(info.state))}});
      return;
    }
    const std::string state(core::ModelStateName(info.state));
    Log(spdlog::level::info, absl::StrCat("model ", info.name, " is ", state),
        {{"model", info.name},
         {"state", state},
         {"device", info.device},
         {"weight_bytes", info.weight_bytes},
         {"device_bytes", info.device_bytes},
         {"host_bytes", info.host_bytes},
         {"activation_reserve", info.activation_reserve},
         {"batch_token_limit", info.batch_token_limit},
         {"max_batch_tokens", info.config.batch().max_batch_tokens()}});
  });
  p.registry->AddPlacementListener([&m](const core::PlacementEvent& e) {
    const std::string kind(core::PlacementKindName(e.kind));
    m.RecordPlacement(e.model, kind, e.ok, e.seconds);
    // Placements the policy chose a device for (an evicted replica's reason
    // says what it was, not a choice).
    if (e.ok && !e.reason.empty() && e.kind != core::PlacementKind::kEvict) {
      m.RecordPlacementDecision(e.device, e.reason);
    }
    std::vector<logging::Field> fields = {
        {"model", e.model}, {"kind", kind}, {"bytes", e.bytes}, {"seconds", e.seconds}};
    if (!e.device.empty()) fields.emplace_back("device", e.device);
    if (!e.reason.empty()) fields.emplace_back("reason", e.reason);
    const std::string where = e.device.empty() ? "" : absl::StrCat(" on ", e.device);
    if (e.kind == core::PlacementKind::kDeviceLost) {
      Log(spdlog::level::warn,
          absl::StrCat("model ", e.model, " lost its copy", where,
                       " (the device failed); it is read again onto another device: ", e.error),
          fields);
    } else if (e.ok) {
      Log(spdlog::level::info,
          absl::StrCat("placement ", kind, " of ", e.model, where, ": ", e.bytes, " bytes in ",
                       absl::StrFormat("%.3f", e.seconds), " s",
                       e.reason.empty() ? "" : absl::StrCat(" (", e.reason, ")")),
          fields);
    } else {
      Log(spdlog::level::warn,
          absl::StrCat("placement ", kind, " of ", e.model, where, " failed after ",
                       absl::StrFormat("%.3f", e.seconds), " s: ", e.error),
          fields);
    }
  });
  core::ModelRegistry& reg = *p.registry;
  m.SetScrapeHook([&m, &reg] {
    const core::MemorySnapshot snapshot = reg.Memory();
    for (size_t i = 0; i < snapshot.devices.size(); ++i) {
      const core::DeviceSnapshot& d = snapshot.devices[i];
      metrics::MemoryGauges g;
      g.device = d.device;
      g.total = static_cast<double>(d.memory.total_bytes);
      g.free = static_cast<double>(d.memory.free_bytes);
      g.budget = static_cast<double>(d.budget);
      g.reserved = static_cast<double>(d.reserved);
      g.allocator_allocated = static_cast<double>(d.memory.allocated_bytes);
      g.allocator_reserved = static_cast<double>(d.memory.reserved_bytes);
      g.allocator_peak = static_cast<double>(d.memory.peak_bytes);
      g.host = static_cast<double>(snapshot.host_bytes);
      g.host_budget = static_cast<double>(snapshot.host_budget);
      g.placement_queue_depth = i == 0 ? static_cast<double>(snapshot.placement_queue_depth) : -1;
      g.resident_models = d.resident_models;
      g.lost = d.lost;
      m.SetMemory(g);
    }
  });
  {
    const core::MemorySnapshot snapshot = reg.Memory();
    for (const core::DeviceSnapshot& d : snapshot.devices) {
      spdlog::info("device {}: total {} bytes, budget {} bytes", d.device, d.memory.total_bytes,
                   d.budget);
    }
    spdlog::info("host budget {} bytes", snapshot.host_budget);
  }

  p.observer = [&m](const std::string& model, absl::string_view method,
                    const grpc::Status& status, double seconds, const std::string& request_id) {
    const grpc::StatusCode code = status.error_code();
    m.RecordRequest(model, method, grpcsvc::CodeName(code), seconds);
    // Failures on the server's side (not the client's) are logged, once each.
    if (code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::UNAVAILABLE ||
        code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::DEADLINE_EXCEEDED) {
      const std::string code_name(grpcsvc::CodeName(code));
      std::vector<logging::Field> fields = {
          {"model", model}, {"method", std::string(method)}, {"code", code_name}, {"seconds", seconds}};
      if (!request_id.empty()) fields.emplace_back("request_id", request_id);
      Log(spdlog::level::warn,
          absl::StrCat(method, " for model ", model, " ended ", code_name, " after ",
                       absl::StrFormat("%.3f", seconds), " s: ", status.error_message()),
          fields);
    }
  };

  p.inference_pool = std::make_unique<core::WorkerPool>(o.worker_threads);
  p.admin_pool = std::make_unique<core::WorkerPool>(2);
  core::BatcherOptions batching;
  batching.max_queued_inputs_per_model = o.max_queued_inputs_per_model;
  batching.max_queued_tokens_per_model = o.max_queued_tokens_per_model;
  batching.max_queued_inputs = o.max_queued_inputs;
  batching.max_queued_tokens = o.max_queued_tokens;
  p.batch_metrics = std::make_unique<MetricsBatchObserver>(&m);
  batching.observer = p.batch_metrics.get();
  // A device error that poisons the CUDA context cannot be recovered in
  // process: liveness fails so the orchestrator restarts the pod.
  // With other devices left, readiness stays: they serve every model until
  // the restart (see HealthService::SetDeviceLost).
  batching.on_device_lost = [&health, &m, &reg,
                             lost = std::make_shared<std::atomic<int>>(0)](const absl::Status& error) {
    const bool remain = lost->fetch_add(1) + 1 < reg.device_count();
    if (!remain) m.SetReady(false);
    spdlog::critical("execution device failed, liveness is now NOT_SERVING (restart needed){}: {}",
                     remain ? "; the other devices serve its models meanwhile" : "",
                     std::string(error.message()));
    health.SetDeviceLost(remain);
  };
  p.batcher = std::make_unique<core::Batcher>(&reg, batching);
  // Requests for a model being placed wait on the inference pool's callbacks.
  p.classifier = std::make_unique<core::Classifier>(&reg, p.batcher.get(), p.batch_metrics.get(),
                                                    p.inference_pool.get());
  p.access = std::make_unique<grpcsvc::AccessControl>(access);
  p.inference = std::make_unique<grpcsvc::InferenceService>(
      p.classifier.get(), &reg, p.inference_pool.get(), &p.observer, p.access.get());
  core::Batcher* const batcher = p.batcher.get();
  grpcsvc::QueuedWorkFn queued = [batcher](const std::string& model) {
    return batcher->Queued(model);
  };
  // Requests for a model with replicas go to the copy with the fewest
  // queued tokens; the Models API shows each copy's queue.
  reg.SetQueueProbe(queued);
  p.models = std::make_unique<grpcsvc::ModelsService>(&reg, p.admin_pool.get(), &p.observer,
                                                      p.access.get(), "grpc", queued);
  p.v2 = std::make_unique<grpcsvc::V2InferenceService>(
      p.classifier.get(), &reg, p.inference_pool.get(), &p.health, &p.observer, p.access.get(),
      PROJECT_VERSION, "grpc");

  // Reflection is a plugin every builder picks up: taken out unless asked for.
  if (o.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto configure = [&o](grpc::ServerBuilder* builder) {
    if (!o.reflection) builder->SetOption(std::make_unique<WithoutReflection>());
    // Two processes on one port would split the traffic between them without
    // a word: a port in use is an error.
    builder->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder->SetMaxReceiveMessageSize(static_cast<int>(o.max_grpc_message_bytes));
    builder->SetMaxSendMessageSize(static_cast<int>(o.max_grpc_message_bytes));
  };
  std::string grpc_address;  // the main listener, its port chosen
  {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(o.listen, *credentials, &port);
    configure(&builder);
    builder.RegisterService(p.inference.get());
    builder.RegisterService(p.models.get());
    builder.RegisterService(p.v2.get());
    builder.RegisterService(&p.health);
    p.grpc_server = builder.BuildAndStart();
    if (p.grpc_server == nullptr || (port == 0 && !absl::StartsWith(o.listen, "unix:"))) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen for gRPC on ", o.listen, ": ", WhyCannotListen(o.listen)));
    }
    grpc_address = WithPort(o.listen, port);
    spdlog::info("gRPC listening on {} ({})", grpc_address,
                 o.tls_cert_file.empty()          ? "plaintext"
                 : o.tls_client_ca_file.empty() ? "TLS"
                                                : "mutual TLS");
  }
  if (!o.admin_listen.empty()) {
    // Whoever reaches the admin listener is trusted with everything it serves.
    grpcsvc::AccessOptions admin;
    admin.open_management = true;
    p.admin_access = std::make_unique<grpcsvc::AccessControl>(admin);
    p.admin_models = std::make_unique<grpcsvc::ModelsService>(
        &reg, p.admin_pool.get(), &p.observer, p.admin_access.get(), "admin", queued);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(o.admin_listen, grpc::InsecureServerCredentials(), &port);
    configure(&builder);
    builder.RegisterService(p.admin_models.get());
    p.admin_elsewhere = std::make_unique<AdminElsewhere>(grpc_address);
    builder.RegisterCallbackGenericService(p.admin_elsewhere.get());
    p.admin_server = builder.BuildAndStart();
    if (p.admin_server == nullptr || (port == 0 && !absl::StartsWith(o.admin_listen, "unix:"))) {
      p.grpc_server->Shutdown(absl::ToChronoTime(absl::Now()));
      return absl::UnavailableError(absl::StrCat("cannot listen for --admin-listen on ",
                                                 o.admin_listen, ": ",
                                                 WhyCannotListen(o.admin_listen)));
    }
    spdlog::info("admin listener on {} (plaintext; model management without a token)",
                 WithPort(o.admin_listen, port));
  }
  spdlog::info("bertserve {} (torch {}, cuda {}); {} worker threads, {} intra-op threads",
               PROJECT_VERSION, torchrt::TorchVersion(), torchrt::CudaVersion(),
               o.worker_threads, torchrt::IntraOpThreads());
  spdlog::info("metrics listening on {}", WithPort(o.metrics_listen, m.port()));
  spdlog::info("model management on the gRPC listener: {}; inference: {}; reflection {}",
               o.management_token_file.empty() ? "disabled (no --management-token-file)"
                                               : "with the management token",
               o.inference_token_file.empty() ? "open" : "with the inference token",
               o.reflection ? "on" : "off");

  // Readiness waits for the startup models, loaded side by side (their reads
  // run in parallel; their placements one at a time). With --load they are
  // required: one failing keeps the server unready. Without --load every
  // model is best-effort: a broken one is FAILED and the rest serve, and
  // readiness waits at most --startup-load-timeout for the slow ones.
  const size_t total = p.startup_models.size();
  const bool explicit_load = p.explicit_load;
  // REQUIRES: the startup mutex held.
  auto turn_ready = [&health, &m, total](size_t settled, size_t failures) {
    TurnReady(health, m, settled, failures, total);
  };
  std::shared_ptr<Startup> startup = p.startup;
  for (const std::string& name : p.startup_models) {
    reg.LoadAsync(name, absl::InfiniteFuture(),
                  [startup, total, explicit_load, turn_ready, name](absl::StatusOr<core::ModelInfo> info) {
                    absl::MutexLock lock(&startup->mu);
                    if (startup->closed) return;
                    const size_t settled = ++startup->settled;
                    if (!info.ok()) {
                      startup->failed = true;
                      ++startup->failures;
                    }
                    if (!info.ok() && explicit_load) {
                      spdlog::error("not ready: model {} named by --load failed to load", name);
                    }
                    if (settled == total && !startup->ready &&
                        (!explicit_load || !startup->failed)) {
                      startup->ready = true;
                      turn_ready(settled, startup->failures);
                    }
                  });
  }
  if (total == 0) {
    absl::MutexLock lock(&startup->mu);
    startup->ready = true;
    turn_ready(0, 0);
  }
  return std::unique_ptr<Server>(new Server(std::move(parts)));
}

int Server::WaitForSignal() {
  Parts& p = *parts_;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal_number = 0;
  if (!p.explicit_load) {
    // Best-effort startup: stop waiting for slow models after the timeout.
    const absl::Time until = absl::Now() + absl::Seconds(p.options.startup_load_timeout_seconds);
    while (signal_number <= 0 && absl::Now() < until) {
      timespec left = absl::ToTimespec(until - absl::Now());
      signal_number = sigtimedwait(&signals, nullptr, &left);
      if (signal_number < 0 && errno != EINTR) break;  // EAGAIN: the timeout
    }
    if (signal_number <= 0) {
      signal_number = 0;
      absl::MutexLock lock(&p.startup->mu);
      if (!p.startup->ready) {
        p.startup->ready = true;
        spdlog::warn("{} startup model(s) still loading after --startup-load-timeout {} s; "
                     "ready without them (they keep loading)",
                     p.startup_models.size() - p.startup->settled,
                     p.options.startup_load_timeout_seconds);
        TurnReady(p.health, *p.metrics, p.startup->settled, p.startup->failures,
                  p.startup_models.size());
      }
    }
  }
  if (signal_number <= 0) sigwait(&signals, &signal_number);
  return signal_number;
}

// The drain after SIGTERM or SIGINT:
//  1. readiness turns NOT_SERVING at once; gRPC refuses new calls and open
//     streams answer new messages UNAVAILABLE;
//  2. calls in flight get until --drain-timeout to finish; at the timeout,
//     gRPC cancels the ones still open (each answers CANCELLED at once, see
//     UnaryCall) and every input still queued for a forward is failed
//     without running it (Batcher::Stop), so the process exits within about
//     a second of the timeout whatever its queues held;
//  3. exit code 0; or 3 when a model read was still stuck in I/O (a dead
//     volume, say) half a second past the timeout: the process then exits
//     without waiting for it, since a thread blocked in read() cannot be
//     stopped.
int Server::Drain(int signal_number) {
  Parts& p = *parts_;
  {
    absl::MutexLock lock(&p.startup->mu);
    p.startup->closed = true;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(p.options.drain_timeout_seconds);
  spdlog::info("received {}; draining (up to {} s; a second SIGTERM or SIGINT exits at once)",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT", p.options.drain_timeout_seconds);
  // An operator who will not wait for the drain signals again: the process
  // exits now, with the shell's code for death by that signal. (Every
  // thread blocks these signals; this one takes the next.)
  // It waits in slices and is joined before Drain returns, so it never
  // logs while the process tears down.
  std::atomic<bool> drained{false};
  std::thread second_signal([&drained] {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    while (!drained.load()) {
      timespec slice{0, 100 * 1000 * 1000};
      const int second = sigtimedwait(&signals, nullptr, &slice);
      if (second != SIGTERM && second != SIGINT) continue;  // the slice ended, or EINTR
      spdlog::warn("received {} while draining; exiting now without finishing the drain (exit "
                   "code {})",
                   second == SIGTERM ? "SIGTERM" : "SIGINT", 128 + second);
      // Other threads may be logging: flushed, never torn down (the sink
      // writes through at every level anyway).
      spdlog::default_logger()->flush();
      std::_Exit(128 + second);
    }
  });
  absl::Cleanup join_second_signal = [&drained, &second_signal] {
    drained.store(true);
    second_signal.join();
  };
  p.health.Shutdown();
  p.metrics->SetReady(false);
  p.inference->StartDraining();
  p.v2->StartDraining();
  if (p.admin_server != nullptr) p.admin_server->Shutdown(absl::ToChronoTime(deadline));
  p.grpc_server->Shutdown(absl::ToChronoTime(deadline));
  p.batcher->Stop();
  p.registry->Shutdown();
  if (!p.registry->WaitForReads(std::max(deadline, absl::Now()) + absl::Milliseconds(500))) {
    spdlog::critical("{} model read(s) still stuck in I/O after the drain; exiting without them "
                     "(exit code 3)",
                     p.registry->ReadsInProgress());
    spdlog::default_logger()->flush();
    std::_Exit(3);
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace bertserve
