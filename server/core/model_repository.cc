#include "server/core/model_repository.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "server/core/model_name.h"

namespace bertserve::core {

namespace fs = std::filesystem;

absl::StatusOr<ModelRepository> ModelRepository::Open(const std::string& root,
                                                      bool follow_symlinks) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(
        absl::StrCat("model repository ", root, " is not a directory",
                     ec && ec != std::errc::no_such_file_or_directory
                         ? absl::StrCat(" (", ec.message(), ")")
                         : std::string()));
  }
  // The repository itself may be reached through links (/models -> /mnt/x):
  // confinement is about what is inside it.
  const fs::path real = fs::canonical(root, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("model repository ", root, ": ", ec.message()));
  }
  return ModelRepository(fs::absolute(root, ec).lexically_normal().string(), real.string(),
                         follow_symlinks);
}

absl::Status ModelRepository::CheckConfined(const std::string& path) const {
  if (follow_symlinks_) return absl::OkStatus();
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": ", ec.message()));
  }
  const fs::path inside = real.lexically_relative(real_root_);
  if (inside.empty() || *inside.begin() == "..") {
    return absl::PermissionDeniedError(absl::StrCat(
        path, " resolves to ", real.string(), ", outside the model repository ", real_root_,
        "; refused (start bertserve with --follow-symlinks to allow links that leave it)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> ModelRepository::FileIn(
    const std::string& model_directory, const std::string& file) const {
  const std::string path = (fs::path(model_directory) / file).string();
  std::error_code ec;
  // symlink_status: a dangling link is there (and then fails confinement
  // with its reason) rather than silently absent.
  const fs::file_status status = fs::symlink_status(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return std::optional<std::string>();
    if (ec == std::errc::permission_denied) {
      return absl::PermissionDeniedError(absl::StrCat("permission denied: ", path));
    }
    return absl::PermissionDeniedError(absl::StrCat(path, ": ", ec.message()));
  }
  if (!fs::exists(status)) return std::optional<std::string>();
  if (absl::Status s = CheckConfined(path); !s.ok()) return s;
  return std::optional<std::string>(path);
}

absl::StatusOr<std::vector<std::string>> ModelRepository::ListModels() const {
  std::error_code ec;
  fs::directory_iterator it(root_, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list model repository ", root_, ": ", ec.message()));
  }
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden, editor droppings
    if (!entry.is_directory(ec)) continue;
    if (!ValidateModelName(name).ok()) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
ModelRepository::UnservedDirectories() const {
  std::error_code ec;
  fs::directory_iterator it(root_, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list model repository ", root_, ": ", ec.message()));
  }
  std::vector<std::pair<std::string, std::string>> unserved;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !entry.is_directory(ec)) continue;
    if (absl::Status s = ValidateModelName(name); !s.ok()) {
      unserved.emplace_back(name, std::string(s.message()));
    }
  }
  std::sort(unserved.begin(), unserved.end());
  return unserved;
}

absl::StatusOr<std::string> ModelRepository::ModelDirectory(const std::string& name) const {
  if (absl::Status s = ValidateModelName(name); !s.ok()) return s;
  absl::StatusOr<std::vector<std::string>> names = ListModels();
  if (!names.ok()) return names.status();
  // The path is composed from the listed entry, not from `name` alone.
  auto found = std::find(names->begin(), names->end(), name);
  if (found == names->end()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not in the repository"));
  }
  const std::string directory = (fs::path(root_) / *found).string();
  if (absl::Status s = CheckConfined(directory); !s.ok()) return s;
  return directory;
}

}  // namespace bertserve::core
