#ifndef BERTSERVE_SERVER_METRICS_METRICS_HTTP_SERVER_H_
#define BERTSERVE_SERVER_METRICS_METRICS_HTTP_SERVER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/registry.h"

namespace bertserve::metrics {

// HOST:PORT split: the host without the brackets of an IPv6 literal ("" for
// every address), the port from 0 to 65535 (0: pick a free one).
// InvalidArgument naming `address` otherwise.
struct HostPort {
  std::string host;
  int port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(const std::string& address);

// A TCP socket bound (not yet listening) to `address`, HOST:PORT (IPv6 hosts
// in brackets; port 0 picks a free one), with SO_REUSEADDR (old connections in
// TIME_WAIT do not block a restart) and never SO_REUSEPORT (two live
// listeners never share a port). `socket_flags` are or-ed into socket()'s
// type (SOCK_NONBLOCK). InvalidArgument for a malformed address, Unavailable
// naming the reason ("address in use (another process listens on it)") when
// it cannot be bound. The caller owns the descriptor.
absl::StatusOr<int> BindTcpSocket(const std::string& address, int socket_flags);

// Limits of the endpoint. The defaults suit a Prometheus scraper (one small
// GET every few seconds, a 10 s scrape timeout) and leave no way for a slow or
// idle client to hold the endpoint.
struct HttpLimits {
  // Most connections open at once. A connection beyond it closes the one that
  // has waited longest without sending a whole request, so a newcomer (the
  // next scrape) always gets in.
  size_t max_connections = 256;
  // From accept to the last byte of the request head: a client that drips or
  // idles is closed (408) once it passes. Bounds the whole request, not each read.
  absl::Duration request_deadline = absl::Seconds(5);
  // From accept to the last byte of the response.
  absl::Duration response_deadline = absl::Seconds(30);
};

// The HTTP/1.1 endpoint for Prometheus:
//   GET /metrics   the text exposition format of `registry`
//   GET /healthz   200 "ok" while the liveness check passes, else 503
//   GET /readyz    200 "ok" while the readiness check passes, else 503
//   GET /          a short index
// HEAD works too; other methods get 405, unknown paths 404, a request head
// over kMaxRequestHeadBytes 431. Every response closes its connection.
//
// One thread runs an event loop (poll) over non-blocking sockets, so slow or
// idle clients cost a file descriptor each, never a thread, and cannot delay
// anyone else; HttpLimits bounds them. Thread-safe.
//
// Why not a library server: prometheus-cpp's Exposer runs on civetweb, which
// Debian builds with a fixed 100 KiB thread stack; glibc carves a thread's
// static TLS out of that stack, and libtorch's dependencies carry about
// 106 KiB of static TLS, so civetweb's threads fail to start (EINVAL) in this
// process. cpp-httplib serves each connection on a pooled thread with
// per-read timeouts only, so a handful of clients sending a byte a second
// occupy its whole pool. Serving one small document needs neither.
class MetricsHttpServer {
 public:
  // Binds `listen` (HOST:PORT, IPv4 or [IPv6], port 0 picks a free one) and
  // starts serving. InvalidArgument for a malformed address or a port outside
  // 0-65535, Unavailable if it cannot be bound (in use, say).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
      HttpLimits limits = {});
  ~MetricsHttpServer();  // stops accepting, closes every connection, joins the thread

  int port() const { return port_; }
  // Runs on the server thread before each /metrics response. It must be quick
  // (the loop waits for it) and must not call back into this server.
  void SetScrapeHook(std::function<void()> hook) ABSL_LOCKS_EXCLUDED(mu_);
  // Answer /healthz and /readyz. Without a check the path answers 200.
  void SetLivenessCheck(std::function<bool()> check) ABSL_LOCKS_EXCLUDED(mu_);
  void SetReadinessCheck(std::function<bool()> check) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Loop;
  MetricsHttpServer(int listen_fd, int wake_read, int wake_write, int port,
                    std::shared_ptr<prometheus::Registry> registry, HttpLimits limits);
  // The response to a complete request for `path`.
  std::string Respond(const std::string& method, const std::string& path)
      ABSL_LOCKS_EXCLUDED(mu_);

  const int port_;
  std::shared_ptr<prometheus::Registry> registry_;
  absl::Mutex mu_;
  std::function<void()> hook_ ABSL_GUARDED_BY(mu_);
  std::function<bool()> liveness_ ABSL_GUARDED_BY(mu_);
  std::function<bool()> readiness_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace bertserve::metrics

#endif  // BERTSERVE_SERVER_METRICS_METRICS_HTTP_SERVER_H_
