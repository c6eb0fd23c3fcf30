// ParseRequestHead on any bytes. Besides never crashing, the answer must not
// depend on how the bytes arrived: the endpoint parses whatever it has read so
// far (in reads of any size, stopping at kMaxRequestHeadBytes), so every
// prefix that is not kIncomplete must already give the final answer, and the
// bytes after the head never change it. A complete head has a token method
// and a path of visible ASCII starting with '/', without its query.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/metrics/http_request.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using bertserve::metrics::HttpRequestHead;
using bertserve::metrics::kMaxRequestHeadBytes;
using bertserve::metrics::ParseRequestHead;

const char* Name(HttpRequestHead::Outcome outcome) {
  switch (outcome) {
    case HttpRequestHead::Outcome::kIncomplete: return "incomplete";
    case HttpRequestHead::Outcome::kComplete: return "complete";
    case HttpRequestHead::Outcome::kBadRequest: return "bad request";
    case HttpRequestHead::Outcome::kTooLarge: return "too large";
    case HttpRequestHead::Outcome::kBadVersion: return "bad version";
  }
  return "?";
}

bool Same(const HttpRequestHead& a, const HttpRequestHead& b) {
  return a.outcome == b.outcome && a.method == b.method && a.path == b.path;
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view all(reinterpret_cast<const char*>(data), size);
  const HttpRequestHead head = ParseRequestHead(all);

  if (head.outcome == HttpRequestHead::Outcome::kComplete) {
    BERTSERVE_FUZZ_CHECK(!head.method.empty() &&
                             std::all_of(head.method.begin(), head.method.end(), IsTokenChar),
                         "method \"%s\"", head.method.c_str());
    BERTSERVE_FUZZ_CHECK(!head.path.empty() && head.path[0] == '/' &&
                             head.path.find('?') == std::string::npos &&
                             std::all_of(head.path.begin(), head.path.end(),
                                         [](char c) { return c > 0x20 && c < 0x7f; }),
                         "path \"%s\"", head.path.c_str());
  } else {
    BERTSERVE_FUZZ_CHECK(head.method.empty() && head.path.empty(), "%s with method or path",
                         Name(head.outcome));
  }
  if (head.outcome == HttpRequestHead::Outcome::kIncomplete) {
    BERTSERVE_FUZZ_CHECK(size < kMaxRequestHeadBytes, "%zu bytes without a head end is not %s",
                         size, Name(head.outcome));
  }

  // Prefixes the endpoint may hold: the bytes up to the head's end, the
  // first kMaxRequestHeadBytes, and a spread of others.
  std::vector<size_t> lengths = {kMaxRequestHeadBytes, size ? size - 1 : 0};
  for (absl::string_view end : {"\r\n\r\n", "\n\n"}) {
    const size_t at = all.find(end);
    if (at != absl::string_view::npos) {
      lengths.push_back(at + end.size());
      lengths.push_back(at + end.size() - 1);
    }
  }
  for (size_t k = 1; k < 16; ++k) lengths.push_back(size * k / 16);
  for (size_t length : lengths) {
    if (length >= size) continue;
    const HttpRequestHead early = ParseRequestHead(all.substr(0, length));
    if (early.outcome == HttpRequestHead::Outcome::kIncomplete) continue;
    BERTSERVE_FUZZ_CHECK(Same(early, head), "the first %zu of %zu bytes are %s, all of them %s",
                         length, size, Name(early.outcome), Name(head.outcome));
  }
  return 0;
}
