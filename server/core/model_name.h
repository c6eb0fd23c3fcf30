#ifndef BERTSERVE_SERVER_CORE_MODEL_NAME_H_
#define BERTSERVE_SERVER_CORE_MODEL_NAME_H_

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace bertserve::core {

// Longest model name accepted, in bytes.
inline constexpr size_t kMaxModelNameLength = 128;

// OK if `name` is a legal model name: 1..128 characters of [A-Za-z0-9_.-],
// and not "." or "..". Otherwise InvalidArgument naming the problem. Names
// are checked before any lookup, so a client string never becomes a path.
absl::Status ValidateModelName(absl::string_view name);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_NAME_H_
