#include "server/metrics/server_metrics.h"

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
                            .Help("End-to-end RPC latency in seconds, by model.")
                            .Register(*registry_)),
      model_state_(prometheus::BuildGauge()
                       .Name("bertserve_model_state")
                       .Help("1 for the state each model is in, 0 for the others.")
                       .Register(*registry_)),
      model_memory_(prometheus::BuildGauge()
                        .Name("bertserve_model_memory_bytes")
                        .Help("Weight bytes held per model per tier (device, host).")
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
                                   "Placement jobs queued and not yet started.")) {}

prometheus::Family<prometheus::Gauge>& ServerMetrics::Gauge(const std::string& name,
                                                           const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
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
  vram_budget_.Add(device).Set(g.budget);
  vram_reserved_.Add(device).Set(g.reserved);
  allocator_allocated_.Add(device).Set(g.allocator_allocated);
  allocator_reserved_.Add(device).Set(g.allocator_reserved);
  allocator_peak_.Add(device).Set(g.allocator_peak);
  host_memory_.Add({}).Set(g.host);
  host_budget_.Add({}).Set(g.host_budget);
  placement_queue_depth_.Add(device).Set(g.placement_queue_depth);
}

void ServerMetrics::SetScrapeHook(std::function<void()> hook) {
  if (http_) http_->SetScrapeHook(std::move(hook));
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
  request_duration_.Add({{"model", model}}, LatencyBuckets()).Observe(seconds);
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

}  // namespace bertserve::metrics
