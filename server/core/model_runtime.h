#ifndef BERTSERVE_SERVER_CORE_MODEL_RUNTIME_H_
#define BERTSERVE_SERVER_CORE_MODEL_RUNTIME_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bertserve/v1/config.pb.h"

// The seam between policy (server/core) and execution (server/torch): core
// asks a ModelLoader for Models and runs batches through them without knowing
// what executes them. Tests use fakes from tests/test_util.

namespace bertserve::core {

// A padded batch, row-major [batch_size, sequence_length].
struct InputBatch {
  int64_t batch_size = 0;
  int64_t sequence_length = 0;   // tokens per row, padding included
  std::vector<int64_t> input_ids;
  std::vector<int64_t> attention_mask;  // 1 real token, 0 padding
  std::vector<int64_t> token_type_ids;
};

// Raw model outputs as fp32, row-major [rows, cols].
struct Logits {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;
};

// A model ready to run. Forward is thread-safe.
class Model {
 public:
  virtual ~Model() = default;
  // OOM is ResourceExhausted; other failures Internal or InvalidArgument.
  virtual absl::StatusOr<Logits> Forward(const InputBatch& batch) = 0;
  // Parameter and buffer bytes at the model's dtype, in bytes.
  virtual int64_t weight_bytes() const = 0;
  // Number of logits per input.
  virtual int num_labels() const = 0;
  // Forward arguments by name, in schema order.
  virtual std::vector<std::string> input_names() const = 0;
  // "cpu", "cuda:0", ...
  virtual std::string device() const = 0;
};

// Where a model comes from: files inside one model directory.
struct ModelSource {
  std::string name;
  std::string directory;
  std::string model_path;  // directory + config.model_file
  v1::ModelConfig config;
};

// Turns files into Models. Implementations may be called from one thread
// at a time only (the placement worker).
class ModelLoader {
 public:
  virtual ~ModelLoader() = default;
  // Errors name the file at fault: NotFound, InvalidArgument (bad model),
  // ResourceExhausted (no memory).
  virtual absl::StatusOr<std::unique_ptr<Model>> Load(const ModelSource& source) = 0;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_RUNTIME_H_
