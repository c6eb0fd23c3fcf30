#include "server/metrics/metrics_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/http_request.h"

namespace bertserve::metrics {
namespace {

std::string Response(int code, const char* reason, const char* type, const std::string& body,
                     bool head, const char* extra_headers = "") {
  return absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                      "Connection: close\r\n\r\n", head ? "" : body);
}

std::string PlainResponse(int code, const char* reason, const std::string& body) {
  return Response(code, reason, "text/plain; charset=utf-8", body, false);
}

// One client connection: reading its request head, then writing the answer.
struct Connection {
  int fd = -1;
  absl::Time accepted;
  std::string received;  // the request head so far
  std::string answer;    // the whole response once known
  size_t sent = 0;
  // Set once the answer is sent: until then, input is read and discarded.
  absl::Time draining_until = absl::InfinitePast();
  bool writing() const { return !answer.empty(); }
  bool draining() const { return draining_until != absl::InfinitePast(); }
};

// How long a connection whose answer is sent keeps reading what the client
// still sends. Closing a socket with unread input makes the kernel reset the
// connection, which can destroy the answer before the client has read it (a
// 431 to a client still sending its over-long head, say).
constexpr absl::Duration kLingerAfterAnswer = absl::Seconds(2);

}  // namespace

// The event loop. Lives on the server thread; only `wake_write` is touched
// from other threads (to stop it).
class MetricsHttpServer::Loop {
 public:
  Loop(MetricsHttpServer* server, int listen_fd, int wake_read, int wake_write,
       HttpLimits limits)
      : server_(server),
        listen_fd_(listen_fd),
        wake_read_(wake_read),
        wake_write_(wake_write),
        limits_(limits) {}
  ~Loop() {
    for (Connection& c : connections_) close(c.fd);
    close(listen_fd_);
    close(wake_read_);
    close(wake_write_);
  }

  void Stop() {
    const char byte = 0;
    (void)!write(wake_write_, &byte, 1);
  }

  void Run() {
    std::vector<pollfd> fds;
    std::vector<std::list<Connection>::iterator> owners;
    while (true) {
      fds.clear();
      owners.clear();
      fds.push_back({wake_read_, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (auto it = connections_.begin(); it != connections_.end(); ++it) {
        const bool out = it->writing() && !it->draining();
        fds.push_back({it->fd, static_cast<short>(out ? POLLOUT : POLLIN), 0});
        owners.push_back(it);
      }
      if (poll(fds.data(), fds.size(), TimeoutMillis()) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents != 0) return;
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents != 0) Service(owners[i - 2]);
      }
      ExpireDeadlines();
      if ((fds[1].revents & POLLIN) != 0) Accept();
    }
  }

 private:
  // Milliseconds until the earliest deadline, -1 with no connection.
  int TimeoutMillis() const {
    if (connections_.empty()) return -1;
    const absl::Time now = absl::Now();
    absl::Time earliest = absl::InfiniteFuture();
    for (const Connection& c : connections_) earliest = std::min(earliest, Deadline(c));
    const int64_t ms = absl::ToInt64Milliseconds(earliest - now) + 1;
    return static_cast<int>(std::clamp<int64_t>(ms, 0, 60'000));
  }

  absl::Time Deadline(const Connection& c) const {
    if (c.draining()) return c.draining_until;
    return c.accepted + (c.writing() ? limits_.response_deadline : limits_.request_deadline);
  }

  void Accept() {
    // Drain the backlog: several clients may have connected since the last poll.
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;  // EAGAIN: none left; anything else: try at the next poll
      if (connections_.size() >= limits_.max_connections && !DropOldestReader()) {
        // Every slot is writing an answer: refuse this one, best effort.
        const std::string busy =
            PlainResponse(503, "Service Unavailable", "too many connections\n");
        (void)!send(fd, busy.data(), busy.size(), MSG_NOSIGNAL);
        close(fd);
        continue;
      }
      Connection c;
      c.fd = fd;
      c.accepted = absl::Now();
      connections_.push_back(std::move(c));
    }
  }

  // Makes room for a new connection; false when every one is still writing
  // its answer.
  bool DropOldestReader() {
    // The list is in accept order. A connection already answered goes first,
    // then the one that has waited longest for its request.
    for (bool answered : {true, false}) {
      for (auto it = connections_.begin(); it != connections_.end(); ++it) {
        if (answered ? it->draining() : !it->writing()) {
          Close(it);
          return true;
        }
      }
    }
    return false;
  }

  void Service(std::list<Connection>::iterator it) {
    Connection& c = *it;
    if (c.draining()) {
      char buffer[4096];
      ssize_t n;
      while ((n = recv(c.fd, buffer, sizeof(buffer), 0)) > 0) {
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) Close(it);
      return;
    }
    if (!c.writing()) {
      char buffer[4096];
      while (true) {
        const ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
        if (n > 0) {
          c.received.append(buffer, static_cast<size_t>(n));
          if (c.received.size() >= kMaxRequestHeadBytes) break;
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0 && errno == EINTR) continue;
        // The client closed (or reset) before sending a whole request.
        Close(it);
        return;
      }
      const HttpRequestHead head = ParseRequestHead(c.received);
      switch (head.outcome) {
        case HttpRequestHead::Outcome::kIncomplete:
          return;
        case HttpRequestHead::Outcome::kComplete:
          c.answer = server_->Respond(head.method, head.path);
          break;
        case HttpRequestHead::Outcome::kBadRequest:
          c.answer = PlainResponse(400, "Bad Request", "malformed HTTP request line\n");
          break;
        case HttpRequestHead::Outcome::kTooLarge:
          c.answer = PlainResponse(
              431, "Request Header Fields Too Large",
              absl::StrCat("the request head is over ", kMaxRequestHeadBytes, " bytes\n"));
          break;
        case HttpRequestHead::Outcome::kBadVersion:
          c.answer = PlainResponse(505, "HTTP Version Not Supported", "HTTP/1.0 or 1.1 only\n");
          break;
      }
      c.received.clear();
      c.received.shrink_to_fit();
    }
    while (c.sent < c.answer.size()) {
      const ssize_t n =
          send(c.fd, c.answer.data() + c.sent, c.answer.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0 && errno == EINTR) continue;
      Close(it);  // the client went away
      return;
    }
    // Answer sent: signal the end, then read until the client closes.
    shutdown(c.fd, SHUT_WR);
    c.draining_until = std::min(absl::Now() + kLingerAfterAnswer,
                                c.accepted + limits_.response_deadline);
  }

  void ExpireDeadlines() {
    const absl::Time now = absl::Now();
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto next = std::next(it);
      if (now >= Deadline(*it)) {
        if (!it->writing() && !it->draining()) {
          const std::string late =
              PlainResponse(408, "Request Timeout", "the request did not arrive in time\n");
          (void)!send(it->fd, late.data(), late.size(), MSG_NOSIGNAL);
        }
        Close(it);
      }
      it = next;
    }
  }

  void Close(std::list<Connection>::iterator it) {
    close(it->fd);
    connections_.erase(it);
  }

  MetricsHttpServer* const server_;
  const int listen_fd_;
  const int wake_read_;
  const int wake_write_;
  const HttpLimits limits_;
  std::list<Connection> connections_;  // in accept order
};

absl::StatusOr<HostPort> ParseHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" is not HOST:PORT"));
  }
  HostPort parsed;
  parsed.host = address.substr(0, colon);
  if (!absl::SimpleAtoi(address.substr(colon + 1), &parsed.port) || parsed.port < 0 ||
      parsed.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", address, "\": the port must be a number from 1 to 65535 (0 picks a free one)"));
  }
  if (parsed.host.size() >= 2 && parsed.host.front() == '[' && parsed.host.back() == ']') {
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  }
  return parsed;
}

absl::StatusOr<int> BindTcpSocket(const std::string& address, int socket_flags) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(address);
  if (!parsed.ok()) return parsed.status();
  const std::string& host = parsed->host;
  const std::string port = std::to_string(parsed->port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\": ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | socket_flags, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = errno == EADDRINUSE ? "address in use (another process listens on it)"
                                  : std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot bind ", address, ": ", error));
  return fd;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
    HttpLimits limits) {
  absl::StatusOr<int> bound_fd = BindTcpSocket(listen, SOCK_NONBLOCK);
  if (!bound_fd.ok()) {
    return absl::Status(bound_fd.status().code(),
                        absl::StrCat("metrics endpoint: ", bound_fd.status().message()));
  }
  const int fd = *bound_fd;
  std::string error;
  if (::listen(fd, 128) != 0) {
    error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen, ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port =
      bound.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake[2] = {-1, -1};
  if (pipe2(wake, O_CLOEXEC) != 0) {
    error = std::strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("metrics endpoint: pipe: ", error));
  }
  return std::unique_ptr<MetricsHttpServer>(
      new MetricsHttpServer(fd, wake[0], wake[1], bound_port, std::move(registry), limits));
}

MetricsHttpServer::MetricsHttpServer(int listen_fd, int wake_read, int wake_write, int port,
                                     std::shared_ptr<prometheus::Registry> registry,
                                     HttpLimits limits)
    : port_(port),
      registry_(std::move(registry)),
      loop_(std::make_unique<Loop>(this, listen_fd, wake_read, wake_write, limits)),
      thread_([this] {
        // As core::NameThisThread names the server's other threads.
        pthread_setname_np(pthread_self(), "metrics-http");
        loop_->Run();
      }) {}

MetricsHttpServer::~MetricsHttpServer() {
  loop_->Stop();
  thread_.join();
}

void MetricsHttpServer::SetScrapeHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  hook_ = std::move(hook);
}

void MetricsHttpServer::SetLivenessCheck(std::function<bool()> check) {
  absl::MutexLock lock(&mu_);
  liveness_ = std::move(check);
}

void MetricsHttpServer::SetReadinessCheck(std::function<bool()> check) {
  absl::MutexLock lock(&mu_);
  readiness_ = std::move(check);
}

std::string MetricsHttpServer::Respond(const std::string& method, const std::string& path) {
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return Response(405, "Method Not Allowed", "text/plain; charset=utf-8", "GET or HEAD only\n",
                    false, "Allow: GET, HEAD\r\n");
  }
  std::function<void()> hook;
  std::function<bool()> liveness, readiness;
  {
    absl::MutexLock lock(&mu_);
    hook = hook_;
    liveness = liveness_;
    readiness = readiness_;
  }
  if (path == "/metrics") {
    if (hook) hook();
    const std::string body = prometheus::TextSerializer().Serialize(registry_->Collect());
    return Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, head);
  }
  if (path == "/healthz" || path == "/readyz") {
    const std::function<bool()>& check = path == "/healthz" ? liveness : readiness;
    if (!check || check()) return Response(200, "OK", "text/plain; charset=utf-8", "ok\n", head);
    return Response(503, "Service Unavailable", "text/plain; charset=utf-8", "not serving\n",
                    head);
  }
  if (path == "/") {
    return Response(200, "OK", "text/plain; charset=utf-8",
                    "bertserve: /metrics (Prometheus), /healthz (liveness), /readyz (readiness)\n",
                    head);
  }
  return Response(404, "Not Found", "text/plain; charset=utf-8", "not found; try /metrics\n",
                  head);
}

}  // namespace bertserve::metrics
