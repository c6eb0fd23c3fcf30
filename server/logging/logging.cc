#include "server/logging/logging.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <chrono>
#include <string_view>
#include <utility>
#include <vector>
#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace bertserve::logging {
namespace {

void AppendJsonString(std::string_view s, spdlog::memory_buf_t& out) {
  out.push_back('"');
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out.append(std::string_view("\\\"")); break;
      case '\\': out.append(std::string_view("\\\\")); break;
      case '\n': out.append(std::string_view("\\n")); break;
      case '\r': out.append(std::string_view("\\r")); break;
      case '\t': out.append(std::string_view("\\t")); break;
      default:
        if (c < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          out.append(esc, esc + 6);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// The fields of the event being logged on this thread (Log sets them around
// its call into spdlog, whose synchronous sinks format on the calling
// thread); null for a plain spdlog call.
thread_local const std::vector<Field>* current_fields = nullptr;

std::atomic<bool> json_format{false};

bool IsReservedKey(std::string_view key) {
  return key == "time" || key == "level" || key == "message";
}

// One JSON object per line, so log shippers need no multi-line parsing.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const absl::Time t = absl::FromChrono(msg.time);
    const std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
    dest.append(std::string_view("{\"time\":\""));
    dest.append(time.data(), time.data() + time.size());
    dest.append(std::string_view("\",\"level\":"));
    const auto level = spdlog::level::to_string_view(msg.level);
    AppendJsonString(std::string_view(level.data(), level.size()), dest);
    dest.append(std::string_view(",\"message\":"));
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    AppendJsonString(payload, dest);
    if (current_fields != nullptr) {
      for (const Field& f : *current_fields) {
        dest.push_back(',');
        AppendJsonString(IsReservedKey(f.key) ? "field_" + f.key : f.key, dest);
        dest.push_back(':');
        if (f.number) {
          dest.append(f.value.data(), f.value.data() + f.value.size());
        } else {
          AppendJsonString(f.value, dest);
        }
      }
    }
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// Control characters (a newline above all) as escapes: text a client chose
// (a model name, a request's field) must not start a log line of its own.
// Nothing else changes, so lines without them read as written.
std::string_view EscapeControls(std::string_view s, std::string* storage) {
  const auto is_control = [](char ch) {
    const unsigned char c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  };
  if (std::none_of(s.begin(), s.end(), is_control)) return s;
  storage->clear();
  storage->reserve(s.size() + 16);
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\n': storage->append("\\n"); break;
      case '\r': storage->append("\\r"); break;
      case '\t': storage->append("\\t"); break;
      default:
        if (is_control(ch)) {
          static constexpr char kHex[] = "0123456789abcdef";
          const char esc[] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
          storage->append(esc, sizeof(esc));
        } else {
          storage->push_back(ch);
        }
    }
  }
  return *storage;
}

// "[time] [level] message", one line per event whatever the message holds
// (every spdlog call, not only Log's, goes through it).
class TextFormatter final : public spdlog::formatter {
 public:
  TextFormatter() : pattern_("[%Y-%m-%d %H:%M:%S.%e] [%l] %v") {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string storage;
    const std::string_view payload =
        EscapeControls(std::string_view(msg.payload.data(), msg.payload.size()), &storage);
    spdlog::details::log_msg escaped = msg;
    escaped.payload = spdlog::string_view_t(payload.data(), payload.size());
    pattern_.format(escaped, dest);
  }
  std::unique_ptr<formatter> clone() const override { return std::make_unique<TextFormatter>(); }

 private:
  spdlog::pattern_formatter pattern_;
};

}  // namespace

absl::Status Configure(const std::string& format, const std::string& level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--log-level \"", level, "\" is not one of trace, debug, info, warn, error, off"));
  }
  auto logger = std::make_shared<spdlog::logger>(
      "bertserve", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else if (format == "text") {
    logger->set_formatter(std::make_unique<TextFormatter>());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-format \"", format, "\" is not one of text, json"));
  }
  json_format.store(format == "json");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

Field::Field(std::string_view k, double v) : key(k), number(true) {
  // JSON has no NaN or infinity; such a value is logged as a string.
  if (!std::isfinite(v)) {
    number = false;
    value = std::to_string(v);
    return;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.6g", v);
  value = buffer;
}

void Log(spdlog::level::level_enum level, std::string_view message,
         std::initializer_list<Field> fields) {
  Log(level, message, std::vector<Field>(fields));
}

void Log(spdlog::level::level_enum level, std::string_view message,
         const std::vector<Field>& fields) {
  const std::shared_ptr<spdlog::logger> logger = spdlog::default_logger();
  if (!logger->should_log(level)) return;
  if (json_format.load()) {
    current_fields = &fields;
    logger->log(level, spdlog::string_view_t(message.data(), message.size()));
    current_fields = nullptr;
    return;
  }
  std::string line(message);
  for (size_t i = 0; i < fields.size(); ++i) {
    line += i == 0 ? " (" : ", ";
    line += fields[i].key;
    line += '=';
    const std::string& v = fields[i].value;
    const bool quote =
        v.empty() || v.find_first_of(" ,()=\"\\") != std::string::npos ||
        std::any_of(v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (quote) {
      // Control characters are escaped with the whole line (TextFormatter).
      line += '"';
      for (const char c : v) {
        if (c == '"' || c == '\\') line += '\\';
        line += c;
      }
      line += '"';
    } else {
      line += v;
    }
  }
  if (!fields.empty()) line += ')';
  logger->log(level, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace bertserve::logging
