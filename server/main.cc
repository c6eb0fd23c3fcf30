// bertserve: flags and config -> wiring -> serve until SIGTERM/SIGINT -> drain.

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
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
#include "server/grpc/health_service.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/models_service.h"
#include "server/logging/logging.h"
#include "server/metrics/server_metrics.h"
#include "server/torch/runtime_info.h"
#include "server/torch/torch_device.h"
#include "server/torch/torch_model.h"

namespace bertserve {
namespace {

struct Flags {
  std::string config_file;
  v1::ServerConfig config;
};

// Defaults for fields neither the --config file nor a flag sets.
void FillDefaults(v1::ServerConfig* c) {
  if (c->listen().empty()) c->set_listen("0.0.0.0:50051");
  if (c->metrics_listen().empty()) c->set_metrics_listen("0.0.0.0:9400");
  if (c->log_format().empty()) c->set_log_format("text");
  if (c->log_level().empty()) c->set_log_level("info");
  const int cores = core::UsableCores();
  if (c->worker_threads() <= 0) c->set_worker_threads(std::max(2, cores));
  if (c->intra_op_threads() <= 0) {
    // OMP_NUM_THREADS, where set, is the operator's word for the same thing.
    int omp = 0;
    const char* env = std::getenv("OMP_NUM_THREADS");
    c->set_intra_op_threads(env != nullptr && absl::SimpleAtoi(env, &omp) && omp > 0 ? omp
                                                                                     : cores);
  }
  if (c->drain_timeout_seconds() <= 0) c->set_drain_timeout_seconds(30);
  if (c->device().empty()) c->set_device("auto");
  if (c->vram_budget().empty()) c->set_vram_budget("90%");
  if (c->host_budget().empty()) c->set_host_budget("8GiB");
  if (c->simulated_device_memory().empty()) c->set_simulated_device_memory("1GiB");
  if (c->max_queued_inputs_per_model() <= 0) c->set_max_queued_inputs_per_model(1024);
  if (c->max_queued_tokens_per_model() <= 0) c->set_max_queued_tokens_per_model(1 << 20);
  if (c->max_queued_inputs() <= 0) c->set_max_queued_inputs(4096);
  if (c->max_queued_tokens() <= 0) c->set_max_queued_tokens(4 << 20);
  if (c->startup_load_timeout_seconds() <= 0) c->set_startup_load_timeout_seconds(300);
  if (c->max_grpc_message_bytes() <= 0) c->set_max_grpc_message_bytes(4 << 20);
}

// Numbers that make no sense negative; 0 means "the default" for each.
absl::Status CheckNotNegative(const v1::ServerConfig& c) {
  const std::pair<const char*, double> fields[] = {
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
  for (const auto& [flag, value] : fields) {
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
  return absl::OkStatus();
}

// The device and the memory limits the flags ask for, checked against what
// the device has. Errors are the flag's name and what is wrong with it.
struct Placement {
  std::unique_ptr<torchrt::TorchDevice> device;
  std::unique_ptr<torchrt::TorchDevice> cpu;  // for models configured DEVICE_CPU
  core::RegistryOptions options;
};

absl::StatusOr<Placement> MakePlacement(const v1::ServerConfig& config) {
  absl::StatusOr<core::ByteSize> sim =
      core::ParseByteSize(config.simulated_device_memory(), "--simulated-device-memory");
  if (!sim.ok()) return sim.status();
  if (sim->is_fraction) {
    return absl::InvalidArgumentError("--simulated-device-memory must be bytes, not a share");
  }
  std::string spec = config.device();
  if (spec == "auto") spec = torchrt::CudaAvailable() ? "cuda:0" : "cpu";
  Placement p;
  absl::StatusOr<std::unique_ptr<torchrt::TorchDevice>> device =
      torchrt::CreateTorchDevice(spec, sim->bytes, config.simulated_foreign_memory_file());
  if (!device.ok()) {
    return absl::Status(device.status().code(),
                        absl::StrCat("--device ", spec, ": ", device.status().message()));
  }
  p.device = *std::move(device);
  if (p.device->name() == "cpu") {
    p.cpu = nullptr;
  } else {
    absl::StatusOr<std::unique_ptr<torchrt::TorchDevice>> cpu = torchrt::CreateTorchDevice("cpu", 0);
    if (!cpu.ok()) return cpu.status();
    p.cpu = *std::move(cpu);
  }

  absl::StatusOr<core::ByteSize> budget = core::ParseByteSize(config.vram_budget(), "--vram-budget");
  if (!budget.ok()) return budget.status();
  const bool cuda = absl::StartsWith(p.device->name(), "cuda");
  absl::StatusOr<core::ByteSize> reserve = core::ParseByteSize(
      config.vram_reserve().empty() ? (cuda ? "1GiB" : "0") : config.vram_reserve(),
      "--vram-reserve");
  if (!reserve.ok()) return reserve.status();
  absl::StatusOr<core::ByteSize> host = core::ParseByteSize(config.host_budget(), "--host-budget");
  if (!host.ok()) return host.status();
  if (host->is_fraction) return absl::InvalidArgumentError("--host-budget must be bytes, not a share");

  const int64_t total = p.device->Memory().total_bytes;
  const int64_t reserve_bytes = reserve->Resolve(total);
  int64_t budget_bytes = budget->Resolve(total);
  if (p.device->has_budget()) {
    if (reserve_bytes >= total) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--vram-reserve ", config.vram_reserve(), " (", reserve_bytes,
          " bytes) leaves nothing of ", p.device->name(), "'s ", total, " bytes"));
    }
    budget_bytes = std::min(budget_bytes, total - reserve_bytes);
    if (budget_bytes <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--vram-budget ", config.vram_budget(),
                                                     " is no memory at all"));
    }
    p.device->CapAllocator(budget_bytes);
  }
  p.options.device = p.device.get();
  p.options.vram_budget = p.device->has_budget() ? budget_bytes : 0;
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
    spdlog::warn("model {}: a forward of {} tokens ran out of memory, splitting it: {} (model={}, "
                 "tokens={})",
                 model, padded_tokens, std::string(error.message()), model, padded_tokens);
  }
  void OnSplit(const std::string& model) override { metrics_->RecordSplit(model); }
  void OnTokenLimit(const std::string& model, int64_t tokens, int change) override {
    metrics_->SetBatchTokenLimit(model, tokens, change);
    if (change != 0) {
      spdlog::info("model {}: batch token limit {} to {} (model={}, batch_token_limit={})", model,
                   change < 0 ? "lowered" : "raised", tokens, model, tokens);
    }
  }
  void OnQueueDepth(const std::string& model, int64_t inputs) override {
    metrics_->SetQueueDepth(model, inputs);
  }
  void OnExpired(const std::string& model) override { metrics_->RecordExpired(model); }
  void OnTokenized(const std::string& model, double seconds) override {
    metrics_->RecordTokenize(model, seconds);
  }

 private:
  metrics::ServerMetrics* const metrics_;
};

// "0.0.0.0:0" with the port the server got -> "0.0.0.0:43121".
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
int Drain(const v1::ServerConfig& config, int signal_number, grpcsvc::HealthService* health,
          metrics::ServerMetrics* metrics, grpcsvc::InferenceService* inference,
          grpc::Server* server, core::Batcher* batcher, core::ModelRegistry* registry) {
  const absl::Time deadline = absl::Now() + absl::Seconds(config.drain_timeout_seconds());
  spdlog::info("received {}; draining (up to {} s)", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
               config.drain_timeout_seconds());
  health->Shutdown();
  metrics->SetReady(false);
  inference->StartDraining();
  server->Shutdown(absl::ToChronoTime(deadline));
  batcher->Stop();
  registry->Shutdown();
  if (!registry->WaitForReads(std::max(deadline, absl::Now()) + absl::Milliseconds(500))) {
    spdlog::critical("{} model read(s) still stuck in I/O after the drain; exiting without them "
                     "(exit code 3)",
                     registry->ReadsInProgress());
    spdlog::shutdown();
    std::_Exit(3);
  }
  spdlog::info("stopped");
  return 0;
}

std::string WithPort(const std::string& address, int port) {
  const size_t colon = address.rfind(':');
  return absl::StrCat(address.substr(0, colon), ":", port);
}

int Run(const Flags& flags) {
  const v1::ServerConfig& config = flags.config;
  if (absl::Status s = logging::Configure(config.log_format(), config.log_level()); !s.ok()) {
    fprintf(stderr, "bertserve: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<core::ModelRepository> repository =
      core::ModelRepository::Open(config.model_repository());
  if (!repository.ok()) {
    spdlog::critical("{}", std::string(repository.status().message()));
    return 2;
  }
  // Before any forward pass: the executor threads pick the setting up.
  if (absl::Status s = torchrt::SetIntraOpThreads(config.intra_op_threads()); !s.ok()) {
    spdlog::critical("--intra-op-threads: {}", std::string(s.message()));
    return 2;
  }
  absl::StatusOr<Placement> placement = MakePlacement(config);
  if (!placement.ok()) {
    spdlog::critical("{}", std::string(placement.status().message()));
    return 2;
  }
  torchrt::TorchModelLoader loader(placement->device.get(),
                                   placement->cpu ? placement->cpu.get() : placement->device.get());
  absl::StatusOr<std::unique_ptr<core::ModelRegistry>> registry_or =
      core::ModelRegistry::Create(*repository, &loader, placement->options);
  if (!registry_or.ok()) {
    spdlog::critical("{}", std::string(registry_or.status().message()));
    return 2;
  }
  core::ModelRegistry& registry = **registry_or;

  // Startup models: --load, or everything in the repository. A name that is
  // not there is a configuration error, found before anything listens.
  std::vector<std::string> startup(config.load().begin(), config.load().end());
  const bool explicit_load = !startup.empty();
  if (startup == std::vector<std::string>{"none"}) {
    startup.clear();  // every model waits in the repository for its first request
  } else if (!explicit_load) {
    for (const core::ModelInfo& info : registry.List()) startup.push_back(info.name);
  }
  for (const std::string& name : startup) {
    if (absl::StatusOr<core::ModelInfo> info = registry.Get(name); !info.ok()) {
      spdlog::critical("--load {}: {}", name, std::string(info.status().message()));
      return 2;
    }
  }

  // Before the metrics endpoint, which asks it for /healthz and /readyz and so
  // must be destroyed first.
  grpcsvc::HealthService health;
  absl::StatusOr<std::unique_ptr<metrics::ServerMetrics>> metrics_or =
      metrics::ServerMetrics::Create(config.metrics_listen(), PROJECT_VERSION,
                                     torchrt::TorchVersion(), torchrt::CudaVersion());
  if (!metrics_or.ok()) {
    spdlog::critical("{}", std::string(metrics_or.status().message()));
    return 2;
  }
  metrics::ServerMetrics& metrics = **metrics_or;
  metrics.SetHealthChecks([&health] { return health.IsServing(""); },
                          [&health] { return health.IsServing(grpcsvc::kReadinessService); });

  std::vector<absl::string_view> state_names;
  for (core::ModelState s : core::kAllModelStates) state_names.push_back(core::ModelStateName(s));
  auto export_model = [&metrics, state_names](const core::ModelInfo& info) {
    metrics.SetModelState(info.name, core::ModelStateName(info.state), state_names);
    metrics.SetModelMemory(info.name, "device", static_cast<double>(info.device_bytes));
    metrics.SetModelMemory(info.name, "host", static_cast<double>(info.host_bytes));
    metrics.SetActivationReserve(info.name, static_cast<double>(info.activation_reserve));
  };
  for (const core::ModelInfo& info : registry.List()) {
    metrics.InitModel(info.name);
    export_model(info);
  }
  registry.AddStateListener([export_model](const core::ModelInfo& info) {
    export_model(info);
    if (info.state == core::ModelState::kFailed) {
      spdlog::error("model {} failed: {} model={}", info.name, info.last_error, info.name);
    } else {
      spdlog::info("model {} is {} (model={}, device={}, weight_bytes={}, device_bytes={}, "
                   "host_bytes={}, activation_reserve={}, batch_token_limit={} of {} configured)",
                   info.name, std::string(core::ModelStateName(info.state)), info.name, info.device,
                   info.weight_bytes, info.device_bytes, info.host_bytes, info.activation_reserve,
                   info.batch_token_limit, info.config.batch().max_batch_tokens());
    }
  });
  registry.AddPlacementListener([&metrics](const core::PlacementEvent& e) {
    const std::string kind(core::PlacementKindName(e.kind));
    metrics.RecordPlacement(e.model, kind, e.ok, e.seconds);
    if (e.ok) {
      spdlog::info("placement {} of {}: {} bytes in {:.3f} s (model={}, kind={}, bytes={}, seconds={:.3f})",
                   kind, e.model, e.bytes, e.seconds, e.model, kind, e.bytes, e.seconds);
    } else {
      spdlog::warn("placement {} of {} failed after {:.3f} s (model={}, kind={}, bytes={}): {}", kind,
                   e.model, e.seconds, e.model, kind, e.bytes, e.error);
    }
  });
  metrics.SetScrapeHook([&metrics, &registry] {
    const core::MemorySnapshot m = registry.Memory();
    metrics::MemoryGauges g;
    g.device = m.device;
    g.total = static_cast<double>(m.memory.total_bytes);
    g.free = static_cast<double>(m.memory.free_bytes);
    g.budget = static_cast<double>(m.budget);
    g.reserved = static_cast<double>(m.reserved);
    g.allocator_allocated = static_cast<double>(m.memory.allocated_bytes);
    g.allocator_reserved = static_cast<double>(m.memory.reserved_bytes);
    g.allocator_peak = static_cast<double>(m.memory.peak_bytes);
    g.host = static_cast<double>(m.host_bytes);
    g.host_budget = static_cast<double>(m.host_budget);
    g.placement_queue_depth = static_cast<double>(m.placement_queue_depth);
    metrics.SetMemory(g);
  });
  {
    const core::MemorySnapshot m = registry.Memory();
    spdlog::info("device {}: total {} bytes, budget {} bytes; host budget {} bytes", m.device,
                 m.memory.total_bytes, m.budget, m.host_budget);
  }

  const grpcsvc::CallObserver observer = [&metrics](const std::string& model,
                                                    absl::string_view method,
                                                    const grpc::Status& status, double seconds,
                                                    const std::string& request_id) {
    const grpc::StatusCode code = status.error_code();
    metrics.RecordRequest(model, method, grpcsvc::CodeName(code), seconds);
    // Failures on the server's side (not the client's) are logged, once each.
    if (code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::UNAVAILABLE ||
        code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::DEADLINE_EXCEEDED) {
      const std::string code_name(grpcsvc::CodeName(code));
      spdlog::warn("{} for model {} ended {} after {:.3f} s: {} (model={}, method={}, code={}{}{})",
                   std::string(method), model, code_name, seconds, status.error_message(), model,
                   std::string(method), code_name, request_id.empty() ? "" : ", request_id=",
                   request_id);
    }
  };

  core::WorkerPool inference_pool(config.worker_threads());
  // Placement calls block for seconds; their own threads keep them from
  // starving inference.
  // Placement calls never block a thread on the placement itself (the
  // registry calls back); these run their parsing and bookkeeping.
  core::WorkerPool admin_pool(2);
  core::BatcherOptions batching;
  batching.max_queued_inputs_per_model = config.max_queued_inputs_per_model();
  batching.max_queued_tokens_per_model = config.max_queued_tokens_per_model();
  batching.max_queued_inputs = config.max_queued_inputs();
  batching.max_queued_tokens = config.max_queued_tokens();
  MetricsBatchObserver batch_metrics(&metrics);
  batching.observer = &batch_metrics;
  // A device error that poisons the CUDA context cannot be recovered in
  // process: liveness fails so the orchestrator restarts the pod.
  batching.on_device_lost = [&health, &metrics](const absl::Status& error) {
    metrics.SetReady(false);
    spdlog::critical("execution device failed, liveness is now NOT_SERVING (restart needed): {}",
                     std::string(error.message()));
    health.SetDeviceLost();
  };
  core::Batcher batcher(&registry, batching);
  // Requests for a model being placed wait here, not on the inference pool.
  core::Classifier classifier(&registry, &batcher, &batch_metrics, &inference_pool);
  grpcsvc::InferenceService inference(&classifier, &registry, &inference_pool, &observer);
  grpcsvc::ModelsService models(&registry, &admin_pool, &observer);

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen(), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_grpc_message_bytes()));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_grpc_message_bytes()));
  builder.RegisterService(&inference);
  builder.RegisterService(&models);
  builder.RegisterService(&health);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen for gRPC on {}", config.listen());
    return 2;
  }
  spdlog::info("bertserve {} (torch {}, cuda {}); {} worker threads, {} intra-op threads "
               "(worker_threads={}, intra_op_threads={})",
               PROJECT_VERSION, torchrt::TorchVersion(), torchrt::CudaVersion(),
               config.worker_threads(), torchrt::IntraOpThreads(), config.worker_threads(),
               torchrt::IntraOpThreads());
  spdlog::info("gRPC listening on {}", WithPort(config.listen(), port));
  spdlog::info("metrics listening on {}", WithPort(config.metrics_listen(), metrics.port()));

  // Readiness waits for the startup models, loaded side by side (their reads
  // run in parallel; their placements one at a time). With --load they are
  // required: one failing keeps the server unready. Without --load every
  // model is best-effort: a broken one is FAILED and the rest serve, and
  // readiness waits at most --startup-load-timeout for the slow ones.
  struct Startup {
    absl::Mutex mu;
    size_t settled ABSL_GUARDED_BY(mu) = 0;
    bool failed ABSL_GUARDED_BY(mu) = false;
    bool ready ABSL_GUARDED_BY(mu) = false;
    // Set when draining starts: late load callbacks then touch nothing that
    // the end of Run destroys.
    bool closed ABSL_GUARDED_BY(mu) = false;
  };
  auto startup_state = std::make_shared<Startup>();
  const size_t total = startup.size();
  // REQUIRES: startup_state->mu held.
  auto turn_ready = [&health, &metrics, total](size_t settled) {
    health.SetServing(grpcsvc::kReadinessService, true);
    metrics.SetReady(true);
    spdlog::info("ready: {} of {} startup model(s) settled", settled, total);
  };
  for (const std::string& name : startup) {
    registry.LoadAsync(
        name, absl::InfiniteFuture(),
        [startup_state, total, explicit_load, turn_ready, name](absl::StatusOr<core::ModelInfo> info) {
          absl::MutexLock lock(&startup_state->mu);
          if (startup_state->closed) return;
          const size_t settled = ++startup_state->settled;
          if (!info.ok()) startup_state->failed = true;
          if (!info.ok() && explicit_load) {
            spdlog::error("not ready: model {} named by --load failed to load", name);
          }
          if (settled == total && !startup_state->ready &&
              (!explicit_load || !startup_state->failed)) {
            startup_state->ready = true;
            turn_ready(settled);
          }
        });
  }
  if (total == 0) {
    absl::MutexLock lock(&startup_state->mu);
    startup_state->ready = true;
    turn_ready(0);
  }

  // Every thread started above inherited the blocked signal mask from main.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal_number = 0;
  if (!explicit_load) {
    // Best-effort startup: stop waiting for slow models after the timeout.
    const absl::Time until =
        absl::Now() + absl::Seconds(config.startup_load_timeout_seconds());
    while (signal_number <= 0 && absl::Now() < until) {
      timespec left = absl::ToTimespec(until - absl::Now());
      signal_number = sigtimedwait(&signals, nullptr, &left);
      if (signal_number < 0 && errno != EINTR) break;  // EAGAIN: the timeout
    }
    if (signal_number <= 0) {
      signal_number = 0;
      absl::MutexLock lock(&startup_state->mu);
      if (!startup_state->ready) {
        startup_state->ready = true;
        spdlog::warn("{} startup model(s) still loading after --startup-load-timeout {} s; "
                     "ready without them (they keep loading)",
                     total - startup_state->settled, config.startup_load_timeout_seconds());
        turn_ready(startup_state->settled);
      }
    }
  }
  if (signal_number <= 0) sigwait(&signals, &signal_number);
  {
    absl::MutexLock lock(&startup_state->mu);
    startup_state->closed = true;
  }
  return Drain(config, signal_number, &health, &metrics, &inference, server.get(), &batcher,
               &registry);
}

}  // namespace
}  // namespace bertserve

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists so only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bertserve::Flags flags;
  CLI::App app{"bertserve: gRPC inference server for BERT-class TorchScript text classifiers"};
  std::string model_repository, listen, metrics_listen, log_format, log_level, load;
  int worker_threads = 0;
  int intra_op_threads = 0;
  double drain_timeout = 0;
  app.add_option("--config", flags.config_file,
                 "Server config file (bertserve.v1.ServerConfig, protobuf text format); "
                 "flags given on the command line override it");
  auto* repo_opt = app.add_option("--model-repository", model_repository,
                                  "Directory with one sub-directory per model");
  auto* listen_opt = app.add_option("--listen", listen,
                                    "gRPC listen address HOST:PORT (default 0.0.0.0:50051)");
  auto* metrics_opt = app.add_option("--metrics-listen", metrics_listen,
                                     "Prometheus /metrics listen address HOST:PORT "
                                     "(default 0.0.0.0:9400)");
  auto* load_opt = app.add_option("--load", load,
                                  "Comma-separated models placed at startup and required for "
                                  "readiness (default: every model, best-effort); \"none\": "
                                  "none, each model loads on its first request");
  auto* format_opt =
      app.add_option("--log-format", log_format, "Log format: text or json (default text)");
  auto* level_opt = app.add_option("--log-level", log_level,
                                   "trace, debug, info, warn, error (default info)");
  auto* threads_opt = app.add_option("--worker-threads", worker_threads,
                                     "Threads that validate and tokenize requests; forward "
                                     "passes run on one executor thread per device "
                                     "(default: the cores this process may use, at least 2)");
  auto* intra_opt = app.add_option("--intra-op-threads", intra_op_threads,
                                   "Threads one forward pass uses on the CPU "
                                   "(default: the cores this process may use)");
  auto* drain_opt = app.add_option("--drain-timeout", drain_timeout,
                                   "Seconds to finish in-flight requests after SIGTERM; then "
                                   "what is left is cancelled and the process exits (default 30)");
  double startup_load_timeout = 0;
  auto* startup_opt = app.add_option(
      "--startup-load-timeout", startup_load_timeout,
      "Without --load: the longest readiness waits for the startup models, in seconds; then "
      "the server turns ready and the slow ones keep loading (default 300)");
  int64_t max_message_bytes = 0;
  auto* message_opt = app.add_option("--max-grpc-message-bytes", max_message_bytes,
                                     "Largest gRPC request or response, in bytes; larger "
                                     "requests fail RESOURCE_EXHAUSTED (default 4194304)");
  std::string device, vram_budget, vram_reserve, host_budget, sim_memory;
  auto* device_opt = app.add_option("--device", device,
                                    "Execution device: auto, cuda:N, cpu (no budget), or sim "
                                    "(simulated device for CPU-only builds) (default auto)");
  auto* budget_opt = app.add_option("--vram-budget", vram_budget,
                                    "VRAM budget: bytes like 12GiB or a share like 90% of the "
                                    "device (default 90%)");
  auto* reserve_opt = app.add_option("--vram-reserve", vram_reserve,
                                     "Device memory kept out of the budget for the CUDA context "
                                     "and fragmentation (default 1GiB on CUDA, 0 otherwise)");
  auto* host_opt = app.add_option("--host-budget", host_budget,
                                  "Host memory for weights offloaded from the device "
                                  "(default 8GiB)");
  auto* sim_opt = app.add_option("--simulated-device-memory", sim_memory,
                                 "Capacity of the simulated device, with --device sim "
                                 "(default 1GiB)");
  std::string foreign_file;
  auto* foreign_opt = app.add_option(
      "--simulated-foreign-memory-file", foreign_file,
      "With --device sim: a file holding the bytes other processes use on the simulated "
      "device, re-read every few ms (to exercise OOM recovery under outside pressure)");
  int64_t queued_inputs_per_model = 0, queued_tokens_per_model = 0, queued_inputs = 0,
          queued_tokens = 0;
  auto* qipm_opt =
      app.add_option("--max-queued-inputs-per-model", queued_inputs_per_model,
                     "Inputs one model's batch queue holds before requests are refused with "
                     "RESOURCE_EXHAUSTED (default 1024)")
          ->check(CLI::PositiveNumber);
  auto* qtpm_opt =
      app.add_option("--max-queued-tokens-per-model", queued_tokens_per_model,
                     "Tokens one model's batch queue holds before refusing (default 1048576)")
          ->check(CLI::PositiveNumber);
  auto* qi_opt = app.add_option("--max-queued-inputs", queued_inputs,
                                "Inputs all batch queues together hold before refusing "
                                "(default 4096)")
                     ->check(CLI::PositiveNumber);
  auto* qt_opt = app.add_option("--max-queued-tokens", queued_tokens,
                                "Tokens all batch queues together hold before refusing "
                                "(default 4194304)")
                     ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  if (!flags.config_file.empty()) {
    absl::StatusOr<bertserve::v1::ServerConfig> file =
        bertserve::core::ReadServerConfig(flags.config_file);
    if (!file.ok()) {
      fprintf(stderr, "bertserve: %s\n", std::string(std::string(file.status().message())).c_str());
      return 2;
    }
    flags.config = *file;
  }
  bertserve::v1::ServerConfig& c = flags.config;
  if (*repo_opt) c.set_model_repository(model_repository);
  if (*listen_opt) c.set_listen(listen);
  if (*metrics_opt) c.set_metrics_listen(metrics_listen);
  if (*format_opt) c.set_log_format(log_format);
  if (*level_opt) c.set_log_level(log_level);
  if (*threads_opt) c.set_worker_threads(worker_threads);
  if (*intra_opt) c.set_intra_op_threads(intra_op_threads);
  if (*drain_opt) c.set_drain_timeout_seconds(drain_timeout);
  if (*startup_opt) c.set_startup_load_timeout_seconds(startup_load_timeout);
  if (*message_opt) c.set_max_grpc_message_bytes(max_message_bytes);
  if (*device_opt) c.set_device(device);
  if (*budget_opt) c.set_vram_budget(vram_budget);
  if (*reserve_opt) c.set_vram_reserve(vram_reserve);
  if (*host_opt) c.set_host_budget(host_budget);
  if (*sim_opt) c.set_simulated_device_memory(sim_memory);
  if (*foreign_opt) c.set_simulated_foreign_memory_file(foreign_file);
  if (*qipm_opt) c.set_max_queued_inputs_per_model(queued_inputs_per_model);
  if (*qtpm_opt) c.set_max_queued_tokens_per_model(queued_tokens_per_model);
  if (*qi_opt) c.set_max_queued_inputs(queued_inputs);
  if (*qt_opt) c.set_max_queued_tokens(queued_tokens);
  if (*load_opt) {
    c.clear_load();
    for (absl::string_view name : absl::StrSplit(load, ',', absl::SkipWhitespace())) {
      c.add_load(std::string(name));
    }
  }
  if (c.model_repository().empty()) {
    fprintf(stderr, "bertserve: --model-repository is required\n");
    return 2;
  }
  if (absl::Status s = bertserve::CheckNotNegative(c); !s.ok()) {
    fprintf(stderr, "bertserve: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  bertserve::FillDefaults(&c);
  return bertserve::Run(flags);
}
