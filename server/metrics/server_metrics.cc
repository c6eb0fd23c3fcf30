#include "server/metrics/server_metrics.h"

#include <algorithm>

#include <exception>

#include "absl/strings/str_cat.h"

namespace bertserve::metrics {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return *buckets;
}

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("bertserve_requests_total")
                    .Help("Finished RPCs by model, method and gRPC status code.")
                    .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("bertserve_request_duration_seconds")
                            .Help("End-to-end RPC latency in seconds, by model and method (Classify, Tokenize, Models.Load, ...).")
                            .Register(*registry_)),
      model_state_(prometheus::BuildGauge()
                       .Name("bertserve_model_state")
                       .Help("1 for the state each model is in, 0 for the others.")
                       .Register(*registry_)),
      model_memory_(prometheus::BuildGauge()
                        .Name("bertserve_model_memory_bytes")
                        .Help("Weight bytes held per model per tier (device, host); device-tier series "
                              "name the device.")
                        .Register(*registry_)),
      build_info_(prometheus::BuildGauge()
                      .Name("bertserve_build_info")
                      .Help("Always 1; labels tell the version and runtime.")
                      .Register(*registry_)),
      activation_reserve_(Gauge("bertserve_model_activation_reserve_bytes",
                                "Activation memory reserved per model for one batch at its "
                                "token limit (measured at warm-up).")),
      placements_(prometheus::BuildCounter()
                      .Name("bertserve_model_placements_total")
                      .Help("Placement jobs by model, kind (load, swap_in, evict, unload) and "
                            "result (ok, error).")
                      .Register(*registry_)),
      placement_duration_(prometheus::BuildHistogram()
                              .Name("bertserve_model_placement_duration_seconds")
                              .Help("Time per placement job in seconds, by kind.")
                              .Register(*registry_)),
      device_total_(Gauge("bertserve_device_memory_total_bytes",
                          "Device memory as the device reports it (all processes).")),
      device_free_(Gauge("bertserve_device_memory_free_bytes",
                         "Free device memory as the device reports it (all processes).")),
      device_used_(Gauge("bertserve_device_memory_used_bytes",
                         "Device memory in use as the device reports it (total - free, all "
                         "processes).")),
      vram_budget_(Gauge("bertserve_vram_budget_bytes", "The VRAM budget in force.")),
      vram_reserved_(Gauge("bertserve_vram_reserved_bytes",
                           "Bytes bertserve has admitted: resident weights plus the largest "
                           "activation reserve.")),
      allocator_allocated_(Gauge("bertserve_allocator_allocated_bytes",
                                 "Live tensor bytes in the framework allocator.")),
      allocator_reserved_(Gauge("bertserve_allocator_reserved_bytes",
                                "Bytes the framework allocator holds (live and cached).")),
      allocator_peak_(Gauge("bertserve_allocator_peak_bytes",
                            "Highest live tensor bytes since the last warm-up measurement.")),
      host_memory_(Gauge("bertserve_host_memory_bytes",
                         "Host memory holding offloaded weights (pinned where CUDA exists).")),
      host_budget_(Gauge("bertserve_host_budget_bytes", "The host tier's budget.")),
      placement_queue_depth_(Gauge("bertserve_placement_queue_depth",
                                   "Placement jobs queued and not yet started.")),
      oom_events_(Counter("bertserve_oom_events_total",
                          "Out-of-memory errors caught in forward passes, per model.")),
      batch_splits_(Counter("bertserve_batch_splits_total",
                            "Batches split in halves after running out of memory.")),
      expired_(Counter("bertserve_expired_inputs_total",
                       "Inputs dropped from a batch queue because their deadline passed; "
                       "they never reached a forward pass.")),
      batch_token_limit_(Gauge("bertserve_batch_token_limit",
                               "Current adaptive batch token limit (longest x rows), tokens.")),
      token_limit_changes_(Counter("bertserve_batch_token_limit_changes_total",
                                   "Changes of the batch token limit, by direction "
                                   "(down after OOM, up after a run of successes).")),
      batch_size_(Histogram("bertserve_batch_size", "Inputs per executed forward pass.")),
      batch_tokens_(Histogram("bertserve_batch_tokens",
                              "Padded tokens (longest x rows) per executed forward pass.")),
      padding_ratio_(Histogram("bertserve_padding_ratio",
                               "Real tokens / padded tokens per executed forward pass.")),
      queue_depth_(Gauge("bertserve_queue_depth", "Inputs waiting in the model's batch queue.")),
      queue_duration_(Histogram("bertserve_queue_duration_seconds",
                                "Time an input waited in its batch queue.")),
      model_wait_duration_(Histogram("bertserve_model_wait_seconds",
                                     "Seconds a request waited for its model to be placed (a "
                                     "load, a swap-in, or its turn on a device shared with "
                                     "models that do not fit beside it) before it queued; "
                                     "only requests that waited.")),
      compute_duration_(Histogram("bertserve_compute_duration_seconds",
                                  "Time per executed forward pass.")),
      tokenize_duration_(Histogram("bertserve_tokenize_duration_seconds",
                                   "Time to tokenize one request's inputs.")),
      allocator_fragmentation_(Gauge("bertserve_allocator_fragmentation_ratio",
                                     "Share of the allocator's reserved bytes not holding live "
                                     "tensors (cached or fragmented), 0 to 1.")),
      ready_(Gauge("bertserve_ready",
                   "1 while the readiness health service is SERVING, else 0.")),
      access_denied_(Counter("bertserve_access_denied_total",
                             "RPCs refused by access control, by method and gRPC code "
                             "(UNAUTHENTICATED: no or a wrong token; PERMISSION_DENIED: "
                             "management disabled on the listener).")),
      device_models_(Gauge("bertserve_device_models",
                           "Models with weights on the device now.")),
      device_lost_(Gauge("bertserve_device_lost",
                         "1 once the device failed for good (a sticky error); its models "
                         "moved to the other devices.")),
      model_replicas_(Gauge("bertserve_model_replicas",
                            "Device copies of the model now (0 while it is only in host "
                            "memory or not loaded).")),
      placement_decisions_(Counter("bertserve_placement_decisions_total",
                                   "Placements by the device chosen and the reason: free (fitted "
                                   "beside what was there), evict (after evicting idle models), "
                                   "wait (after models in use finished their turn).")) {
  ready_.Add({}).Set(0);
}

prometheus::Family<prometheus::Gauge>& ServerMetrics::Gauge(const std::string& name,
                                                           const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Counter>& ServerMetrics::Counter(const std::string& name,
                                                               const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Histogram>& ServerMetrics::Histogram(const std::string& name,
                                                                   const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
}

namespace {

const prometheus::Histogram::BucketBoundaries& PowersOfTwo(double top) {
  static const auto* const rows = new prometheus::Histogram::BucketBoundaries{
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  static const auto* const tokens = new prometheus::Histogram::BucketBoundaries{
      16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
  return top <= 1024 ? *rows : *tokens;
}

const prometheus::Histogram::BucketBoundaries& RatioBuckets() {
  static const auto* const b =
      new prometheus::Histogram::BucketBoundaries{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
                                                  0.8, 0.85, 0.9, 0.95, 1.0};
  return *b;
}

}  // namespace

void ServerMetrics::RecordBatch(const std::string& model, int rows, int64_t padded_tokens,
                                int64_t real_tokens, double seconds) {
  const prometheus::Labels labels{{"model", model}};
  batch_size_.Add(labels, PowersOfTwo(1024)).Observe(rows);
  batch_tokens_.Add(labels, PowersOfTwo(65536)).Observe(static_cast<double>(padded_tokens));
  if (padded_tokens > 0) {
    padding_ratio_.Add(labels, RatioBuckets())
        .Observe(static_cast<double>(real_tokens) / static_cast<double>(padded_tokens));
  }
  compute_duration_.Add(labels, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::RecordQueueWait(const std::string& model, double seconds) {
  queue_duration_.Add({{"model", model}}, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::RecordModelWait(const std::string& model, double seconds) {
  model_wait_duration_.Add({{"model", model}}, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::RecordTokenize(const std::string& model, double seconds) {
  tokenize_duration_.Add({{"model", model}}, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::RecordOom(const std::string& model) {
  oom_events_.Add({{"model", model}}).Increment();
}

void ServerMetrics::RecordSplit(const std::string& model) {
  batch_splits_.Add({{"model", model}}).Increment();
}

void ServerMetrics::RecordExpired(const std::string& model) {
  expired_.Add({{"model", model}}).Increment();
}

void ServerMetrics::SetBatchTokenLimit(const std::string& model, int64_t tokens, int change) {
  batch_token_limit_.Add({{"model", model}}).Set(static_cast<double>(tokens));
  // Both directions exist from the first value on, so rates start at 0.
  auto& down = token_limit_changes_.Add({{"model", model}, {"direction", "down"}});
  auto& up = token_limit_changes_.Add({{"model", model}, {"direction", "up"}});
  if (change < 0) down.Increment();
  if (change > 0) up.Increment();
  oom_events_.Add({{"model", model}});
  batch_splits_.Add({{"model", model}});
  expired_.Add({{"model", model}});
}

void ServerMetrics::InitModel(const std::string& model) {
  for (const char* kind : {"load", "swap_in", "evict", "unload"}) {
    for (const char* result : {"ok", "error"}) {
      placements_.Add({{"model", model}, {"kind", kind}, {"result", result}});
    }
  }
  oom_events_.Add({{"model", model}});
  batch_splits_.Add({{"model", model}});
  expired_.Add({{"model", model}});
  token_limit_changes_.Add({{"model", model}, {"direction", "down"}});
  token_limit_changes_.Add({{"model", model}, {"direction", "up"}});
  queue_depth_.Add({{"model", model}}).Set(0);
}

void ServerMetrics::SetReady(bool ready) { ready_.Add({}).Set(ready ? 1 : 0); }

void ServerMetrics::SetQueueDepth(const std::string& model, int64_t inputs) {
  queue_depth_.Add({{"model", model}}).Set(static_cast<double>(inputs));
}

void ServerMetrics::SetActivationReserve(const std::string& model, double bytes) {
  activation_reserve_.Add({{"model", model}}).Set(bytes);
}

const prometheus::Histogram::BucketBoundaries& PlacementBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

void ServerMetrics::RecordPlacement(const std::string& model, absl::string_view kind, bool ok,
                                    double seconds) {
  placements_
      .Add({{"model", model}, {"kind", std::string(kind)}, {"result", ok ? "ok" : "error"}})
      .Increment();
  placement_duration_.Add({{"kind", std::string(kind)}}, PlacementBuckets()).Observe(seconds);
}

void ServerMetrics::SetMemory(const MemoryGauges& g) {
  const prometheus::Labels device{{"device", g.device}};
  device_total_.Add(device).Set(g.total);
  device_free_.Add(device).Set(g.free);
  device_used_.Add(device).Set(std::max(0.0, g.total - g.free));
  vram_budget_.Add(device).Set(g.budget);
  vram_reserved_.Add(device).Set(g.reserved);
  allocator_allocated_.Add(device).Set(g.allocator_allocated);
  allocator_reserved_.Add(device).Set(g.allocator_reserved);
  allocator_peak_.Add(device).Set(g.allocator_peak);
  // Share of the allocator's reservation that holds no live tensor: cached
  // blocks, reusable by us but not by other processes.
  allocator_fragmentation_.Add(device).Set(
      g.allocator_reserved > 0
          ? std::max(0.0, (g.allocator_reserved - g.allocator_allocated) / g.allocator_reserved)
          : 0.0);
  host_memory_.Add({}).Set(g.host);
  host_budget_.Add({}).Set(g.host_budget);
  // One queue serves every device: only the first device's gauges carry it.
  if (g.placement_queue_depth >= 0) placement_queue_depth_.Add(device).Set(g.placement_queue_depth);
  device_models_.Add(device).Set(g.resident_models);
  device_lost_.Add(device).Set(g.lost ? 1 : 0);
}

void ServerMetrics::SetScrapeHook(std::function<void()> hook) {
  if (http_) http_->SetScrapeHook(std::move(hook));
}

void ServerMetrics::SetHealthChecks(std::function<bool()> liveness,
                                    std::function<bool()> readiness) {
  if (!http_) return;
  http_->SetLivenessCheck(std::move(liveness));
  http_->SetReadinessCheck(std::move(readiness));
}

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Create(
    const std::string& listen, absl::string_view version, absl::string_view torch_version,
    absl::string_view cuda_version) {
  std::unique_ptr<ServerMetrics> metrics(new ServerMetrics());
  metrics->build_info_
      .Add({{"version", std::string(version)},
            {"torch", std::string(torch_version)},
            {"cuda", std::string(cuda_version)}})
      .Set(1);
  if (!listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http =
        MetricsHttpServer::Start(listen, metrics->registry_);
    if (!http.ok()) return http.status();
    metrics->http_ = *std::move(http);
  }
  return metrics;
}

int ServerMetrics::port() const {
  return http_ ? http_->port() : 0;
}

void ServerMetrics::RecordRequest(const std::string& model, absl::string_view method,
                                  absl::string_view code, double seconds) {
  requests_.Add({{"model", model}, {"method", std::string(method)}, {"code", std::string(code)}})
      .Increment();
  request_duration_.Add({{"model", model}, {"method", std::string(method)}}, LatencyBuckets())
      .Observe(seconds);
  if (code == "UNAUTHENTICATED" || code == "PERMISSION_DENIED") {
    access_denied_.Add({{"method", std::string(method)}, {"code", std::string(code)}}).Increment();
  }
}

void ServerMetrics::SetModelState(const std::string& model, absl::string_view state,
                                  const std::vector<absl::string_view>& all) {
  for (absl::string_view s : all) {
    model_state_.Add({{"model", model}, {"state", std::string(s)}}).Set(s == state ? 1 : 0);
  }
}

void ServerMetrics::SetModelMemory(const std::string& model, absl::string_view tier,
                                   double bytes) {
  model_memory_.Add({{"model", model}, {"tier", std::string(tier)}}).Set(bytes);
}

void ServerMetrics::SetModelDeviceMemory(
    const std::string& model, const std::vector<std::pair<std::string, double>>& by_device) {
  absl::MutexLock lock(&model_device_mu_);
  std::vector<std::string>& before = model_devices_[model];
  for (const std::string& device : before) {
    const bool still = std::any_of(by_device.begin(), by_device.end(),
                                   [&](const auto& copy) { return copy.first == device; });
    if (!still) {
      model_memory_.Add({{"model", model}, {"tier", "device"}, {"device", device}}).Set(0);
    }
  }
  before.clear();
  for (const auto& [device, bytes] : by_device) {
    model_memory_.Add({{"model", model}, {"tier", "device"}, {"device", device}}).Set(bytes);
    before.push_back(device);
  }
}

void ServerMetrics::SetModelReplicas(const std::string& model, double copies) {
  model_replicas_.Add({{"model", model}}).Set(copies);
}

void ServerMetrics::RecordPlacementDecision(const std::string& device, absl::string_view reason) {
  placement_decisions_.Add({{"device", device}, {"reason", std::string(reason)}}).Increment();
}

}  // namespace bertserve::metrics
