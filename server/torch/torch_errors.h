#ifndef BERTSERVE_SERVER_TORCH_TORCH_ERRORS_H_
#define BERTSERVE_SERVER_TORCH_TORCH_ERRORS_H_

#include <exception>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace bertserve::torchrt {

// True if `e` is an out-of-memory error: c10::OutOfMemoryError, std::bad_alloc
// (host memory), or (because
// the TorchScript interpreter rethrows as std::runtime_error keeping only the
// message) a message saying "out of memory" or CUBLAS_STATUS_ALLOC_FAILED.
bool IsOutOfMemory(const std::exception& e);

// True for CUDA errors that leave the device unusable for this process
// (illegal memory access, device-side assert and the like).
bool IsStickyDeviceError(const std::exception& e);

// The Status for a libtorch exception: core::MarkDeviceLost'ed Internal for
// sticky device errors; ResourceExhausted for OOM, otherwise
// `code`. The message starts with `context` and keeps only the first line of
// libtorch's text (the rest is a C++ stack trace).
absl::Status StatusFromException(const std::exception& e, absl::string_view context,
                                 absl::StatusCode code = absl::StatusCode::kInternal);

}  // namespace bertserve::torchrt

#endif  // BERTSERVE_SERVER_TORCH_TORCH_ERRORS_H_
