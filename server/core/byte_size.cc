#include "server/core/byte_size.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace bertserve::core {

absl::StatusOr<ByteSize> ParseByteSize(const std::string& text, const std::string& flag) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " \"", text, "\": ", why,
        " (write bytes like 12GiB, 512MiB, 1.5GB, 4096, or a share like 80%)"));
  };
  std::string s(absl::StripAsciiWhitespace(text));
  if (s.empty()) return bad("empty");
  ByteSize size;
  if (s.back() == '%') {
    double percent = 0;
    if (!absl::SimpleAtod(s.substr(0, s.size() - 1), &percent)) return bad("not a number");
    if (!(percent > 0 && percent <= 100)) return bad("a share must be in (0%, 100%]");
    size.is_fraction = true;
    size.fraction = percent / 100.0;
    return size;
  }
  size_t unit_start = s.size();
  while (unit_start > 0 && absl::ascii_isalpha(static_cast<unsigned char>(s[unit_start - 1]))) {
    --unit_start;
  }
  const std::string unit = absl::AsciiStrToLower(s.substr(unit_start));
  double value = 0;
  if (!absl::SimpleAtod(s.substr(0, unit_start), &value)) return bad("not a number");
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  if (unit == "kb") scale = 1e3;
  if (unit == "mb") scale = 1e6;
  if (unit == "gb") scale = 1e9;
  if (unit == "tb") scale = 1e12;
  if (unit == "kib") scale = 1024.0;
  if (unit == "mib") scale = 1024.0 * 1024;
  if (unit == "gib") scale = 1024.0 * 1024 * 1024;
  if (unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  if (scale == 0) return bad(absl::StrCat("unknown unit \"", unit, "\""));
  const double bytes = value * scale;
  if (!(bytes >= 0) || bytes > 9.0e18) return bad("out of range");
  size.bytes = static_cast<int64_t>(std::llround(bytes));
  return size;
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (std::abs(b) >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.2f GiB", b / (1 << 30));
  if (std::abs(b) >= 1024.0 * 1024) return absl::StrFormat("%.2f MiB", b / (1 << 20));
  if (std::abs(b) >= 1024.0) return absl::StrFormat("%.2f KiB", b / 1024);
  return absl::StrCat(bytes, " B");
}

}  // namespace bertserve::core
