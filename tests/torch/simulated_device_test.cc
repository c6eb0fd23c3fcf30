#include "server/torch/simulated_device.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/batcher.h"
#include "server/torch/cpu_device.h"
#include "server/torch/torch_device.h"
#include "server/torch/torch_errors.h"
#include "server/torch/torch_model.h"
#include "tests/torch/torch_test_util.h"

namespace bertserve::torchrt {
namespace {

using ::testing::HasSubstr;
using testing::Batch;
using testing::FullBatch;
using testing::Source;

constexpr int64_t kCapacity = int64_t{256} << 20;
constexpr int64_t kMiB = int64_t{1} << 20;

// The process's one simulated device, made by the first test that needs it.
SimulatedDevice& Sim() {
  static SimulatedDevice* device = [] {
    auto made = CreateTorchDevice("sim:0", kCapacity);
    EXPECT_TRUE(made.ok()) << made.status();
    return static_cast<SimulatedDevice*>(made->release());
  }();
  return *device;
}

class SimulatedDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Sim().CapAllocator(kCapacity);
    base_ = Sim().Memory().allocated_bytes;
  }
  int64_t Counted() const { return Sim().Memory().allocated_bytes - base_; }

  int64_t base_ = 0;
};

TEST(CreateTorchDeviceTest, RefusesUnknownSpecsClearly) {
  for (const char* spec : {"gpu", "cuda:x", "cuda:-1", "sim:x", "sim:-1", "sim:16", "cpu:0", ""}) {
    auto device = CreateTorchDevice(spec, kCapacity);
    EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument) << spec;
  }
  EXPECT_EQ(CreateTorchDevice("sim", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CreateTorchDeviceTest, CudaWithoutAGpuIsFailedPrecondition) {
  if (CudaAvailable()) GTEST_SKIP() << "this machine has a GPU";
  auto device = CreateTorchDevice("cuda:0", kCapacity);
  EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CreateTorchDeviceTest, OnlyOneSimulatedDevicePerProcess) {
  EXPECT_EQ(Sim().name(), "sim:0");
  auto second = CreateTorchDevice("sim", kCapacity);
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("only one"));
}

TEST(HostMemoryFromMeminfoTest, ReadsTotalAndAvailable) {
  const core::DeviceMemory m = HostMemoryFromMeminfo(
      "MemTotal:       24576000 kB\nMemFree:  1 kB\nMemAvailable:   12288000 kB\n");
  EXPECT_EQ(m.total_bytes, int64_t{24576000} * 1024);
  EXPECT_EQ(m.free_bytes, int64_t{12288000} * 1024);
}

TEST_F(SimulatedDeviceTest, CountsOnlyInsideAScope) {
  at::Tensor outside = at::empty({kMiB}, at::kByte);
  EXPECT_EQ(Counted(), 0);
  at::Tensor inside;
  {
    auto scope = Sim().Enter();
    inside = at::empty({kMiB}, at::kByte);
  }
  EXPECT_EQ(Counted(), kMiB);
  // Freed outside any scope, on another thread: the bytes still come back.
  std::thread([t = std::move(inside)]() mutable { t.reset(); }).join();
  EXPECT_EQ(Counted(), 0);
  EXPECT_EQ(Sim().Memory().total_bytes, kCapacity);
}

TEST_F(SimulatedDeviceTest, PastTheLimitIsARealOutOfMemoryError) {
  auto scope = Sim().Enter();
  at::Tensor most = at::empty({kCapacity - base_ - kMiB}, at::kByte);
  try {
    at::Tensor more = at::empty({2 * kMiB}, at::kByte);
    FAIL() << "allocated past the capacity";
  } catch (const c10::OutOfMemoryError& e) {
    EXPECT_TRUE(IsOutOfMemory(e));
    EXPECT_THAT(e.what(), HasSubstr("out of memory"));
  }
  EXPECT_EQ(Counted(), kCapacity - base_ - kMiB);  // the failed one counted nothing
  at::Tensor fits = at::empty({kMiB}, at::kByte);
  EXPECT_EQ(Sim().Memory().free_bytes, 0);
}

TEST_F(SimulatedDeviceTest, CapLowersTheLimitAndPeakIsTracked) {
  Sim().CapAllocator(base_ + 4 * kMiB);
  EXPECT_EQ(Sim().limit_bytes(), base_ + 4 * kMiB);
  Sim().ResetPeak();
  auto scope = Sim().Enter();
  {
    at::Tensor a = at::empty({3 * kMiB}, at::kByte);
    EXPECT_THROW(at::empty({2 * kMiB}, at::kByte), c10::OutOfMemoryError);
  }
  EXPECT_EQ(Sim().Memory().peak_bytes, base_ + 3 * kMiB);
  Sim().ResetPeak();
  EXPECT_EQ(Sim().Memory().peak_bytes, base_);
  Sim().CapAllocator(kCapacity * 2);  // never grows past the capacity
  EXPECT_EQ(Sim().limit_bytes(), kCapacity);
}

TEST_F(SimulatedDeviceTest, CopiesAreRealAndCountedOnlyOnTheDevice) {
  const at::Tensor values = at::arange(1024, at::kFloat);
  at::Tensor on_device = Sim().ToDevice(values);
  EXPECT_EQ(Counted(), 4096);
  EXPECT_NE(on_device.data_ptr(), values.data_ptr());
  EXPECT_TRUE(on_device.equal(values));
  at::Tensor back;
  {
    auto scope = Sim().Enter();
    back = Sim().ToHost(on_device);
    at::Tensor block = Sim().AllocateHost(kMiB);
  }
  EXPECT_EQ(Counted(), 4096);
  EXPECT_TRUE(back.equal(values));
  on_device.reset();
  EXPECT_EQ(Counted(), 0);
}

// A model's weights on the simulated device: counted exactly while on it,
// given back when offloaded, and the forward is the CPU's.
class SimulatedModelTest : public SimulatedDeviceTest {
 protected:
  void SetUp() override {
    SimulatedDeviceTest::SetUp();
    ASSERT_TRUE(std::filesystem::exists(testing::ModelsDir()))
        << "run scripts/make-test-models.sh first";
  }
  CpuDevice cpu_;
  TorchModelLoader sim_loader_{&Sim(), &cpu_};
  TorchModelLoader cpu_loader_{&cpu_, &cpu_};
};

TEST_F(SimulatedModelTest, LoadsIntoHostThenMovesBothWays) {
  auto model = sim_loader_.Load(Source("tt-tuple"));
  ASSERT_TRUE(model.ok()) << model.status();
  core::Model& m = **model;
  EXPECT_EQ(m.device(), "sim:0");
  EXPECT_EQ(m.tier(), core::WeightTier::kHost);
  EXPECT_EQ(Counted(), 0);
  const core::InputBatch batch = Batch({{101, 7592, 102}, {101, 2088, 999, 2129, 102}});
  EXPECT_EQ(m.Forward(batch).status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(m.MoveToDevice().ok());
  EXPECT_EQ(m.tier(), core::WeightTier::kDevice);
  EXPECT_EQ(Counted(), m.weight_bytes());
  auto on_sim = m.Forward(batch);
  ASSERT_TRUE(on_sim.ok()) << on_sim.status();
  EXPECT_EQ(Counted(), m.weight_bytes());  // activations are gone again

  auto reference = cpu_loader_.Load(Source("tt-tuple"));
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto on_cpu = (*reference)->Forward(batch);
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  ASSERT_EQ(on_sim->values.size(), on_cpu->values.size());
  for (size_t i = 0; i < on_cpu->values.size(); ++i) {
    EXPECT_FLOAT_EQ(on_sim->values[i], on_cpu->values[i]) << i;
  }

  ASSERT_TRUE(m.MoveToHost().ok());
  EXPECT_EQ(m.tier(), core::WeightTier::kHost);
  EXPECT_EQ(Counted(), 0);
  ASSERT_TRUE(m.MoveToDevice().ok());  // and back: the values survived the trip
  auto again = m.Forward(batch);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->values, on_sim->values);
}

TEST_F(SimulatedModelTest, NoRoomForWeightsLeavesTheModelInHost) {
  auto model = sim_loader_.Load(Source("tt-tuple"));
  ASSERT_TRUE(model.ok()) << model.status();
  Sim().CapAllocator(base_ + (*model)->weight_bytes() / 2);
  const absl::Status s = (*model)->MoveToDevice();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("tt-tuple/model.pt"));
  EXPECT_EQ((*model)->tier(), core::WeightTier::kHost);
  EXPECT_EQ(Counted(), 0);
  Sim().CapAllocator(kCapacity);
  ASSERT_TRUE((*model)->MoveToDevice().ok());
  EXPECT_TRUE((*model)->Forward(Batch({{101, 102}})).ok());
}

TEST_F(SimulatedModelTest, ForwardPastTheLimitIsResourceExhaustedAndRecovers) {
  auto model = sim_loader_.Load(Source("tt-tuple"));
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE((*model)->MoveToDevice().ok());
  Sim().CapAllocator(base_ + (*model)->weight_bytes() + 64 * 1024);
  auto big = (*model)->Forward(FullBatch(64, 128));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted) << big.status();
  EXPECT_EQ(Counted(), (*model)->weight_bytes());  // nothing of the failed forward stays
  Sim().CapAllocator(kCapacity);
  EXPECT_TRUE((*model)->Forward(FullBatch(64, 128)).ok());
}

TEST_F(SimulatedModelTest, CpuConfiguredModelsStayOffTheDevice) {
  core::ModelSource source = Source("tt-tuple");
  source.config.set_device(v1::ModelConfig::DEVICE_CPU);
  auto model = sim_loader_.Load(source);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->device(), "cpu");
  EXPECT_EQ((*model)->tier(), core::WeightTier::kDevice);
  EXPECT_TRUE((*model)->Forward(Batch({{101, 102}})).ok());
  EXPECT_EQ(Counted(), 0);
}

// A second simulated device: its own capacity and accounting, a model that
// moves between the two, and the fault knob that fails it for good.
TEST_F(SimulatedModelTest, SecondDeviceCountsApartAndItsFaultIsSticky) {
  const std::string fault_file = ::testing::TempDir() + "/sim-fault";
  std::filesystem::remove(fault_file);
  static SimulatedDevice* sim1 = [&] {
    auto made = SimulatedDevice::Create(1, kCapacity, "", fault_file);
    EXPECT_TRUE(made.ok()) << made.status();
    return made->release();
  }();
  ASSERT_NE(sim1, nullptr);
  EXPECT_EQ(sim1->name(), "sim:1");
  EXPECT_EQ(SimulatedDevice::Create(1, kCapacity, "", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  const int64_t base1 = sim1->Memory().allocated_bytes;

  TorchModelLoader two{std::vector<TorchDevice*>{&Sim(), sim1}, &cpu_};
  auto model = two.Load(Source("tt-tuple"));
  ASSERT_TRUE(model.ok()) << model.status();
  core::Model& m = **model;
  const core::InputBatch batch = Batch({{101, 7592, 102}});
  ASSERT_TRUE(m.MoveToDevice(1).ok());
  EXPECT_EQ(m.device(), "sim:1");
  EXPECT_EQ(sim1->Memory().allocated_bytes - base1, m.weight_bytes());
  EXPECT_EQ(Counted(), 0);  // nothing on sim:0
  auto on1 = m.Forward(batch);
  ASSERT_TRUE(on1.ok()) << on1.status();
  // On a device already: another one only after host memory.
  EXPECT_EQ(m.MoveToDevice(0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.MoveToDevice(2).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.MoveToHost().ok());
  EXPECT_EQ(sim1->Memory().allocated_bytes, base1);
  ASSERT_TRUE(m.MoveToDevice(0).ok());
  EXPECT_EQ(m.device(), "sim:0");
  EXPECT_EQ(Counted(), m.weight_bytes());
  auto on0 = m.Forward(batch);
  ASSERT_TRUE(on0.ok()) << on0.status();
  EXPECT_EQ(on0->values, on1->values);
  ASSERT_TRUE(m.MoveToHost().ok());

  // The fault knob: once the file names sim:1, every forward and copy there
  // fails with a sticky device error; sim:0 goes on.
  ASSERT_TRUE(m.MoveToDevice(1).ok());
  {
    std::ofstream(fault_file) << "sim:1\n";
  }
  absl::StatusOr<core::Logits> failed;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  do {  // the file is read again every few milliseconds
    failed = m.Forward(batch);
  } while (failed.ok() && absl::Now() < give_up);
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(core::IsDeviceLost(failed.status())) << failed.status();
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("illegal memory access"));
  EXPECT_TRUE(sim1->failed());
  EXPECT_FALSE(m.Forward(batch).ok());
  EXPECT_FALSE(Sim().failed());
  EXPECT_TRUE((*sim_loader_.Load(Source("tt-tuple")))->MoveToDevice().ok());
}

}  // namespace
}  // namespace bertserve::torchrt
