#include "server/tokenizer/text_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace bertserve::tokenizer {

absl::StatusOr<std::string> ReadTextFile(const std::string& path,
                                         std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrFormat("%s not found: %s", what, path));
  }
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is a directory, not a file: %s", what, path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot open %s %s: %s", what, path, std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read %s %s", what, path));
  }
  return contents.str();
}

}  // namespace bertserve::tokenizer
