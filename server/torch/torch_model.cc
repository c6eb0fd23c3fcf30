#include "server/torch/torch_model.h"

#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include <torch/script.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/torch/torch_errors.h"

namespace bertserve::torchrt {
namespace {

absl::StatusOr<c10::ScalarType> ScalarTypeFor(const core::ModelSource& source,
                                              const c10::Device& device) {
  switch (source.config.dtype()) {
    case v1::ModelConfig::DTYPE_UNSPECIFIED:
    case v1::ModelConfig::FP32:
      return c10::kFloat;
    case v1::ModelConfig::BF16:
      return c10::kBFloat16;
    case v1::ModelConfig::FP16:
      if (device.is_cpu()) {
        return absl::InvalidArgumentError(absl::StrCat(
            source.directory, "/config.pbtxt: field dtype: FP16 needs a CUDA device; "
                              "use FP32 or BF16 on the CPU"));
      }
      return c10::kHalf;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(source.directory, "/config.pbtxt: field dtype: unknown value"));
  }
}

std::string ShapeString(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

class TorchModel : public core::Model {
 public:
  TorchModel(torch::jit::Module module, std::vector<ForwardInput> inputs, c10::Device device,
             std::string model_path, int64_t weight_bytes)
      : module_(std::move(module)),
        inputs_(std::move(inputs)),
        device_(device),
        model_path_(std::move(model_path)),
        weight_bytes_(weight_bytes) {}

  absl::StatusOr<core::Logits> Forward(const core::InputBatch& batch) override {
    try {
      c10::InferenceMode guard;
      const std::vector<int64_t> shape = {batch.batch_size, batch.sequence_length};
      auto tensor_of = [&](const std::vector<int64_t>& values) {
        // from_blob does not copy; the batch outlives the call.
        return torch::from_blob(const_cast<int64_t*>(values.data()), shape, torch::kLong)
            .to(device_);
      };
      std::vector<c10::IValue> args;
      args.reserve(inputs_.size());
      for (ForwardInput input : inputs_) {
        switch (input) {
          case ForwardInput::kInputIds: args.emplace_back(tensor_of(batch.input_ids)); break;
          case ForwardInput::kAttentionMask:
            args.emplace_back(tensor_of(batch.attention_mask));
            break;
          case ForwardInput::kTokenTypeIds:
            args.emplace_back(tensor_of(batch.token_type_ids));
            break;
        }
      }
      c10::IValue output = module_.forward(std::move(args));
      absl::StatusOr<at::Tensor> logits = ExtractLogits(output);
      if (!logits.ok()) return logits.status();
      if (logits->dim() != 2 || logits->size(0) != batch.batch_size) {
        return absl::InternalError(absl::StrCat(model_path_, ": forward returned shape ",
                                                ShapeString(*logits), "; expected [",
                                                batch.batch_size, ", labels]"));
      }
      at::Tensor host = logits->to(torch::kCPU, torch::kFloat).contiguous();
      core::Logits out;
      out.rows = host.size(0);
      out.cols = host.size(1);
      const float* data = host.data_ptr<float>();
      out.values.assign(data, data + host.numel());
      return out;
    } catch (const std::exception& e) {
      return StatusFromException(e, absl::StrCat(model_path_, ": forward failed"));
    }
  }

  int64_t weight_bytes() const override { return weight_bytes_; }
  int num_labels() const override { return num_labels_; }
  std::vector<std::string> input_names() const override {
    std::vector<std::string> names;
    for (ForwardInput input : inputs_) names.push_back(ForwardInputName(input));
    return names;
  }
  std::string device() const override { return device_.str(); }

  void set_num_labels(int n) { num_labels_ = n; }

 private:
  absl::StatusOr<at::Tensor> ExtractLogits(const c10::IValue& output) const {
    if (output.isTensor()) return output.toTensor();
    if (output.isTuple()) {
      const auto& elements = output.toTupleRef().elements();
      if (!elements.empty() && elements[0].isTensor()) return elements[0].toTensor();
    }
    if (output.isGenericDict()) {
      c10::Dict<c10::IValue, c10::IValue> dict = output.toGenericDict();
      auto it = dict.find(c10::IValue(std::string("logits")));
      if (it != dict.end() && it->value().isTensor()) return it->value().toTensor();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        model_path_, ": forward returned ", output.tagKind(),
        "; expected a tensor, a tuple starting with the logits, or a dict with \"logits\""));
  }

  torch::jit::Module module_;
  const std::vector<ForwardInput> inputs_;
  const c10::Device device_;
  const std::string model_path_;
  const int64_t weight_bytes_;
  int num_labels_ = 0;
};

// Module::to(dtype) in libtorch 1.13 converts integer buffers too (BERT's
// position_ids would become float), so only floating-point tensors change.
void ConvertFloatingTensors(torch::jit::Module& module, c10::ScalarType dtype) {
  if (dtype == c10::kFloat) return;
  c10::InferenceMode guard(false);
  for (at::Tensor p : module.parameters(/*recurse=*/true)) {
    if (p.is_floating_point()) p.set_data(p.to(dtype));
  }
  for (at::Tensor b : module.buffers(/*recurse=*/true)) {
    if (b.is_floating_point()) b.set_data(b.to(dtype));
  }
}

int64_t TensorBytes(const at::Tensor& t) {
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

}  // namespace

std::string ForwardInputName(ForwardInput input) {
  switch (input) {
    case ForwardInput::kInputIds: return "input_ids";
    case ForwardInput::kAttentionMask: return "attention_mask";
    case ForwardInput::kTokenTypeIds: return "token_type_ids";
  }
  return "?";
}

absl::StatusOr<std::vector<ForwardInput>> BindForwardInputs(
    const std::vector<std::string>& names, const std::vector<bool>& has_default,
    const std::string& model_path) {
  std::vector<ForwardInput> bound;
  bool has_input_ids = false;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    std::optional<ForwardInput> input;
    if (name == "input_ids") input = ForwardInput::kInputIds;
    if (name == "attention_mask") input = ForwardInput::kAttentionMask;
    if (name == "token_type_ids") input = ForwardInput::kTokenTypeIds;
    if (!input.has_value()) {
      if (has_default[i]) break;  // later arguments take their defaults too
      return absl::InvalidArgumentError(absl::StrCat(
          model_path, ": forward argument \"", name,
          "\" is not one of input_ids, attention_mask, token_type_ids and has no default"));
    }
    if (*input == ForwardInput::kInputIds) has_input_ids = true;
    bound.push_back(*input);
  }
  if (!has_input_ids) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_path, ": forward has no input_ids argument (arguments: ",
        absl::StrJoin(names, ", "), ")"));
  }
  return bound;
}

absl::StatusOr<std::unique_ptr<core::Model>> TorchModelLoader::Load(
    const core::ModelSource& source) {
  const std::string& path = source.model_path;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));

  const c10::Device device(c10::kCPU);
  absl::StatusOr<c10::ScalarType> dtype = ScalarTypeFor(source, device);
  if (!dtype.ok()) return dtype.status();

  torch::jit::Module module;
  try {
    std::istringstream stream(bytes.str());
    module = torch::jit::load(stream, device);
    module.eval();
    ConvertFloatingTensors(module, *dtype);
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat(path, ": not a loadable TorchScript model"),
                               absl::StatusCode::kInvalidArgument);
  }

  std::vector<std::string> names;
  std::vector<bool> has_default;
  try {
    const c10::FunctionSchema& schema = module.get_method("forward").function().getSchema();
    const auto& arguments = schema.arguments();
    for (size_t i = 1; i < arguments.size(); ++i) {  // 0 is self
      names.push_back(arguments[i].name());
      has_default.push_back(arguments[i].default_value().has_value());
    }
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat(path, ": has no forward method"),
                               absl::StatusCode::kInvalidArgument);
  }
  absl::StatusOr<std::vector<ForwardInput>> inputs = BindForwardInputs(names, has_default, path);
  if (!inputs.ok()) return inputs.status();

  int64_t weight_bytes = 0;
  for (const at::Tensor& p : module.parameters(/*recurse=*/true)) weight_bytes += TensorBytes(p);
  for (const at::Tensor& b : module.buffers(/*recurse=*/true)) weight_bytes += TensorBytes(b);

  auto model = std::make_unique<TorchModel>(std::move(module), *std::move(inputs), device, path,
                                            weight_bytes);
  // One small forward proves the model runs and tells the label count.
  core::InputBatch probe;
  probe.batch_size = 1;
  probe.sequence_length = 2;
  probe.input_ids = {0, 0};
  probe.attention_mask = {1, 1};
  probe.token_type_ids = {0, 0};
  absl::StatusOr<core::Logits> logits = model->Forward(probe);
  if (!logits.ok()) {
    return absl::Status(logits.status().code() == absl::StatusCode::kResourceExhausted
                            ? absl::StatusCode::kResourceExhausted
                            : absl::StatusCode::kInvalidArgument,
                        absl::StrCat("trial forward failed: ", logits.status().message()));
  }
  if (logits->cols < 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": forward returned no logits"));
  }
  model->set_num_labels(static_cast<int>(logits->cols));
  return model;
}

}  // namespace bertserve::torchrt
