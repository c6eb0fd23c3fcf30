#include "server/torch/torch_model.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include <torch/script.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/torch/runtime_info.h"
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

int64_t TensorBytes(const at::Tensor& t) {
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

// One parameter or buffer of a module and where it sits in the weight block.
struct WeightSlot {
  at::Tensor tensor;  // the module's own tensor; repointed, never replaced
  int64_t offset;     // bytes from the start of the block
};

// A contiguous tensor shaped like `like`, whose memory is `block` (kByte)
// from byte `offset` on. No copy.
at::Tensor ViewInto(const at::Tensor& block, const at::Tensor& like, int64_t offset) {
  std::vector<int64_t> strides(like.dim(), 1);
  for (int64_t d = like.dim() - 2; d >= 0; --d) strides[d] = strides[d + 1] * like.size(d + 1);
  at::Tensor view = at::empty({0}, block.options().dtype(like.scalar_type()));
  view.set_(block.storage(), offset / like.element_size(), like.sizes(), strides);
  return view;
}

class TorchModel : public core::Model {
 public:
  // `devices`: where it may run (one entry, the plain CPU, for models that
  // execute there); it starts on the first.
  TorchModel(torch::jit::Module module, std::vector<ForwardInput> inputs,
             std::vector<TorchDevice*> devices, std::string model_path)
      : module_(std::move(module)),
        inputs_(std::move(inputs)),
        devices_(std::move(devices)),
        model_path_(std::move(model_path)) {}

  // Budgeted devices: packs every weight into one host block, leaving the
  // model in the host tier. Plain CPU: the weights stay where the loader put
  // them and the model is in the device tier.
  absl::Status Init() {
    // Each tensor once, even when two attributes share it (tied weights).
    absl::flat_hash_set<const void*> seen;
    std::vector<at::Tensor> tensors;
    for (const at::Tensor& p : module_.parameters(/*recurse=*/true)) {
      if (seen.insert(p.unsafeGetTensorImpl()).second) tensors.push_back(p);
    }
    for (const at::Tensor& b : module_.buffers(/*recurse=*/true)) {
      if (seen.insert(b.unsafeGetTensorImpl()).second) tensors.push_back(b);
    }
    // Packed without gaps, so the block is exactly the weight bytes: widest
    // elements first keeps every tensor aligned to its element size, and
    // tensors whose size is a multiple of 16 bytes first keeps nearly all
    // of them (every BERT matrix) 16-byte aligned for vector loads.
    std::stable_sort(tensors.begin(), tensors.end(), [](const at::Tensor& a, const at::Tensor& b) {
      const auto key = [](const at::Tensor& t) {
        return std::make_pair(-static_cast<int64_t>(t.element_size()), TensorBytes(t) % 16 != 0);
      };
      return key(a) < key(b);
    });
    for (const at::Tensor& t : tensors) {
      const int64_t size = t.element_size();
      const int64_t offset = (block_bytes_ + size - 1) / size * size;  // a no-op, by the order
      slots_.push_back({t, offset});
      block_bytes_ = offset + TensorBytes(t);
    }
    if (!devices_[0]->has_budget()) {
      tier_ = core::WeightTier::kDevice;
      return absl::OkStatus();
    }
    try {
      at::Tensor block = devices_[0]->AllocateHost(block_bytes_);
      for (const WeightSlot& slot : slots_) {
        ViewInto(block, slot.tensor, slot.offset).copy_(slot.tensor);
      }
      Repoint(block);
    } catch (const std::exception& e) {
      return StatusFromException(e, absl::StrCat(model_path_, ": packing weights in host memory"));
    }
    tier_ = core::WeightTier::kHost;
    return absl::OkStatus();
  }

  absl::StatusOr<core::Logits> Forward(const core::InputBatch& batch) override {
    if (tier_ != core::WeightTier::kDevice) {
      return absl::FailedPreconditionError(
          absl::StrCat(model_path_, ": forward while the weights are in host memory"));
    }
    const TorchDevice* device = devices_[current_.load()];
    try {
      const std::unique_ptr<TorchDevice::ExecutionScope> scope = device->Enter();
      c10::InferenceMode guard;
      const c10::Device where = device->execution_device();
      const std::vector<int64_t> shape = {batch.batch_size, batch.sequence_length};
      auto tensor_of = [&](const std::vector<int64_t>& values) {
        // from_blob does not copy; the batch outlives the call. On the CPU
        // the tensor is used in place.
        return torch::from_blob(const_cast<int64_t*>(values.data()), shape, torch::kLong)
            .to(where);
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

  using core::Model::MoveToDevice;
  absl::Status MoveToDevice(int index) override {
    if (!devices_[0]->has_budget()) return absl::OkStatus();  // the plain CPU: always there
    if (index < 0 || index >= static_cast<int>(devices_.size())) {
      return absl::InvalidArgumentError(absl::StrCat(model_path_, ": no device ", index, " (",
                                                     devices_.size(), " devices)"));
    }
    if (tier_ == core::WeightTier::kDevice) {
      if (index == current_.load()) return absl::OkStatus();
      return absl::FailedPreconditionError(
          absl::StrCat(model_path_, ": on ", devices_[current_.load()]->name(),
                       " already; it goes to host memory before another device"));
    }
    try {
      // One copy; if it fails for lack of room nothing has changed.
      at::Tensor block = devices_[index]->ToDevice(block_);
      Repoint(block);
    } catch (const std::exception& e) {
      return StatusFromException(e, absl::StrCat(model_path_, ": copying ", block_bytes_,
                                                 " bytes of weights to ", devices_[index]->name()));
    }
    current_.store(index);
    tier_ = core::WeightTier::kDevice;
    return absl::OkStatus();
  }

  absl::Status MoveToHost() override {
    if (tier_ == core::WeightTier::kHost || !devices_[0]->has_budget()) return absl::OkStatus();
    try {
      at::Tensor block = devices_[current_.load()]->AllocateHost(block_bytes_);
      block.copy_(block_);
      Repoint(block);
    } catch (const std::exception& e) {
      return StatusFromException(e, absl::StrCat(model_path_, ": copying ", block_bytes_,
                                                 " bytes of weights to host memory"));
    }
    tier_ = core::WeightTier::kHost;
    return absl::OkStatus();
  }

  core::WeightTier tier() const override { return tier_; }
  int64_t weight_bytes() const override { return block_bytes_; }
  std::vector<std::string> input_names() const override {
    std::vector<std::string> names;
    for (ForwardInput input : inputs_) names.push_back(ForwardInputName(input));
    return names;
  }
  std::string device() const override { return devices_[current_.load()]->name(); }

 private:
  // Points every weight at its place in `block`, which becomes the model's
  // block; the previous block is freed once the last view of it goes.
  void Repoint(const at::Tensor& block) {
    c10::InferenceMode normal(false);
    for (WeightSlot& slot : slots_) slot.tensor.set_data(ViewInto(block, slot.tensor, slot.offset));
    block_ = block;
  }

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
  const std::vector<TorchDevice*> devices_;
  std::atomic<int> current_{0};  // index into devices_: where it is, or was last
  const std::string model_path_;
  std::vector<WeightSlot> slots_;
  int64_t block_bytes_ = 0;  // the weight bytes: slots leave no gaps
  at::Tensor block_;         // where the weights are now; undefined on the plain CPU
  core::WeightTier tier_ = core::WeightTier::kHost;
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

namespace {

// A config whose max_sequence_length the model cannot take would fail at the
// first long input with a raw shape error from inside the model; find it at
// load instead, from the model's position-embedding table (BERT, DistilBERT,
// RoBERTa and their kin all name it *position_embeddings.weight). Models
// without such a table (relative or rotary positions) are not checked.
absl::Status CheckSequenceLength(const torch::jit::Module& module,
                                 const core::ModelSource& source, const std::string& path) {
  const int64_t wanted = source.config.max_sequence_length();
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (!absl::EndsWith(p.name, "position_embeddings.weight") || p.value.dim() != 2) continue;
    const int64_t positions = p.value.size(0);
    if (wanted > positions) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": max_sequence_length is ", wanted, " but the model's ", p.name, " has ",
          positions, " positions; set max_sequence_length to at most ", positions,
          " in config.pbtxt"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

void TorchModelLoader::ReleaseThreadResources() { ReleaseThreadPool(); }

absl::StatusOr<std::unique_ptr<core::Model>> TorchModelLoader::Load(
    const core::ModelSource& source) {
  const std::string& path = source.model_path;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));

  const bool on_cpu =
      source.config.device() == v1::ModelConfig::DEVICE_CPU || !devices_[0]->has_budget();
  const std::vector<TorchDevice*> devices = on_cpu ? std::vector<TorchDevice*>{cpu_} : devices_;
  // One dtype for every device a model may run on: devices of one server are
  // of one kind.
  absl::StatusOr<c10::ScalarType> dtype = ScalarTypeFor(source, devices[0]->execution_device());
  if (!dtype.ok()) return dtype.status();

  torch::jit::Module module;
  try {
    std::istringstream stream(bytes.str());
    module = torch::jit::load(stream, c10::Device(c10::kCPU));
    module.eval();
    for (at::Tensor p : module.parameters(/*recurse=*/true)) p.requires_grad_(false);
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
  try {
    if (absl::Status s = CheckSequenceLength(module, source, path); !s.ok()) return s;
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat(path, ": cannot read its parameters"),
                               absl::StatusCode::kInvalidArgument);
  }

  auto model = std::make_unique<TorchModel>(std::move(module), *std::move(inputs), devices, path);
  if (absl::Status s = model->Init(); !s.ok()) return s;
  return model;
}

}  // namespace bertserve::torchrt
