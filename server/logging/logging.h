#ifndef BERTSERVE_SERVER_LOGGING_LOGGING_H_
#define BERTSERVE_SERVER_LOGGING_LOGGING_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/status/status.h"

namespace bertserve::logging {

// Sets spdlog's default logger to stderr with `format` "text" (human lines)
// or "json" (one object per line: time, level, message, and the fields given
// to Log below, each a key of its own). `level` is
// trace|debug|info|warn|error|off. InvalidArgument for other values.
absl::Status Configure(const std::string& format, const std::string& level);

// One structured field of a log event: a key ([a-z_]+ by convention) and a
// value, kept as a number where it is one (a JSON number in the json format).
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, int64_t v) : key(k), value(std::to_string(v)), number(true) {}
  Field(std::string_view k, int v) : Field(k, static_cast<int64_t>(v)) {}
  Field(std::string_view k, double v);
  std::string key;
  std::string value;
  bool number = false;
};

// Logs `message` at `level` with `fields`. The fields are never parsed out of
// the message: text that a message quotes (a model's last error, say) cannot
// shadow one. In the text format they follow the message as
// " (key=value, ...)"; in the json format each is a top-level key, after
// time, level and message (a field named like one of those is renamed
// "field_<key>"). Thread-safe.
void Log(spdlog::level::level_enum level, std::string_view message,
         std::initializer_list<Field> fields);
void Log(spdlog::level::level_enum level, std::string_view message,
         const std::vector<Field>& fields);

}  // namespace bertserve::logging

#endif  // BERTSERVE_SERVER_LOGGING_LOGGING_H_
