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

// Where a model's weights are.
enum class WeightTier {
  kHost,    // host memory (pinned where CUDA exists); cannot run
  kDevice,  // on its execution device; can run
};

// A loaded model. Its weights sit in one tier at a time; the placement worker
// moves them, never while a batch runs (the registry guarantees it), so the
// Move* calls need no locking against Forward. Forward is thread-safe.
class Model {
 public:
  virtual ~Model() = default;
  // REQUIRES: tier() == kDevice. OOM is ResourceExhausted; other failures
  // Internal or InvalidArgument.
  virtual absl::StatusOr<Logits> Forward(const InputBatch& batch) = 0;
  // Copies the weights to execution device `device` (an index into the
  // loader's devices: 0 for a single-device server) and frees the host copy.
  // ResourceExhausted on OOM, with the model left in the host tier;
  // InvalidArgument for an index the loader has no device for.
  virtual absl::Status MoveToDevice(int device) = 0;
  // The first (or only) device.
  absl::Status MoveToDevice() { return MoveToDevice(0); }
  // Copies the weights to host memory and frees the device copy.
  virtual absl::Status MoveToHost() = 0;
  virtual WeightTier tier() const = 0;
  // Parameter and buffer bytes at the model's dtype, in bytes; the same in
  // either tier.
  virtual int64_t weight_bytes() const = 0;
  // Forward arguments by name, in schema order.
  virtual std::vector<std::string> input_names() const = 0;
  // "cpu", "cuda:0", "sim:0": where it runs now, or ran last (in the host
  // tier), or will run first (never placed yet).
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
  // Reads the model into the host tier, converted to the configured dtype,
  // with its forward schema bound (no forward runs here: the registry's
  // warm-up after placement does that). A model whose config says
  // DEVICE_CPU, or any model when the server's device is the plain CPU,
  // executes on the CPU and is in the device tier at once.
  // Errors name the file at fault: NotFound, InvalidArgument (bad model),
  // ResourceExhausted (no memory).
  virtual absl::StatusOr<std::unique_ptr<Model>> Load(const ModelSource& source) = 0;

  // Called on a placement or read thread after each of its jobs (loads,
  // placements, warm-up forwards, evictions): gives back what the runtime
  // keeps per thread for work the device executors do not run (libtorch's
  // OpenMP team). Those threads work now and then; the executors run every
  // forward and keep theirs.
  virtual void ReleaseThreadResources() {}
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_RUNTIME_H_
