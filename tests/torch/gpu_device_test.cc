// The CUDA device on a real GPU (scripts/gpu-check.sh). Every test skips
// where this build or machine has no CUDA.
#include <filesystem>
#include <memory>

#include <ATen/ATen.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/torch/cpu_device.h"
#include "server/torch/torch_device.h"
#include "server/torch/torch_model.h"
#include "tests/torch/torch_test_util.h"

namespace bertserve::torchrt {
namespace {

using testing::Batch;
using testing::FullBatch;
using testing::Source;

class GpuDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (or a CPU-only build)";
    auto made = CreateTorchDevice("cuda:0", 0);
    ASSERT_TRUE(made.ok()) << made.status();
    gpu_ = *std::move(made);
    gpu_->CapAllocator(gpu_->Memory().total_bytes);
    gpu_->ReleaseCachedMemory();
    base_ = gpu_->Memory().allocated_bytes;
    ASSERT_TRUE(std::filesystem::exists(testing::ModelsDir()));
  }
  int64_t Allocated() const { return gpu_->Memory().allocated_bytes - base_; }

  std::unique_ptr<TorchDevice> gpu_;
  CpuDevice cpu_;
  int64_t base_ = 0;
};

TEST_F(GpuDeviceTest, MemoryComesFromTheDriverAndTheAllocator) {
  const core::DeviceMemory m = gpu_->Memory();
  EXPECT_EQ(gpu_->name(), "cuda:0");
  EXPECT_GT(m.total_bytes, int64_t{1} << 30);
  EXPECT_GT(m.free_bytes, 0);
  EXPECT_LE(m.free_bytes, m.total_bytes);
  EXPECT_GE(m.reserved_bytes, m.allocated_bytes);
  EXPECT_TRUE(gpu_->pins_host_memory());
  EXPECT_TRUE(gpu_->AllocateHost(1024).is_pinned());
  EXPECT_EQ(CreateTorchDevice("cuda:4096", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(GpuDeviceTest, WeightsMoveBothWaysAndForwardMatchesTheCpu) {
  TorchModelLoader loader(gpu_.get(), &cpu_);
  auto model = loader.Load(Source("tt-tuple"));
  ASSERT_TRUE(model.ok()) << model.status();
  core::Model& m = **model;
  EXPECT_EQ(m.device(), "cuda:0");
  EXPECT_EQ(m.tier(), core::WeightTier::kHost);
  EXPECT_EQ(Allocated(), 0);
  ASSERT_TRUE(m.MoveToDevice().ok());
  // The caching allocator rounds blocks up to 512 bytes.
  EXPECT_GE(Allocated(), m.weight_bytes());
  EXPECT_LT(Allocated(), m.weight_bytes() + 512);

  const core::InputBatch batch = Batch({{101, 7592, 102}, {101, 2088, 999, 2129, 102}});
  auto on_gpu = m.Forward(batch);
  ASSERT_TRUE(on_gpu.ok()) << on_gpu.status();
  TorchModelLoader cpu_loader(&cpu_, &cpu_);
  auto reference = cpu_loader.Load(Source("tt-tuple"));
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto on_cpu = (*reference)->Forward(batch);
  ASSERT_TRUE(on_cpu.ok());
  ASSERT_EQ(on_gpu->values.size(), on_cpu->values.size());
  for (size_t i = 0; i < on_cpu->values.size(); ++i) {
    EXPECT_NEAR(on_gpu->values[i], on_cpu->values[i], 1e-3) << i;
  }

  // The first forward also left cuBLAS's workspace in the allocator; the
  // weights' block is what leaves with the move.
  const int64_t with_weights = Allocated();
  ASSERT_TRUE(m.MoveToHost().ok());
  EXPECT_LE(Allocated(), with_weights - m.weight_bytes());
  EXPECT_GT(Allocated(), with_weights - m.weight_bytes() - 512);
  ASSERT_TRUE(m.MoveToDevice().ok());
  auto again = m.Forward(batch);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->values.size(), on_gpu->values.size());
  for (size_t i = 0; i < on_gpu->values.size(); ++i) {
    EXPECT_NEAR(again->values[i], on_gpu->values[i], 1e-5) << i;
  }
}

TEST_F(GpuDeviceTest, Fp16AndBf16HalveTheWeights) {
  TorchModelLoader loader(gpu_.get(), &cpu_);
  core::ModelSource source = Source("tt-tuple");
  auto fp32 = loader.Load(source);
  source.config.set_dtype(v1::ModelConfig::FP16);
  auto fp16 = loader.Load(source);
  ASSERT_TRUE(fp32.ok() && fp16.ok());
  EXPECT_LT((*fp16)->weight_bytes() * 2, (*fp32)->weight_bytes() * 21 / 20);
  ASSERT_TRUE((*fp16)->MoveToDevice().ok());
  EXPECT_TRUE((*fp16)->Forward(Batch({{101, 7592, 102}})).ok());
}

TEST_F(GpuDeviceTest, TheCapTurnsOverspendingIntoAnOom) {
  TorchModelLoader loader(gpu_.get(), &cpu_);
  auto model = loader.Load(Source("tt-tuple"));
  ASSERT_TRUE(model.ok());
  gpu_->CapAllocator(gpu_->Memory().reserved_bytes + (*model)->weight_bytes() / 2);
  const absl::Status s = (*model)->MoveToDevice();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ((*model)->tier(), core::WeightTier::kHost);
  gpu_->CapAllocator(gpu_->Memory().total_bytes);
  ASSERT_TRUE((*model)->MoveToDevice().ok());
  EXPECT_TRUE((*model)->Forward(FullBatch(8, 64)).ok());
}

TEST_F(GpuDeviceTest, ReleasingTheCacheGivesMemoryBackToTheDriver) {
  {
    auto scope = gpu_->Enter();
    at::Tensor big = gpu_->ToDevice(at::ones({int64_t{256} << 20}, at::kByte));
    EXPECT_GE(gpu_->Memory().reserved_bytes, int64_t{256} << 20);
  }
  const int64_t cached = gpu_->Memory().reserved_bytes;
  gpu_->ReleaseCachedMemory();
  EXPECT_LE(gpu_->Memory().reserved_bytes, cached - (int64_t{256} << 20));
}

}  // namespace
}  // namespace bertserve::torchrt
