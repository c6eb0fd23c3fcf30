#include "server/metrics/http_request.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace bertserve::metrics {
namespace {

// RFC 9110 token characters, which is what a method may consist of.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

}  // namespace

HttpRequestHead ParseRequestHead(absl::string_view received) {
  HttpRequestHead head;
  // Clients may end lines with a bare LF (RFC 9112 allows a lenient reader);
  // the head ends at the first empty line either way.
  size_t end = received.find("\r\n\r\n");
  size_t blank_line = 4;
  const size_t lf_end = received.find("\n\n");
  if (lf_end < end) {
    end = lf_end;
    blank_line = 2;
  }
  if (end == absl::string_view::npos) {
    head.outcome = received.size() >= kMaxRequestHeadBytes
                       ? HttpRequestHead::Outcome::kTooLarge
                       : HttpRequestHead::Outcome::kIncomplete;
    return head;
  }
  // The head counts through its blank line. One that ends past the limit is
  // too large even when it arrived whole: had its first kMaxRequestHeadBytes
  // come alone, the endpoint would have stopped reading and answered 431.
  if (end + blank_line > kMaxRequestHeadBytes) {
    head.outcome = HttpRequestHead::Outcome::kTooLarge;
    return head;
  }
  absl::string_view line = received.substr(0, received.find('\n'));
  if (absl::EndsWith(line, "\r")) line.remove_suffix(1);

  // request-line = method SP request-target SP HTTP-version
  const size_t first = line.find(' ');
  const size_t second =
      first == absl::string_view::npos ? absl::string_view::npos : line.find(' ', first + 1);
  if (first == 0 || second == absl::string_view::npos || second == first + 1 ||
      line.find(' ', second + 1) != absl::string_view::npos) {
    head.outcome = HttpRequestHead::Outcome::kBadRequest;
    return head;
  }
  const absl::string_view method = line.substr(0, first);
  const absl::string_view target = line.substr(first + 1, second - first - 1);
  const absl::string_view version = line.substr(second + 1);
  if (!std::all_of(method.begin(), method.end(), IsTokenChar) || target.front() != '/' ||
      !std::all_of(target.begin(), target.end(),
                   [](char c) { return c > 0x20 && c < 0x7f; })) {
    head.outcome = HttpRequestHead::Outcome::kBadRequest;
    return head;
  }
  if (!absl::StartsWith(version, "HTTP/")) {
    head.outcome = HttpRequestHead::Outcome::kBadRequest;
    return head;
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    head.outcome = HttpRequestHead::Outcome::kBadVersion;
    return head;
  }
  head.outcome = HttpRequestHead::Outcome::kComplete;
  head.method = std::string(method);
  head.path = std::string(target.substr(0, target.find('?')));
  return head;
}

}  // namespace bertserve::metrics
