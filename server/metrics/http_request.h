#ifndef BERTSERVE_SERVER_METRICS_HTTP_REQUEST_H_
#define BERTSERVE_SERVER_METRICS_HTTP_REQUEST_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace bertserve::metrics {

// The most bytes a request head (request line, headers and the blank line
// that ends them) may take. Larger requests are answered 431 rather than
// served from a truncated read.
inline constexpr size_t kMaxRequestHeadBytes = 16 * 1024;

// What ParseRequestHead found in the bytes a client has sent so far.
struct HttpRequestHead {
  enum class Outcome {
    kIncomplete,  // no blank line yet: read more
    kComplete,    // method and path are set
    kBadRequest,  // malformed request line: answer 400
    kTooLarge,    // no blank line within kMaxRequestHeadBytes: answer 431
    kBadVersion,  // not HTTP/1.0 or HTTP/1.1: answer 505
  };
  Outcome outcome = Outcome::kIncomplete;
  std::string method;  // as sent, e.g. "GET"
  std::string path;    // the request target without its query, e.g. "/metrics"
};

// Parses the head of an HTTP/1.x request from `received`, the bytes read so
// far. Only the request line is interpreted; headers are skipped (the endpoint
// needs none and the body is ignored). A pure function: no I/O, never throws,
// any input is safe (a fuzz target covers it).
HttpRequestHead ParseRequestHead(absl::string_view received);

}  // namespace bertserve::metrics

#endif  // BERTSERVE_SERVER_METRICS_HTTP_REQUEST_H_
