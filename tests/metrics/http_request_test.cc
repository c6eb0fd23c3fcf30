#include "server/metrics/http_request.h"

#include <string>

#include <gtest/gtest.h>

namespace bertserve::metrics {
namespace {

using Outcome = HttpRequestHead::Outcome;

TEST(ParseRequestHeadTest, CompleteGetWithHeaders) {
  const HttpRequestHead head =
      ParseRequestHead("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(head.outcome, Outcome::kComplete);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.path, "/metrics");
}

TEST(ParseRequestHeadTest, BareLineFeedsAndHttp10) {
  const HttpRequestHead head = ParseRequestHead("HEAD /healthz HTTP/1.0\n\n");
  EXPECT_EQ(head.outcome, Outcome::kComplete);
  EXPECT_EQ(head.method, "HEAD");
  EXPECT_EQ(head.path, "/healthz");
}

TEST(ParseRequestHeadTest, IncompleteUntilTheBlankLine) {
  EXPECT_EQ(ParseRequestHead("").outcome, Outcome::kIncomplete);
  EXPECT_EQ(ParseRequestHead("GET /metrics HTTP/1.1\r\n").outcome, Outcome::kIncomplete);
  EXPECT_EQ(ParseRequestHead("GET /metrics HTTP/1.1\r\nHost: a\r\n\r").outcome,
            Outcome::kIncomplete);
}

TEST(ParseRequestHeadTest, MalformedRequestLines) {
  for (const char* bad : {"\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n",
                          "GET  /metrics HTTP/1.1\r\n\r\n", " GET /metrics HTTP/1.1\r\n\r\n",
                          "GET metrics HTTP/1.1\r\n\r\n", "GET /a b HTTP/1.1\r\n\r\n",
                          "G(T /metrics HTTP/1.1\r\n\r\n", "GET /metrics FTP/1.1\r\n\r\n",
                          "GET /m\x01 HTTP/1.1\r\n\r\n"}) {
    EXPECT_EQ(ParseRequestHead(bad).outcome, Outcome::kBadRequest) << bad;
  }
}

TEST(ParseRequestHeadTest, OtherHttpVersions) {
  EXPECT_EQ(ParseRequestHead("GET /metrics HTTP/2.0\r\n\r\n").outcome, Outcome::kBadVersion);
  EXPECT_EQ(ParseRequestHead("GET /metrics HTTP/0.9\r\n\r\n").outcome, Outcome::kBadVersion);
}

TEST(ParseRequestHeadTest, OverLongHeadIsTooLargeNotTruncated) {
  const std::string line = "GET /metrics HTTP/1.1\r\n";
  std::string filler = "X-Filler: " + std::string(kMaxRequestHeadBytes, 'a') + "\r\n";
  // Without a blank line yet, at the limit.
  EXPECT_EQ(ParseRequestHead(line + filler).outcome, Outcome::kTooLarge);
  // With a blank line, but past the limit.
  EXPECT_EQ(ParseRequestHead(line + filler + "\r\n").outcome, Outcome::kTooLarge);
  // Just under the limit is served.
  std::string fits = line + "X-Filler: ";
  fits += std::string(kMaxRequestHeadBytes - fits.size() - 8, 'a') + "\r\n\r\n";
  EXPECT_EQ(ParseRequestHead(fits).outcome, Outcome::kComplete);
}

// The endpoint parses what it has read so far and stops reading at the
// limit, so the answer for a head must not depend on how its bytes arrived.
// (Found by http_request_head_fuzzer: a head whose blank line ended 1-3 bytes
// past the limit was served when it arrived whole, 431 when its first
// kMaxRequestHeadBytes arrived alone.)
TEST(ParseRequestHeadTest, BlankLineEndingPastTheLimitIsTooLargeHoweverItArrives) {
  const std::string line = "GET /metrics HTTP/1.1\r\n";
  for (const std::string blank : {"\r\n\r\n", "\n\n"}) {
    for (size_t total = kMaxRequestHeadBytes - 1; total <= kMaxRequestHeadBytes + 3; ++total) {
      std::string head = line + "X-Filler: ";
      head += std::string(total - head.size() - blank.size(), 'a') + blank;
      ASSERT_EQ(head.size(), total);
      const Outcome whole = ParseRequestHead(head).outcome;
      EXPECT_EQ(whole, total <= kMaxRequestHeadBytes ? Outcome::kComplete : Outcome::kTooLarge)
          << total << " bytes";
      const Outcome first = ParseRequestHead(head.substr(0, kMaxRequestHeadBytes)).outcome;
      if (first != Outcome::kIncomplete) {
        EXPECT_EQ(first, whole) << total << " bytes";
      }
    }
  }
}

}  // namespace
}  // namespace bertserve::metrics
