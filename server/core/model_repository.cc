#include "server/core/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "server/core/model_name.h"

namespace bertserve::core {

namespace fs = std::filesystem;

absl::StatusOr<ModelRepository> ModelRepository::Open(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(
        absl::StrCat("model repository ", root, " is not a directory"));
  }
  return ModelRepository(fs::absolute(root, ec).lexically_normal().string());
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

absl::StatusOr<std::string> ModelRepository::ModelDirectory(const std::string& name) const {
  if (absl::Status s = ValidateModelName(name); !s.ok()) return s;
  absl::StatusOr<std::vector<std::string>> names = ListModels();
  if (!names.ok()) return names.status();
  // The path is composed from the listed entry, not from `name` alone.
  auto found = std::find(names->begin(), names->end(), name);
  if (found == names->end()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not in the repository"));
  }
  return (fs::path(root_) / *found).string();
}

}  // namespace bertserve::core
