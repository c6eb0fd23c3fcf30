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
inline constexpr int64_t kDefaultMaxBatchTokens = 8192;     // tokens
inline constexpr int32_t kMaxSequenceLengthLimit = 8192;    // tokens

// Parses protobuf text format into a ModelConfig, fills defaults and checks
// ranges. Errors are InvalidArgument and name `display_path`, the line and
// column, and the field at fault (unknown fields are errors).
absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                                 const std::string& display_path);

// Reads and parses `path`; a missing file is NotFound naming it.
absl::StatusOr<v1::ModelConfig> ReadModelConfig(const std::string& path);

// Parses a ServerConfig file given with --config, same error style.
absl::StatusOr<v1::ServerConfig> ReadServerConfig(const std::string& path);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_CONFIG_H_
