#include "server/torch/torch_errors.h"

#include <new>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "c10/util/Exception.h"
#include "server/core/batcher.h"

namespace bertserve::torchrt {
namespace {

absl::string_view FirstLine(absl::string_view text) {
  const size_t newline = text.find('\n');
  return absl::StripAsciiWhitespace(newline == absl::string_view::npos ? text
                                                                      : text.substr(0, newline));
}

// c10::Error::what() carries a backtrace; what_without_backtrace() does not.
absl::string_view Message(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

}  // namespace

bool IsOutOfMemory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return true;  // host memory
  const absl::string_view message = Message(e);
  return absl::StrContains(absl::AsciiStrToLower(message), "out of memory") ||
         absl::StrContains(message, "CUBLAS_STATUS_ALLOC_FAILED");
}

absl::Status StatusFromException(const std::exception& e, absl::string_view context,
                                 absl::StatusCode code) {
  absl::string_view message = Message(e);
  // The interpreter wraps errors in a "The following operation failed in the
  // TorchScript interpreter" preamble; the useful line is the last one.
  if (absl::StrContains(message, "TorchScript interpreter")) {
    absl::string_view rest = absl::StripTrailingAsciiWhitespace(message);
    const size_t last = rest.rfind('\n');
    if (last != absl::string_view::npos) message = rest.substr(last + 1);
  }
  const std::string text = absl::StrCat(context, ": ", FirstLine(message));
  if (IsOutOfMemory(e)) return absl::ResourceExhaustedError(text);
  if (IsStickyDeviceError(e)) return core::MarkDeviceLost(absl::InternalError(text));
  return absl::Status(code, text);
}

bool IsStickyDeviceError(const std::exception& e) {
  // CUDA errors after which the context is unusable for the life of the
  // process (every later call fails the same way).
  const std::string message = absl::AsciiStrToLower(Message(e));
  for (absl::string_view sticky :
       {"illegal memory access", "device-side assert", "unspecified launch failure",
        "illegal instruction", "misaligned address", "uncorrectable ecc error",
        "cuda error: launch failed", "hardware stack error"}) {
    if (absl::StrContains(message, sticky)) return true;
  }
  return false;
}

}  // namespace bertserve::torchrt
