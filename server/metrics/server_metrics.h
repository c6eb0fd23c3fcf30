#ifndef BERTSERVE_SERVER_METRICS_SERVER_METRICS_H_
#define BERTSERVE_SERVER_METRICS_SERVER_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/metrics/metrics_http_server.h"

namespace bertserve::metrics {

// Device and host memory at one instant, all in bytes.
struct MemoryGauges {
  std::string device;  // "cuda:0", "sim:0", "cpu"
  double total = 0, free = 0;            // as the device reports
  double budget = 0, reserved = 0;       // VRAM budget and bytes admitted by bertserve
  double allocator_allocated = 0, allocator_reserved = 0, allocator_peak = 0;
  double host = 0, host_budget = 0;      // offloaded weights in host memory
  double placement_queue_depth = 0;      // jobs (one queue for every device); < 0: not set
  double resident_models = 0;            // models with weights on the device
  bool lost = false;                     // failed for good
};

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
  // UNAUTHENTICATED and PERMISSION_DENIED (access control's refusals) also
  // count in bertserve_access_denied_total{method, code}.
  void RecordRequest(const std::string& model, absl::string_view method, absl::string_view code,
                     double seconds);

  // Sets the model's state series: 1 for `state`, 0 for the others of `all`.
  void SetModelState(const std::string& model, absl::string_view state,
                     const std::vector<absl::string_view>& all);
  // Weights held for `model` on `tier` ("device", "host"), in bytes.
  void SetModelMemory(const std::string& model, absl::string_view tier, double bytes);
  // Weights of `model`'s device copies, by device; devices it had a copy on
  // before and has none on now get 0.
  void SetModelDeviceMemory(const std::string& model,
                            const std::vector<std::pair<std::string, double>>& by_device)
      ABSL_LOCKS_EXCLUDED(model_device_mu_);
  // Device copies of the model: 0 while on none, more than 1 with replicas.
  void SetModelReplicas(const std::string& model, double copies);
  // The placement policy put a model on `device` for `reason` (free, evict,
  // wait: see core::ModelRegistry).
  void RecordPlacementDecision(const std::string& device, absl::string_view reason);
  void SetActivationReserve(const std::string& model, double bytes);
  // One finished placement job: kind load|swap_in|evict|unload, result ok|error.
  void RecordPlacement(const std::string& model, absl::string_view kind, bool ok,
                       double seconds);
  void SetMemory(const MemoryGauges& gauges);

  // Batching (see core::BatchObserver). A forward of `rows` inputs padded to
  // `padded_tokens`, `real_tokens` of them real, in `seconds`.
  void RecordBatch(const std::string& model, int rows, int64_t padded_tokens,
                   int64_t real_tokens, double seconds);
  void RecordQueueWait(const std::string& model, double seconds);
  // A request waited `seconds` for its model's placement (its turn on the
  // device) before queueing.
  void RecordModelWait(const std::string& model, double seconds);
  void RecordTokenize(const std::string& model, double seconds);
  void RecordOom(const std::string& model);
  void RecordSplit(const std::string& model);
  void RecordExpired(const std::string& model);
  // `change` < 0 lowered, > 0 raised, 0 first set.
  void SetBatchTokenLimit(const std::string& model, int64_t tokens, int change);
  void SetQueueDepth(const std::string& model, int64_t inputs);
  // Creates the model's counter and gauge series at 0, so that rates and
  // alerts see them before the first event.
  void InitModel(const std::string& model);
  // 1 while the readiness health service is SERVING.
  void SetReady(bool ready);
  // Runs before every scrape, so gauges read at that instant are current.
  void SetScrapeHook(std::function<void()> hook);
  // What /healthz and /readyz on the metrics endpoint answer.
  void SetHealthChecks(std::function<bool()> liveness, std::function<bool()> readiness);

 private:
  ServerMetrics();
  prometheus::Family<prometheus::Gauge>& Gauge(const std::string& name, const std::string& help);
  prometheus::Family<prometheus::Counter>& Counter(const std::string& name,
                                                   const std::string& help);
  prometheus::Family<prometheus::Histogram>& Histogram(const std::string& name,
                                                       const std::string& help);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Gauge>& model_state_;
  prometheus::Family<prometheus::Gauge>& model_memory_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Family<prometheus::Gauge>& activation_reserve_;
  prometheus::Family<prometheus::Counter>& placements_;
  prometheus::Family<prometheus::Histogram>& placement_duration_;
  prometheus::Family<prometheus::Gauge>& device_total_;
  prometheus::Family<prometheus::Gauge>& device_free_;
  prometheus::Family<prometheus::Gauge>& device_used_;
  prometheus::Family<prometheus::Gauge>& vram_budget_;
  prometheus::Family<prometheus::Gauge>& vram_reserved_;
  prometheus::Family<prometheus::Gauge>& allocator_allocated_;
  prometheus::Family<prometheus::Gauge>& allocator_reserved_;
  prometheus::Family<prometheus::Gauge>& allocator_peak_;
  prometheus::Family<prometheus::Gauge>& host_memory_;
  prometheus::Family<prometheus::Gauge>& host_budget_;
  prometheus::Family<prometheus::Gauge>& placement_queue_depth_;
  prometheus::Family<prometheus::Counter>& oom_events_;
  prometheus::Family<prometheus::Counter>& batch_splits_;
  prometheus::Family<prometheus::Counter>& expired_;
  prometheus::Family<prometheus::Gauge>& batch_token_limit_;
  prometheus::Family<prometheus::Counter>& token_limit_changes_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Histogram>& batch_tokens_;
  prometheus::Family<prometheus::Histogram>& padding_ratio_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Histogram>& queue_duration_;
  prometheus::Family<prometheus::Histogram>& model_wait_duration_;
  prometheus::Family<prometheus::Histogram>& compute_duration_;
  prometheus::Family<prometheus::Histogram>& tokenize_duration_;
  prometheus::Family<prometheus::Gauge>& allocator_fragmentation_;
  prometheus::Family<prometheus::Gauge>& ready_;
  prometheus::Family<prometheus::Counter>& access_denied_;
  prometheus::Family<prometheus::Gauge>& device_models_;
  prometheus::Family<prometheus::Gauge>& device_lost_;
  prometheus::Family<prometheus::Gauge>& model_replicas_;
  prometheus::Family<prometheus::Counter>& placement_decisions_;
  absl::Mutex model_device_mu_;
  // The devices each model's device-tier series were last set for, so that
  // a copy gone from a device zeroes its series.
  absl::flat_hash_map<std::string, std::vector<std::string>> model_devices_
      ABSL_GUARDED_BY(model_device_mu_);
  // Declared last: stops serving before the families it reads go away.
  std::unique_ptr<MetricsHttpServer> http_;
};

// Latency buckets in seconds, from 1 ms to 60 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

}  // namespace bertserve::metrics

#endif  // BERTSERVE_SERVER_METRICS_SERVER_METRICS_H_
