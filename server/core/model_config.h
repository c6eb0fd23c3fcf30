#ifndef BERTSERVE_SERVER_CORE_MODEL_CONFIG_H_
#define BERTSERVE_SERVER_CORE_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "bertserve/v1/config.pb.h"

namespace bertserve::core {

// Defaults applied where config.pbtxt leaves a field at zero.
inline constexpr int32_t kDefaultMaxSequenceLength = 512;   // tokens
inline constexpr int32_t kDefaultMaxClientBatchSize = 64;   // inputs
inline constexpr int64_t kDefaultMaxBatchTokens = 8192;     // tokens, on a GPU
// On the plain CPU a forward's cost grows with its tokens, and a batch that
// outgrows the caches runs slower per token: 512 served BERT-Mini's and
// BERT-Base's shapes fastest there (README, "Token limit on a CPU"). A model
// whose max_sequence_length is longer gets that length.
inline constexpr int64_t kDefaultCpuMaxBatchTokens = 512;   // tokens
inline constexpr int32_t kMaxSequenceLengthLimit = 8192;    // tokens

// What the server executes on, for the defaults that depend on it.
enum class ServerDevices {
  kAccelerator,  // GPUs or simulated devices (with a budget)
  kCpu,          // the plain CPU
};

// Parses protobuf text format into a ModelConfig, fills defaults and checks
// ranges. A model runs on the CPU when the server's devices are the CPU or its
// config says DEVICE_CPU; its batch.max_batch_tokens then defaults to
// kDefaultCpuMaxBatchTokens, else to kDefaultMaxBatchTokens. Errors are
// InvalidArgument and name `display_path`, the line and column, and the field
// at fault (unknown fields are errors).
absl::StatusOr<v1::ModelConfig> ParseModelConfig(
    const std::string& text, const std::string& display_path,
    ServerDevices devices = ServerDevices::kAccelerator);

// Reads and parses `path`; a missing file is NotFound naming it.
absl::StatusOr<v1::ModelConfig> ReadModelConfig(
    const std::string& path, ServerDevices devices = ServerDevices::kAccelerator);

// Parses a ServerConfig file given with --config, same error style.
absl::StatusOr<v1::ServerConfig> ReadServerConfig(const std::string& path);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_CONFIG_H_
