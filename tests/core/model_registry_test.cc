#include "server/core/model_registry.h"

#include <filesystem>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/fake_model.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

// Models executing on the CPU: no budget, no tiers.
testing::FakeDevice* CpuDevice() {
  static auto* device = new testing::FakeDevice(0, /*has_budget=*/false);
  return device;
}

// On the CPU, or on `device` with a 1 MiB budget (and as much host memory).
std::unique_ptr<ModelRegistry> MakeRegistry(const testing::TempRepository& repo,
                                            testing::FakeLoader* loader,
                                            testing::FakeDevice* device = nullptr) {
  absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo.root());
  EXPECT_TRUE(r.ok());
  RegistryOptions options;
  options.device = CpuDevice();
  if (device != nullptr) {
    options.device = device;
    options.vram_budget = 1 << 20;
    options.host_budget = 1 << 20;
  }
  absl::StatusOr<std::unique_ptr<ModelRegistry>> registry =
      ModelRegistry::Create(*r, loader, options);
  EXPECT_TRUE(registry.ok()) << registry.status();
  return *std::move(registry);
}

TEST(ModelRegistryTest, LoadMakesReadyWithBytesAndLabels) {
  testing::TempRepository repo;
  repo.AddModel("m", "labels: \"neg\" labels: \"pos\"");
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  std::vector<ModelState> seen;
  registry->AddStateListener([&](const ModelInfo& info) { seen.push_back(info.state); });

  EXPECT_EQ(registry->Get("m")->state, ModelState::kUnloaded);
  absl::StatusOr<ModelInfo> info = registry->Load("m");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state, ModelState::kReady);
  EXPECT_EQ(info->weight_bytes, 1000);
  EXPECT_EQ(info->labels, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(seen, (std::vector<ModelState>{ModelState::kLoading, ModelState::kHost,
                                           ModelState::kPlacing, ModelState::kReady}));
  EXPECT_TRUE(registry->Acquire("m").ok());
  // A second load of a READY model does nothing.
  EXPECT_TRUE(registry->Load("m").ok());
  EXPECT_EQ(loader.loads(), 1);
}

// Reads and placements (warm-up forwards included) run on threads that
// work now and then: after each job the loader gives back what the runtime
// keeps for them (libtorch's OpenMP team), so that only the device
// executors hold one.
TEST(ModelRegistryTest, ReadAndPlacementThreadsReleaseRuntimeResourcesAfterEachJob) {
  testing::TempRepository repo;
  repo.AddModel("m", "labels: \"neg\" labels: \"pos\"");
  testing::FakeDevice device(1 << 20);
  testing::FakeLoader loader(&device);
  auto registry = MakeRegistry(repo, &loader, &device);
  ASSERT_TRUE(registry->Load("m").ok());
  // The read's hook runs before the read's job finishes, the placement's
  // before the placement's: both before Load returns.
  EXPECT_EQ(loader.released_on(), (std::vector<std::string>{"model-read", "placement"}));
  ASSERT_TRUE(registry->Unload("m").ok());
  EXPECT_EQ(loader.released_on().size(), 3u);
  EXPECT_EQ(loader.released_on().back(), "placement");
}

// The registry reads configs with the defaults of the devices it places on:
// the plain CPU's token limit where models run there, a GPU's elsewhere.
TEST(ModelRegistryTest, TokenLimitDefaultFollowsTheServersDevices) {
  testing::TempRepository repo;
  repo.AddModel("plain", "labels: \"neg\" labels: \"pos\"");
  repo.AddModel("cpu", "labels: \"neg\" labels: \"pos\" device: DEVICE_CPU");
  repo.AddModel("set", "labels: \"neg\" labels: \"pos\" batch { max_batch_tokens: 2048 }");
  testing::FakeLoader cpu_loader;
  auto on_cpu = MakeRegistry(repo, &cpu_loader);
  ASSERT_TRUE(on_cpu->Load("plain").ok());
  EXPECT_EQ(on_cpu->Get("plain")->config.batch().max_batch_tokens(), kDefaultCpuMaxBatchTokens);
  EXPECT_EQ(on_cpu->Get("plain")->batch_token_limit, kDefaultCpuMaxBatchTokens);
  EXPECT_EQ(on_cpu->Get("cpu")->config.batch().max_batch_tokens(), kDefaultCpuMaxBatchTokens);
  EXPECT_EQ(on_cpu->Get("set")->config.batch().max_batch_tokens(), 2048);

  testing::FakeDevice device(1 << 20);
  testing::FakeLoader loader(&device);
  auto on_gpu = MakeRegistry(repo, &loader, &device);
  EXPECT_EQ(on_gpu->Get("plain")->config.batch().max_batch_tokens(), kDefaultMaxBatchTokens);
  EXPECT_EQ(on_gpu->Get("cpu")->config.batch().max_batch_tokens(), kDefaultCpuMaxBatchTokens);
  EXPECT_EQ(on_gpu->Get("set")->config.batch().max_batch_tokens(), 2048);
}

// On the plain CPU nothing chooses a device, but a pin to one the server
// lacks is still refused, as on GPUs.
TEST(ModelRegistryTest, APinToADeviceTheServerLacksIsRefusedOnTheCpuToo) {
  testing::TempRepository repo;
  repo.AddModel("pinned", "labels: \"neg\" labels: \"pos\" devices: [5]");
  repo.AddModel("first", "labels: \"neg\" labels: \"pos\" devices: [0]");
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  absl::StatusOr<ModelInfo> info = registry->Load("pinned");
  ASSERT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition) << info.status();
  EXPECT_THAT(info.status().message(),
              HasSubstr("pinned to device 5 (config.pbtxt devices) but the server has 1 device"));
  EXPECT_EQ(registry->Get("pinned")->state, ModelState::kFailed);  // a config error
  EXPECT_FALSE(registry->Acquire("pinned").ok());
  EXPECT_TRUE(registry->Load("first").ok());
}

// A model whose directory is removed after the server listed it is not
// found, as a name never seen is; a missing file in a directory that is
// still there is a broken model.
TEST(ModelRegistryTest, AModelWhoseDirectoryWentAwayIsNotFound) {
  testing::TempRepository repo;
  repo.AddModel("gone", "labels: \"neg\" labels: \"pos\"");
  repo.AddModel("broken", "labels: \"neg\" labels: \"pos\"");
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  ASSERT_TRUE(registry->Get("gone").ok());
  std::filesystem::remove_all(repo.root() + "/gone");
  absl::StatusOr<ModelInfo> info = registry->Load("gone");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("\"gone\" is not in the repository"));
  loader.FailNextLoad("broken", absl::NotFoundError("broken/model.pt: cannot open"));
  info = registry->Load("broken");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition) << info.status();
}

TEST(ModelRegistryTest, DefaultLabelNames) {
  testing::TempRepository repo;
  repo.AddModel("m");
  testing::FakeLoader loader;
  loader.SetNumLabels("m", 3);
  auto registry = MakeRegistry(repo, &loader);
  ASSERT_TRUE(registry->Load("m").ok());
  EXPECT_EQ(registry->Get("m")->labels,
            (std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"}));
}

TEST(ModelRegistryTest, FailedLoadKeepsReasonAndRetryWorks) {
  testing::TempRepository repo;
  repo.AddModel("bad");
  repo.AddModel("good");
  testing::FakeLoader loader;
  loader.FailNextLoad("bad", absl::InvalidArgumentError("bad/model.pt: not TorchScript"));
  auto registry = MakeRegistry(repo, &loader);
  absl::StatusOr<ModelInfo> info = registry->Load("bad");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("bad/model.pt"));
  EXPECT_EQ(registry->Get("bad")->state, ModelState::kFailed);
  EXPECT_THAT(registry->Get("bad")->last_error, HasSubstr("not TorchScript"));
  EXPECT_EQ(registry->Acquire("bad").status().code(), absl::StatusCode::kFailedPrecondition);
  // Others are unaffected.
  EXPECT_TRUE(registry->Load("good").ok());
  // The fault was one-shot: a retry loads.
  EXPECT_TRUE(registry->Load("bad").ok());
  EXPECT_EQ(registry->Get("bad")->last_error, "");
}

TEST(ModelRegistryTest, BrokenConfigIsFailedBeforeAnyLoad) {
  testing::TempRepository repo;
  repo.AddModel("cfg", "colour: \"red\"");
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  absl::StatusOr<ModelInfo> info = registry->Get("cfg");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, ModelState::kFailed);
  EXPECT_THAT(info->last_error, HasSubstr("config.pbtxt"));
  EXPECT_THAT(info->last_error, HasSubstr("colour"));
  EXPECT_FALSE(registry->Load("cfg").ok());
  EXPECT_EQ(loader.loads(), 0);
}

TEST(ModelRegistryTest, LabelCountMismatchFails) {
  testing::TempRepository repo;
  repo.AddModel("m", "labels: \"only-one\"");
  testing::FakeLoader loader;  // two logits
  auto registry = MakeRegistry(repo, &loader);
  absl::StatusOr<ModelInfo> info = registry->Load("m");
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr(repo.root() + "/m/config.pbtxt: field labels: has 1 names but " +
                        repo.root() + "/m/model.pt produces 2 logits"));
  EXPECT_EQ(registry->Get("m")->state, ModelState::kFailed);
}

TEST(ModelRegistryTest, UnknownAndIllegalNames) {
  testing::TempRepository repo;
  repo.AddModel("m");
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  EXPECT_EQ(registry->Load("absent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry->Load("../m").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry->Acquire("a/b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry->Acquire("absent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loader.loads(), 0);
}

TEST(ModelRegistryTest, ModelAddedOnDiskIsFoundByLoad) {
  testing::TempRepository repo;
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  EXPECT_TRUE(registry->List().empty());
  repo.AddModel("late");
  EXPECT_TRUE(registry->Load("late").ok());
  EXPECT_EQ(registry->List().size(), 1u);
}

TEST(ModelRegistryTest, UnloadWaitsForHeldHandle) {
  testing::TempRepository repo;
  repo.AddModel("m");
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  ASSERT_TRUE(registry->Load("m").ok());
  absl::StatusOr<ModelHandle> handle = registry->Acquire("m");
  ASSERT_TRUE(handle.ok());
  EXPECT_EQ(registry->Get("m")->in_use, 1);
  absl::Notification unloaded;
  std::thread unloader([&] {
    absl::StatusOr<ModelInfo> info = registry->Unload("m");
    EXPECT_TRUE(info.ok());
    EXPECT_EQ(info->state, ModelState::kUnloaded);
    unloaded.Notify();
  });
  // The holder can still run its batch; the unload cannot finish before the
  // handle is given back.
  InputBatch batch{1, 1, {5}, {1}, {0}};
  EXPECT_TRUE((*handle)->model->Forward(batch).ok());
  EXPECT_FALSE(unloaded.HasBeenNotified());
  handle->reset();
  unloader.join();
  EXPECT_EQ(registry->Get("m")->in_use, 0);
  EXPECT_EQ(registry->Get("m")->weight_bytes, 1000);
  // A request for an unloaded model loads it again.
  EXPECT_TRUE(registry->Acquire("m").ok());
  EXPECT_EQ(loader.loads(), 2);
}

class ConcurrentLoadTest : public ::testing::TestWithParam<int> {};

// Reads from disk of different models may overlap (each has its own
// thread); duplicates of one model share a single read.
TEST_P(ConcurrentLoadTest, EachModelIsReadOnceWhateverTheCallers) {
  const int n = GetParam();
  testing::TempRepository repo;
  for (int i = 0; i < n; ++i) repo.AddModel("m" + std::to_string(i));
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    // Two callers per model: the duplicate joins the same job.
    for (int k = 0; k < 2; ++k) {
      threads.emplace_back([&, i] { EXPECT_TRUE(registry->Load("m" + std::to_string(i)).ok()); });
    }
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(loader.loads(), n);
  for (int i = 0; i < n; ++i) EXPECT_EQ(loader.loads_of("m" + std::to_string(i)), 1) << i;
}

INSTANTIATE_TEST_SUITE_P(Models, ConcurrentLoadTest, ::testing::Values(1, 3, 10));

TEST(ModelRegistryTest, RequestWaitsForPlacementWithinItsDeadline) {
  testing::TempRepository repo;
  repo.AddModel("slow");
  testing::FakeLoader loader;
  absl::Notification started, release;
  loader.BlockLoad("slow", &started, &release);
  auto registry = MakeRegistry(repo, &loader);
  std::thread loader_thread([&] { EXPECT_TRUE(registry->Load("slow").ok()); });
  started.WaitForNotification();
  EXPECT_EQ(registry->Get("slow")->state, ModelState::kLoading);
  absl::StatusOr<ModelHandle> late = registry->Acquire("slow", absl::Now() - absl::Seconds(1));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("loading"));
  release.Notify();
  // Without a deadline the request waits for the same (shared) job.
  EXPECT_TRUE(registry->Acquire("slow").ok());
  loader_thread.join();
  EXPECT_EQ(loader.loads(), 1);
  EXPECT_EQ(registry->Get("slow")->state, ModelState::kReady);
}

// The finding: one model whose read never ends (a FIFO standing in for a
// stalled volume) held the placement worker, so every other load, the
// management calls and shutdown waited on it.
TEST(ModelRegistryTest, AStuckReadHoldsNeitherOtherModelsNorItsCallers) {
  testing::TempRepository repo;
  repo.AddModel("stuck");
  repo.AddModel("other");
  testing::FakeLoader loader;
  absl::Notification started, release;
  loader.BlockLoad("stuck", &started, &release);
  auto registry = MakeRegistry(repo, &loader);

  absl::Notification answered;
  absl::StatusOr<ModelInfo> answer;
  registry->LoadAsync("stuck", absl::Now() + absl::Milliseconds(100),
                      [&](absl::StatusOr<ModelInfo> info) {
                        answer = std::move(info);
                        answered.Notify();
                      });
  started.WaitForNotification();
  // Another model loads and serves while the read is stuck.
  EXPECT_TRUE(registry->Load("other").ok());
  EXPECT_TRUE(registry->Acquire("other").ok());
  // The stuck call answers at its deadline; the load goes on.
  answered.WaitForNotification();
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(answer.status().message()), HasSubstr("loading"));
  EXPECT_THAT(std::string(answer.status().message()), HasSubstr("goes on"));
  EXPECT_EQ(registry->Get("stuck")->state, ModelState::kLoading);
  EXPECT_EQ(registry->ReadsInProgress(), 1u);
  EXPECT_FALSE(registry->WaitForReads(absl::Now() + absl::Milliseconds(10)));
  // A request with a deadline fails at it without a thread waiting.
  absl::StatusOr<ModelHandle> late =
      registry->Acquire("stuck", absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);

  release.Notify();
  EXPECT_TRUE(registry->WaitForReads(absl::InfiniteFuture()));
  // The load that went on finishes: the next call finds the model placed.
  absl::StatusOr<ModelInfo> loaded = registry->Load("stuck");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->state, ModelState::kReady);
  EXPECT_EQ(loader.loads_of("stuck"), 1);
}

TEST(ModelRegistryTest, UnloadOfAModelBeingReadRunsWhenTheReadEnds) {
  testing::TempRepository repo;
  repo.AddModel("slow");
  testing::FakeLoader loader;
  absl::Notification started, release;
  loader.BlockLoad("slow", &started, &release);
  auto registry = MakeRegistry(repo, &loader);
  // Started from this thread, so the load is waiting on the read before the
  // unload below asks for it: the load's placement then comes first and the
  // unload last, whatever the threads' timing.
  absl::Notification loaded;
  registry->LoadAsync("slow", absl::InfiniteFuture(),
                      [&](absl::StatusOr<ModelInfo>) { loaded.Notify(); });
  started.WaitForNotification();
  absl::Notification unloaded;
  absl::StatusOr<ModelInfo> answer;
  registry->UnloadAsync("slow", absl::InfiniteFuture(), [&](absl::StatusOr<ModelInfo> info) {
    answer = std::move(info);
    unloaded.Notify();
  });
  // It cannot have run: the read has not ended.
  EXPECT_FALSE(unloaded.HasBeenNotified());
  release.Notify();
  unloaded.WaitForNotification();
  loaded.WaitForNotification();
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(registry->Get("slow")->state, ModelState::kUnloaded);
}

TEST(ModelRegistryTest, AfterShutdownNothingNewStarts) {
  testing::TempRepository repo;
  repo.AddModel("m");
  testing::FakeLoader loader;
  auto registry = MakeRegistry(repo, &loader);
  registry->Shutdown();
  EXPECT_EQ(registry->Load("m").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(registry->Acquire("m").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(loader.loads(), 0);
}

}  // namespace
}  // namespace bertserve::core
