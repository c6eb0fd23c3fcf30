#include "server/core/model_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

TEST(ModelConfigTest, EmptyConfigGetsDefaults) {
  absl::StatusOr<v1::ModelConfig> c = ParseModelConfig("", "m/config.pbtxt");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_sequence_length(), kDefaultMaxSequenceLength);
  EXPECT_EQ(c->batch().max_client_batch_size(), kDefaultMaxClientBatchSize);
  EXPECT_EQ(c->batch().max_batch_tokens(), kDefaultMaxBatchTokens);
  EXPECT_EQ(c->batch().max_queue_delay_us(), 0);  // work-conserving: no wait
  EXPECT_EQ(c->model_file(), "model.pt");
}

// On the plain CPU a batch past the caches runs slower per token, so the
// token limit a config leaves unset is smaller there, and never below one
// full-length input.
TEST(ModelConfigTest, TokenLimitDefaultDependsOnWhereTheModelRuns) {
  struct Case {
    const char* text;
    ServerDevices devices;
    int64_t want;
  };
  const Case cases[] = {
      {"", ServerDevices::kAccelerator, kDefaultMaxBatchTokens},
      {"", ServerDevices::kCpu, kDefaultCpuMaxBatchTokens},
      {"max_sequence_length: 128", ServerDevices::kCpu, kDefaultCpuMaxBatchTokens},
      {"max_sequence_length: 2048", ServerDevices::kCpu, 2048},
      {"device: DEVICE_CPU", ServerDevices::kAccelerator, kDefaultCpuMaxBatchTokens},
      {"device: DEVICE_DEFAULT", ServerDevices::kAccelerator, kDefaultMaxBatchTokens},
      {"batch { max_batch_tokens: 4096 }", ServerDevices::kCpu, 4096},
      {"batch { max_batch_tokens: 1024 }", ServerDevices::kAccelerator, 1024},
  };
  static_assert(kDefaultCpuMaxBatchTokens < kDefaultMaxBatchTokens);
  for (const Case& k : cases) {
    absl::StatusOr<v1::ModelConfig> c = ParseModelConfig(k.text, "c.pbtxt", k.devices);
    ASSERT_TRUE(c.ok()) << k.text << ": " << c.status();
    EXPECT_EQ(c->batch().max_batch_tokens(), k.want) << k.text;
  }
  // An explicit limit below the length is still an error on the CPU.
  EXPECT_FALSE(ParseModelConfig("max_sequence_length: 1024 batch { max_batch_tokens: 512 }",
                                "c.pbtxt", ServerDevices::kCpu)
                   .ok());
}

TEST(ModelConfigTest, ParsesEveryField) {
  absl::StatusOr<v1::ModelConfig> c = ParseModelConfig(R"pb(
    labels: "neg" labels: "pos"
    max_sequence_length: 128
    dtype: BF16
    device: DEVICE_CPU
    pinned: true
    tokenizer { lowercase: false strip_accents: true }
    batch { max_client_batch_size: 8 max_batch_tokens: 1024 max_queue_delay_us: 500 }
  )pb", "m/config.pbtxt");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->labels_size(), 2);
  EXPECT_EQ(c->max_sequence_length(), 128);
  EXPECT_EQ(c->dtype(), v1::ModelConfig::BF16);
  EXPECT_TRUE(c->pinned());
  EXPECT_FALSE(c->tokenizer().lowercase());
  EXPECT_EQ(c->batch().max_batch_tokens(), 1024);
}

TEST(ModelConfigTest, UnknownFieldNamesFileLineAndField) {
  absl::StatusOr<v1::ModelConfig> c =
      ParseModelConfig("labels: \"a\"\ncolour: \"red\"\n", "models/x/config.pbtxt");
  ASSERT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(c.status().message());
  EXPECT_THAT(message, HasSubstr("models/x/config.pbtxt:2:"));
  EXPECT_THAT(message, HasSubstr("colour"));
}

TEST(ModelConfigTest, SyntaxErrorIsReported) {
  absl::StatusOr<v1::ModelConfig> c = ParseModelConfig("batch { max_batch_tokens: }", "c.pbtxt");
  ASSERT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("c.pbtxt:1:"));
}

TEST(ModelConfigTest, RangeErrorsNameTheField) {
  struct Case {
    const char* text;
    const char* field;
  } cases[] = {
      {"max_sequence_length: -1", "max_sequence_length"},
      {"max_sequence_length: 100000", "max_sequence_length"},
      {"max_sequence_length: 2", "max_sequence_length"},
      {"batch { max_client_batch_size: -3 }", "batch.max_client_batch_size"},
      {"max_sequence_length: 512 batch { max_batch_tokens: 100 }", "batch.max_batch_tokens"},
      {"labels: \"\"", "labels[0]"},
      {"model_file: \"../other.pt\"", "model_file"},
  };
  for (const Case& k : cases) {
    absl::StatusOr<v1::ModelConfig> c = ParseModelConfig(k.text, "c.pbtxt");
    ASSERT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << k.text;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(k.field)) << k.text;
  }
}

TEST(ModelConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadModelConfig("/nonexistent/config.pbtxt").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace bertserve::core
