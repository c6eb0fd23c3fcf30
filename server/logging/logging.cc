#include "server/logging/logging.h"

#include <algorithm>
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

bool IsKeyChar(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

// The key=value tokens of a message ("model=tt-tuple bytes=42"), in order,
// each key once (the first wins); "time", "level" and "message" are never
// fields. A value runs to the next space, comma or closing parenthesis.
std::vector<std::pair<std::string_view, std::string_view>> Fields(std::string_view text) {
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  size_t i = 0;
  while ((i = text.find('=', i)) != std::string_view::npos) {
    size_t k = i;
    while (k > 0 && IsKeyChar(text[k - 1])) --k;
    size_t v = i + 1;
    while (v < text.size() && text[v] != ' ' && text[v] != ',' && text[v] != ')') ++v;
    const std::string_view key = text.substr(k, i - k);
    const std::string_view value = text.substr(i + 1, v - i - 1);
    const bool taken = std::any_of(fields.begin(), fields.end(),
                                   [&](const auto& f) { return f.first == key; });
    if (!key.empty() && !value.empty() && !taken && key != "time" && key != "level" &&
        key != "message") {
      fields.emplace_back(key, value);
    }
    i = v;
  }
  return fields;
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
    for (const auto& [key, value] : Fields(payload)) {
      dest.push_back(',');
      AppendJsonString(key, dest);
      dest.push_back(':');
      AppendJsonString(value, dest);
    }
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
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
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-format \"", format, "\" is not one of text, json"));
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace bertserve::logging
