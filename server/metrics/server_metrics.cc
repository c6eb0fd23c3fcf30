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
                      .Register(*registry_)) {}

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
