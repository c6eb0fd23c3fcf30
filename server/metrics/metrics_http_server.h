#ifndef BERTSERVE_SERVER_METRICS_METRICS_HTTP_SERVER_H_
#define BERTSERVE_SERVER_METRICS_METRICS_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/registry.h"

namespace bertserve::metrics {

// A minimal HTTP/1.1 endpoint for Prometheus: GET /metrics returns the text
// exposition format of `registry`; GET / and /healthz answer "ok"; anything
// else is 404 or 405. One connection at a time with a 5 s I/O timeout, which
// is what a scraper needs and keeps a stuck client from holding a thread.
//
// (prometheus-cpp's civetweb-based Exposer fails to start its threads when
// libtorch is linked into the same process, so bertserve serves the format
// itself with prometheus-cpp's serializer.)
class MetricsHttpServer {
 public:
  // Binds `listen` (HOST:PORT, IPv4 or [IPv6], port 0 picks a free one) and
  // starts serving. Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsHttpServer();  // stops accepting and joins the thread

  int port() const { return port_; }
  // Runs on the server thread before each /metrics response.
  void SetScrapeHook(std::function<void()> hook) ABSL_LOCKS_EXCLUDED(hook_mu_);

 private:
  MetricsHttpServer(int listen_fd, int wake_fd_read, int wake_fd_write, int port,
                    std::shared_ptr<prometheus::Registry> registry);
  void Loop();
  void Serve(int fd);

  const int listen_fd_;
  const int wake_read_;
  const int wake_write_;
  const int port_;
  std::shared_ptr<prometheus::Registry> registry_;
  absl::Mutex hook_mu_;
  std::function<void()> hook_ ABSL_GUARDED_BY(hook_mu_);
  std::thread thread_;
};

}  // namespace bertserve::metrics

#endif  // BERTSERVE_SERVER_METRICS_METRICS_HTTP_SERVER_H_
