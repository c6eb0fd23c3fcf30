#include "server/torch/torch_model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/torch/cpu_device.h"
#include "tests/torch/torch_test_util.h"

namespace bertserve::torchrt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

TEST(BindForwardInputsTest, BindsByNameInSchemaOrder) {
  auto bound = BindForwardInputs({"attention_mask", "input_ids", "token_type_ids"},
                                 {false, false, false}, "m.pt");
  ASSERT_TRUE(bound.ok());
  EXPECT_THAT(*bound, ElementsAre(ForwardInput::kAttentionMask, ForwardInput::kInputIds,
                                  ForwardInput::kTokenTypeIds));
}

TEST(BindForwardInputsTest, DefaultedExtrasAreLeftAlone) {
  auto bound = BindForwardInputs({"input_ids", "attention_mask", "return_dict"},
                                 {false, false, true}, "m.pt");
  ASSERT_TRUE(bound.ok());
  EXPECT_THAT(*bound, ElementsAre(ForwardInput::kInputIds, ForwardInput::kAttentionMask));
}

TEST(BindForwardInputsTest, UnknownRequiredArgumentIsNamed) {
  auto bound = BindForwardInputs({"input_ids", "pixel_values"}, {false, false}, "m.pt");
  ASSERT_EQ(bound.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bound.status().message()), HasSubstr("pixel_values"));
  EXPECT_THAT(std::string(bound.status().message()), HasSubstr("m.pt"));
}

TEST(BindForwardInputsTest, InputIdsRequired) {
  auto bound = BindForwardInputs({"attention_mask"}, {false}, "m.pt");
  EXPECT_EQ(bound.status().code(), absl::StatusCode::kInvalidArgument);
}

using testing::Batch;
using testing::ModelsDir;
using testing::Source;

// Every model here runs on the plain CPU device.
class CpuLoader {
 public:
  CpuLoader() : loader_(&cpu_, &cpu_) {}
  absl::StatusOr<std::unique_ptr<core::Model>> Load(const core::ModelSource& source) {
    return loader_.Load(source);
  }

 private:
  CpuDevice cpu_;
  TorchModelLoader loader_;
};

class TorchModelLoadTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TorchModelLoadTest, PaddedBatchMatchesRowsAlone) {
  CpuLoader loader;
  ASSERT_TRUE(fs::exists(ModelsDir())) << "run scripts/make-test-models.sh first";
  auto model = loader.Load(Source(GetParam()));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_GT((*model)->weight_bytes(), 0);
  EXPECT_EQ((*model)->device(), "cpu");
  EXPECT_EQ((*model)->tier(), core::WeightTier::kDevice);
  const std::vector<int64_t> short_row = {101, 7592, 102};
  const std::vector<int64_t> long_row = {101, 7592, 2088, 999, 2129, 2024, 2017, 102};
  auto both = (*model)->Forward(Batch({short_row, long_row}));
  auto alone = (*model)->Forward(Batch({short_row}));
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_TRUE(alone.ok()) << alone.status();
  ASSERT_EQ(both->cols, alone->cols);
  for (int64_t j = 0; j < both->cols; ++j) {
    EXPECT_NEAR(both->values[j], alone->values[j], 1e-5) << "label " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Generated, TorchModelLoadTest,
                         ::testing::Values("tt-tuple", "nott-dict", "single-logit", "plain"));

TEST(TorchModelLoaderTest, ReportsSignatureAndLabelCount) {
  CpuLoader loader;
  auto tt = loader.Load(Source("tt-tuple"));
  ASSERT_TRUE(tt.ok()) << tt.status();
  EXPECT_THAT((*tt)->input_names(), ElementsAre("input_ids", "attention_mask", "token_type_ids"));
  const core::InputBatch one = Batch({{101, 7592, 102}});
  EXPECT_EQ((*tt)->Forward(one)->cols, 3);
  auto nott = loader.Load(Source("nott-dict"));
  ASSERT_TRUE(nott.ok()) << nott.status();
  EXPECT_THAT((*nott)->input_names(), ElementsAre("input_ids", "attention_mask"));
  auto single = loader.Load(Source("single-logit"));
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ((*single)->Forward(one)->cols, 1);
}

TEST(TorchModelLoaderTest, CorruptFileIsInvalidArgumentNamingIt) {
  CpuLoader loader;
  auto model = loader.Load(Source("broken-model"));
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("broken-model/model.pt"));
}

TEST(TorchModelLoaderTest, MissingFileIsNotFound) {
  CpuLoader loader;
  core::ModelSource source = Source("tt-tuple");
  source.model_path = source.directory + "/absent.pt";
  EXPECT_EQ(loader.Load(source).status().code(), absl::StatusCode::kNotFound);
}

TEST(TorchModelLoaderTest, Fp16RefusedOnCpu) {
  CpuLoader loader;
  core::ModelSource source = Source("tt-tuple");
  source.config.set_dtype(v1::ModelConfig::FP16);
  auto model = loader.Load(source);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("dtype"));
}

// Floating weights halve; the int64 buffers (position_ids) do not.
TEST(TorchModelLoaderTest, Bf16HalvesFloatingWeightBytes) {
  CpuLoader loader;
  core::ModelSource source = Source("tt-tuple");
  auto fp32 = loader.Load(source);
  source.config.set_dtype(v1::ModelConfig::BF16);
  auto bf16 = loader.Load(source);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  const int64_t full = (*fp32)->weight_bytes();
  const int64_t half = (*bf16)->weight_bytes();
  EXPECT_LT(half, full);
  EXPECT_GT(full - half, full * 45 / 100);
  EXPECT_GT(half * 2, full);
  auto logits = (*bf16)->Forward(core::InputBatch{1, 3, {101, 7592, 102}, {1, 1, 1}, {0, 0, 0}});
  EXPECT_TRUE(logits.ok()) << logits.status();
}

}  // namespace
}  // namespace bertserve::torchrt
