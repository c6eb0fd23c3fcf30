#include "server/metrics/metrics_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "server/metrics/http_request.h"

namespace bertserve::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A blocking client socket with a receive timeout, so that a server that never
// answers fails the test instead of hanging it.
int Connect(int port, absl::Duration receive_timeout = absl::Seconds(30)) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv = absl::ToTimeval(receive_timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void Send(int fd, const std::string& data) {
  ASSERT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// Everything the server sends until it closes (or the receive timeout).
std::string ReadToClose(int fd) {
  std::string out;
  char buffer[4096];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

std::string Request(int port, const std::string& request,
                    absl::Duration timeout = absl::Seconds(30)) {
  const int fd = Connect(port, timeout);
  if (fd < 0) return "connect failed";
  Send(fd, request);
  std::string answer = ReadToClose(fd);
  close(fd);
  return answer;
}

std::string Get(int port, const std::string& path) {
  return Request(port, "GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n");
}

// True while the server keeps `fd` open: nothing to read and no EOF.
bool StillOpen(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) == 0) return true;
  char byte;
  const ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  return n > 0;  // data (unexpected, but open); 0 is EOF, -1 an error
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpLimits limits = {}) {
    registry_ = std::make_shared<prometheus::Registry>();
    prometheus::BuildCounter()
        .Name("bertserve_test_total")
        .Help("A counter for the test.")
        .Register(*registry_)
        .Add({})
        .Increment(3);
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start("127.0.0.1:0", registry_, limits);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  int port() const { return server_->port(); }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpServerTest, ServesTheRegistryAndRunsTheHook) {
  Start();
  int hooks = 0;
  server_->SetScrapeHook([&hooks] { ++hooks; });
  const std::string answer = Get(port(), "/metrics");
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(answer, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(answer, HasSubstr("\r\n\r\n# HELP bertserve_test_total A counter for the test."));
  EXPECT_THAT(answer, HasSubstr("bertserve_test_total 3"));
  EXPECT_EQ(hooks, 1);
  // HEAD: the same headers, no body.
  const std::string head = Request(port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(head.substr(head.find("\r\n\r\n")), "\r\n\r\n");
}

TEST_F(MetricsHttpServerTest, HealthPathsFollowTheirChecks) {
  Start();
  EXPECT_THAT(Get(port(), "/healthz"), StartsWith("HTTP/1.1 200 OK\r\n"));
  bool live = false;
  bool ready = true;
  server_->SetLivenessCheck([&live] { return live; });
  server_->SetReadinessCheck([&ready] { return ready; });
  EXPECT_THAT(Get(port(), "/healthz"), StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(Get(port(), "/readyz"), StartsWith("HTTP/1.1 200 OK\r\n"));
  live = true;
  ready = false;
  EXPECT_THAT(Get(port(), "/healthz"), StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(Get(port(), "/readyz"), StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
}

TEST_F(MetricsHttpServerTest, BadRequestsGetTheRightStatus) {
  Start();
  EXPECT_THAT(Get(port(), "/nope"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  const std::string post = Request(port(), "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_THAT(Request(port(), "nonsense\r\n\r\n"), StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(Request(port(), "GET /metrics HTTP/2.0\r\n\r\n"),
              StartsWith("HTTP/1.1 505 HTTP Version Not Supported\r\n"));
  // Over the head limit: 431, never a 200 from a truncated read.
  const std::string huge = "GET /metrics HTTP/1.1\r\nX-Filler: " +
                           std::string(kMaxRequestHeadBytes + 100, 'a') + "\r\n\r\n";
  EXPECT_THAT(Request(port(), huge), StartsWith("HTTP/1.1 431 Request Header Fields Too Large"));
}

// The finding this guards against: one client dripping a byte a second, or a
// few idle ones, held the endpoint for everyone.
TEST_F(MetricsHttpServerTest, SlowAndIdleClientsDoNotDelayAScrape) {
  HttpLimits limits;
  limits.request_deadline = absl::Minutes(10);  // they stay for the whole test
  Start(limits);
  std::vector<int> slow;
  for (int i = 0; i < 50; ++i) {
    const int fd = Connect(port());
    ASSERT_GE(fd, 0);
    slow.push_back(fd);
    // Half send part of a request, half nothing at all.
    if (i % 2 == 0) Send(fd, "GET /metrics HTTP/1.1\r\nX-Slow: ");
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < slow.size(); i += 2) Send(slow[i], "a");
    // Prometheus' own budget is 10 s; a scrape must not queue behind anyone.
    const std::string answer =
        Request(port(), "GET /metrics HTTP/1.1\r\n\r\n", absl::Seconds(1));
    EXPECT_THAT(answer, StartsWith("HTTP/1.1 200 OK\r\n")) << "round " << round;
    EXPECT_THAT(answer, HasSubstr("bertserve_test_total 3"));
  }
  // They were served concurrently, not closed to make room.
  for (int fd : slow) {
    EXPECT_TRUE(StillOpen(fd));
    close(fd);
  }
}

TEST_F(MetricsHttpServerTest, AClientPastTheRequestDeadlineIsClosedWith408) {
  HttpLimits limits;
  limits.request_deadline = absl::Milliseconds(200);
  Start(limits);
  const int fd = Connect(port());
  ASSERT_GE(fd, 0);
  Send(fd, "GET /metrics HTTP/1.1\r\n");  // and never the blank line
  // Dripping does not extend the deadline: it bounds the whole request.
  const std::string answer = ReadToClose(fd);
  close(fd);
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 408 Request Timeout\r\n"));
}

TEST_F(MetricsHttpServerTest, AtTheConnectionCapTheOldestWaitingClientMakesRoom) {
  HttpLimits limits;
  limits.max_connections = 4;
  limits.request_deadline = absl::Minutes(10);
  Start(limits);
  std::vector<int> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(Connect(port()));
    ASSERT_GE(idle.back(), 0);
  }
  // A scrape over the cap closes the oldest idle client and is answered; a
  // new idle client fills the cap again.
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(Request(port(), "GET /metrics HTTP/1.1\r\n\r\n", absl::Seconds(5)),
                StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_EQ(ReadToClose(idle[i]), "") << i;  // closed, in accept order
    idle.push_back(Connect(port()));
    ASSERT_GE(idle.back(), 0);
  }
  // Still open: the four newest.
  EXPECT_TRUE(StillOpen(idle[3]));
  for (size_t i = 3; i < idle.size(); ++i) EXPECT_TRUE(StillOpen(idle[i])) << i;
  for (int fd : idle) close(fd);
}

TEST(MetricsHttpServerStartTest, RefusesBadAndBusyAddresses) {
  auto registry = std::make_shared<prometheus::Registry>();
  for (const char* bad : {"127.0.0.1", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:x"}) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> s = MetricsHttpServer::Start(bad, registry);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> first =
      MetricsHttpServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> second = MetricsHttpServer::Start(
      "127.0.0.1:" + std::to_string((*first)->port()), registry);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
}

}  // namespace
}  // namespace bertserve::metrics
