#ifndef BERTSERVE_SERVER_TORCH_TORCH_MODEL_H_
#define BERTSERVE_SERVER_TORCH_TORCH_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/model_runtime.h"
#include "server/torch/torch_device.h"

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
// module is put in eval mode, gradients are switched off and floating
// weights are converted to the configured dtype. No forward runs here: the
// registry's warm-up does that once the model is placed.
//
// Models for a budgeted device (CUDA, simulated) start in the host tier:
// every parameter and buffer is packed into one host block (pinned on CUDA)
// of exactly their bytes, each tensor a view into it. MoveToDevice
// copies that block to the device in one transfer and re-points the tensors
// at the copy; MoveToHost does the reverse. One block per tier keeps a
// swap-in at the speed of a single copy and frees device memory in one
// piece. Models configured DEVICE_CPU, and every model when `device` is the
// plain CPU, run on `cpu` and are in the device tier at once.
class TorchModelLoader : public core::ModelLoader {
 public:
  // Every device outlives the loader and every model it makes. `devices`
  // (at least one, all of one kind) are where budgeted models may be placed,
  // Model::MoveToDevice's indices; models that run on the CPU use `cpu`.
  TorchModelLoader(std::vector<TorchDevice*> devices, TorchDevice* cpu)
      : devices_(std::move(devices)), cpu_(cpu) {}
  TorchModelLoader(TorchDevice* device, TorchDevice* cpu)
      : TorchModelLoader(std::vector<TorchDevice*>{device}, cpu) {}

  absl::StatusOr<std::unique_ptr<core::Model>> Load(const core::ModelSource& source) override;
  void ReleaseThreadResources() override;  // ReleaseThreadPool (runtime_info.h)

 private:
  const std::vector<TorchDevice*> devices_;
  TorchDevice* const cpu_;
};

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_TORCH_MODEL_H_
