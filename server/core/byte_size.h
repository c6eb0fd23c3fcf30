#ifndef BERTSERVE_SERVER_CORE_BYTE_SIZE_H_
#define BERTSERVE_SERVER_CORE_BYTE_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace bertserve::core {

// A memory size as written in a flag: absolute bytes, or a share of a total.
struct ByteSize {
  int64_t bytes = 0;      // when !is_fraction
  double fraction = 0;    // 0..1, when is_fraction
  bool is_fraction = false;

  // Bytes this size means for a device of `total` bytes.
  int64_t Resolve(int64_t total) const {
    return is_fraction ? static_cast<int64_t>(fraction * static_cast<double>(total)) : bytes;
  }
};

// Parses "12GiB", "512MiB", "1.5GB", "4096", "80%". Units: B, KB/MB/GB/TB
// (powers of 1000) and KiB/MiB/GiB/TiB (powers of 1024), case-insensitive.
// Percentages must be in (0, 100]. InvalidArgument naming `flag` otherwise.
absl::StatusOr<ByteSize> ParseByteSize(const std::string& text, const std::string& flag);

// "1.50 GiB" for logs and messages.
std::string FormatBytes(int64_t bytes);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_BYTE_SIZE_H_
