#ifndef BERTSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
#define BERTSERVE_SERVER_CORE_MODEL_REPOSITORY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace bertserve::core {

// A directory with one sub-directory per model. Only sub-directories whose
// names are legal model names are listed, so the path of a model is always
// built from a name read off the disk, never from a client's string.
// Thread-safe (holds no mutable state).
class ModelRepository {
 public:
  // NotFound if `root` is not a readable directory.
  static absl::StatusOr<ModelRepository> Open(const std::string& root);

  // Names of the model directories, sorted.
  absl::StatusOr<std::vector<std::string>> ListModels() const;

  // The directory of `name` if the repository lists it, NotFound otherwise.
  absl::StatusOr<std::string> ModelDirectory(const std::string& name) const;

  const std::string& root() const { return root_; }

 private:
  explicit ModelRepository(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
