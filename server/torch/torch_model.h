#ifndef BERTSERVE_SERVER_TORCH_TORCH_MODEL_H_
#define BERTSERVE_SERVER_TORCH_TORCH_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/model_runtime.h"

namespace bertserve::torchrt {

// The forward arguments bertserve knows how to fill, by name.
enum class ForwardInput { kInputIds, kAttentionMask, kTokenTypeIds };

// Reads a TorchScript forward schema (argument names after `self`) and
// returns the inputs in call order. input_ids is required; attention_mask and
// token_type_ids are optional; any other argument without a default value is
// InvalidArgument naming it. Arguments with defaults are left to them.
// `has_default[i]` says whether argument i has a default.
absl::StatusOr<std::vector<ForwardInput>> BindForwardInputs(
    const std::vector<std::string>& names, const std::vector<bool>& has_default,
    const std::string& model_path);

std::string ForwardInputName(ForwardInput input);

// Loads TorchScript classifiers with libtorch. The file is read fully into
// memory first (so load time counts disk reads, and a pipe works too), the
// module is put in eval mode, converted to the configured dtype, and run once
// on a two-token input to learn the number of labels and prove it runs.
class TorchModelLoader : public core::ModelLoader {
 public:
  absl::StatusOr<std::unique_ptr<core::Model>> Load(const core::ModelSource& source) override;
};

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_TORCH_MODEL_H_
