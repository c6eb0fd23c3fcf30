#include "server/torch/torch_errors.h"

#include <stdexcept>

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::torchrt {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(TorchErrorsTest, OutOfMemoryByTypeOrMessage) {
  EXPECT_TRUE(IsOutOfMemory(c10::OutOfMemoryError({"f", "file.cc", 1}, "alloc failed")));
  // What the TorchScript interpreter rethrows.
  EXPECT_TRUE(IsOutOfMemory(std::runtime_error(
      "The following operation failed in the TorchScript interpreter.\n"
      "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")));
  EXPECT_TRUE(IsOutOfMemory(std::runtime_error("CUBLAS_STATUS_ALLOC_FAILED when calling x")));
  EXPECT_FALSE(IsOutOfMemory(std::runtime_error("shape mismatch")));
}

TEST(TorchErrorsTest, StatusKeepsFirstUsefulLine) {
  absl::Status s = StatusFromException(
      std::runtime_error("The following operation failed in the TorchScript interpreter.\n"
                         "Traceback of TorchScript:\n  x = y\n"
                         "RuntimeError: mat1 and mat2 shapes cannot be multiplied\n"),
      "m.pt: forward failed");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), HasSubstr("m.pt: forward failed: RuntimeError: mat1"));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("Traceback")));
  EXPECT_EQ(StatusFromException(std::runtime_error("out of memory"), "x").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusFromException(std::runtime_error("bad"), "x",
                                absl::StatusCode::kInvalidArgument)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TorchErrorsTest, RealLibtorchErrorHasNoBacktrace) {
  try {
    (void)torch::ones({2, 3}).matmul(torch::ones({2, 3}));
    FAIL() << "matmul of mismatched shapes did not throw";
  } catch (const std::exception& e) {
    absl::Status s = StatusFromException(e, "ctx");
    EXPECT_THAT(std::string(s.message()), HasSubstr("ctx: "));
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("\n")));
  }
}

}  // namespace
}  // namespace bertserve::torchrt
