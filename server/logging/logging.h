#ifndef BERTSERVE_SERVER_LOGGING_LOGGING_H_
#define BERTSERVE_SERVER_LOGGING_LOGGING_H_

#include <string>

#include "absl/status/status.h"

namespace bertserve::logging {

// Sets spdlog's default logger to stderr with `format` "text" (human lines)
// or "json" (one object per line: time, level, message, and each key=value
// token of the message as a field of its own, e.g. model=tt-tuple). `level` is trace|debug|info|warn|error.
// InvalidArgument for other values.
absl::Status Configure(const std::string& format, const std::string& level);

}  // namespace bertserve::logging

#endif  // BERTSERVE_SERVER_LOGGING_LOGGING_H_
