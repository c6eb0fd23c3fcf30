#include "server/core/model_name.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace bertserve::core {

absl::Status ValidateModelName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("model name is empty");
  if (name.size() > kMaxModelNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model name is ", name.size(), " bytes long; the limit is ",
        kMaxModelNameLength));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("model name \"", name, "\" is not allowed"));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-') continue;
    return absl::InvalidArgumentError(absl::StrFormat(
        "model name \"%s\" has character '%s' at position %d; allowed are "
        "[A-Za-z0-9_.-]",
        absl::CHexEscape(name), absl::CHexEscape(name.substr(i, 1)), i));
  }
  return absl::OkStatus();
}

}  // namespace bertserve::core
