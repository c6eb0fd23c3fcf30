#ifndef BERTSERVE_SERVER_METRICS_SERVER_METRICS_H_
#define BERTSERVE_SERVER_METRICS_SERVER_METRICS_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/metrics/metrics_http_server.h"

namespace bertserve::metrics {

// The Prometheus registry of the server and its /metrics endpoint. Names
// follow ../DESIGN.md (prefix bertserve_, base units, counters end _total).
// Label values for `model` must be model names the server knows (or "" for
// requests naming no known model), so cardinality stays bounded.
// Thread-safe.
class ServerMetrics {
 public:
  // Serves /metrics on `listen` (HOST:PORT; port 0 picks a free one).
  // An empty `listen` creates the registry without an endpoint (tests).
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Create(const std::string& listen,
                                                               absl::string_view version,
                                                               absl::string_view torch_version,
                                                               absl::string_view cuda_version);

  // The port /metrics listens on; 0 without an endpoint.
  int port() const;
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // One finished RPC. `code` is the gRPC code name ("OK", "NOT_FOUND").
  void RecordRequest(const std::string& model, absl::string_view method, absl::string_view code,
                     double seconds);

  // Sets the model's state series: 1 for `state`, 0 for the others of `all`.
  void SetModelState(const std::string& model, absl::string_view state,
                     const std::vector<absl::string_view>& all);
  // Weights held for `model` on `tier` ("device", "host"), in bytes.
  void SetModelMemory(const std::string& model, absl::string_view tier, double bytes);

 private:
  ServerMetrics();

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Gauge>& model_state_;
  prometheus::Family<prometheus::Gauge>& model_memory_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  // Declared last: stops serving before the families it reads go away.
  std::unique_ptr<MetricsHttpServer> http_;
};

// Latency buckets in seconds, from 1 ms to 60 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

}  // namespace bertserve::metrics

#endif  // BERTSERVE_SERVER_METRICS_SERVER_METRICS_H_
