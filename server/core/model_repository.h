#ifndef BERTSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
#define BERTSERVE_SERVER_CORE_MODEL_REPOSITORY_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace bertserve::core {

// A directory with one sub-directory per model. Only sub-directories whose
// names are legal model names are listed, so the path of a model is always
// built from a name read off the disk, never from a client's string.
//
// Confinement: a model directory, or a file in it, whose real path (every
// symbolic link resolved) leaves the repository's real path is refused
// (PermissionDenied naming both paths), unless `follow_symlinks`. Links
// that stay inside are fine: a Kubernetes ConfigMap or Secret volume is made
// of them (`file -> ..data/file`, `..data -> ..2024_01_01...`).
// Thread-safe (holds no mutable state).
class ModelRepository {
 public:
  // NotFound if `root` is not a readable directory.
  static absl::StatusOr<ModelRepository> Open(const std::string& root,
                                              bool follow_symlinks = false);

  // Names of the model directories, sorted.
  absl::StatusOr<std::vector<std::string>> ListModels() const;
  // Directories ListModels passes over because their names are no model
  // names ("my model", "x:y"), each with the reason; hidden ones (".git",
  // a ConfigMap's "..data") are not listed here either.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> UnservedDirectories() const;

  // The directory of `name` if the repository lists it, NotFound otherwise;
  // PermissionDenied if it leaves the repository (see above).
  absl::StatusOr<std::string> ModelDirectory(const std::string& name) const;

  // The path of `file` in `model_directory` (from ModelDirectory) when it
  // exists, nullopt when it does not. PermissionDenied, naming the path,
  // when it cannot be looked at (a directory without search permission, say)
  // or when it leaves the repository.
  absl::StatusOr<std::optional<std::string>> FileIn(const std::string& model_directory,
                                                     const std::string& file) const;

  const std::string& root() const { return root_; }

 private:
  ModelRepository(std::string root, std::string real_root, bool follow_symlinks)
      : root_(std::move(root)), real_root_(std::move(real_root)), follow_symlinks_(follow_symlinks) {}
  // OK if `path`'s real path is inside the repository's (or links may be
  // followed anywhere).
  absl::Status CheckConfined(const std::string& path) const;

  std::string root_;
  std::string real_root_;  // root_ with every link resolved
  bool follow_symlinks_ = false;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
