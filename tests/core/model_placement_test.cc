// The VRAM budget, eviction and host tier of ModelRegistry, against a fake
// device whose capacity the fake models' weights and activations really use.

#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/model_registry.h"
#include "tests/test_util/fake_model.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kBudget = 1000;
// A forward costs 1 byte per padded token; warm-up runs at max_batch_tokens,
// so each model's measured reserve is exactly that.
constexpr char kConfig[] = "max_sequence_length: 8 batch { max_batch_tokens: 16 }";
constexpr int64_t kReserve = 16;

class PlacementTest : public ::testing::Test {
 protected:
  void Make(int64_t host_budget = 1 << 30) {
    absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo_.root());
    ASSERT_TRUE(r.ok());
    loader_.SetActivationBytesPerToken(1);
    RegistryOptions options;
    options.device = &device_;
    options.vram_budget = kBudget;
    options.host_budget = host_budget;
    auto registry = ModelRegistry::Create(*r, &loader_, options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    registry_->AddPlacementListener([this](const PlacementEvent& e) {
      absl::MutexLock lock(&mu_);
      events_.push_back(std::string(PlacementKindName(e.kind)) + "/" + e.model +
                        (e.ok ? "" : "/error"));
    });
  }

  void AddModel(const std::string& name, int64_t weights, const std::string& extra = "") {
    repo_.AddModel(name, std::string(kConfig) + " " + extra);
    loader_.SetWeightBytes(name, weights);
  }

  int Resident() {
    int n = 0;
    for (const ModelInfo& info : registry_->List()) n += info.state == ModelState::kReady;
    return n;
  }

  // Runs one forward through a handle, as a request would.
  void Use(const std::string& name) {
    absl::StatusOr<ModelHandle> handle = registry_->Acquire(name);
    ASSERT_TRUE(handle.ok()) << name << ": " << handle.status();
    InputBatch batch{1, 2, {5, 6}, {1, 1}, {0, 0}};
    absl::MutexLock exclusive((*handle)->execution_mu);
    ASSERT_TRUE((*handle)->model->Forward(batch).ok());
  }

  int Count(const std::string& event) {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(std::count(events_.begin(), events_.end(), event));
  }

  testing::TempRepository repo_;
  testing::FakeDevice device_{kBudget};
  testing::FakeLoader loader_{&device_};
  std::unique_ptr<ModelRegistry> registry_;
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

TEST_F(PlacementTest, WarmUpMeasuresReserveAndBudgetCountsIt) {
  AddModel("a", 400);
  Make();
  absl::StatusOr<ModelInfo> info = registry_->Load("a");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->reserve_measured);
  EXPECT_EQ(info->activation_reserve, kReserve);
  EXPECT_EQ(info->device_bytes, 400);
  EXPECT_EQ(info->host_bytes, 0);
  EXPECT_EQ(registry_->Memory().reserved, 400 + kReserve);
  EXPECT_EQ(device_.allocated(), 400);
}

TEST_F(PlacementTest, WarmUpThatRunsOutOfMemoryLowersTheTokenLimit) {
  // 16 tokens (2 rows of 8) per forward configured, but another process
  // leaves 20 bytes: 10 for the weights, 10 for activations (1 byte per
  // token). Warm-up settles on one row of 8.
  AddModel("a", 10);
  Make();
  ASSERT_TRUE(device_.Allocate(kBudget - 20).ok());
  absl::StatusOr<ModelInfo> info = registry_->Load("a");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state, ModelState::kReady);
  EXPECT_EQ(info->batch_token_limit, 8);
  EXPECT_EQ(info->activation_reserve, 8);
  device_.Free(kBudget - 20);
}

TEST_F(PlacementTest, LimitLoweredUnderPressureIsMeasuredAgainOnTheNextPlacement) {
  AddModel("a", 10);
  AddModel("b", 10);
  Make();
  ASSERT_TRUE(device_.Allocate(kBudget - 20).ok());
  ASSERT_EQ(registry_->Load("a")->batch_token_limit, 8);
  // Still squeezed at the next placement: no more memory is free than when
  // the limit was lowered, so the swap-in keeps 8 without trying a forward.
  ASSERT_TRUE(registry_->EvictIdle("b", absl::InfiniteFuture()).ok());
  ASSERT_EQ(registry_->Get("a")->state, ModelState::kHost);
  const int squeezed_forwards = loader_.last_model("a")->forwards();
  absl::StatusOr<ModelInfo> squeezed = registry_->Load("a");
  ASSERT_TRUE(squeezed.ok()) << squeezed.status();
  EXPECT_EQ(squeezed->batch_token_limit, 8);
  EXPECT_EQ(squeezed->swap_ins, 1);
  EXPECT_EQ(loader_.last_model("a")->forwards(), squeezed_forwards);
  // The other process is gone: the next placement proves the full limit.
  device_.Free(kBudget - 20);
  ASSERT_TRUE(registry_->EvictIdle("b", absl::InfiniteFuture()).ok());
  absl::StatusOr<ModelInfo> again = registry_->Load("a");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->batch_token_limit, 16);
  EXPECT_EQ(again->activation_reserve, kReserve);
  EXPECT_EQ(registry_->Memory().reserved, 10 + kReserve);
  // Measured at the full limit, it is not measured again.
  const int forwards = loader_.last_model("a")->forwards();
  ASSERT_TRUE(registry_->EvictIdle("b", absl::InfiniteFuture()).ok());
  ASSERT_TRUE(registry_->Load("a").ok());
  EXPECT_EQ(loader_.last_model("a")->forwards(), forwards);
}

TEST_F(PlacementTest, ThreeModelsOfFortyPercentRoundRobin) {
  for (const char* name : {"a", "b", "c"}) AddModel(name, 400);
  Make();
  for (int round = 0; round < 10; ++round) {
    for (const char* name : {"a", "b", "c"}) {
      Use(name);
      EXPECT_LE(Resident(), 2);
      EXPECT_LE(device_.allocated(), kBudget);
      EXPECT_LE(registry_->Memory().reserved, kBudget);
    }
  }
  // Each model was loaded from disk once; every later use was a swap-in.
  EXPECT_EQ(loader_.loads(), 3);
  EXPECT_GT(Count("evict/a"), 0);
  EXPECT_GT(Count("swap_in/a"), 0);
  int64_t evictions = 0, swap_ins = 0;
  for (const ModelInfo& info : registry_->List()) {
    evictions += info.evictions;
    swap_ins += info.swap_ins;
  }
  EXPECT_EQ(evictions, Count("evict/a") + Count("evict/b") + Count("evict/c"));
  EXPECT_EQ(swap_ins, Count("swap_in/a") + Count("swap_in/b") + Count("swap_in/c"));
  EXPECT_GE(swap_ins, 27);  // 30 uses, 3 cold loads
}

TEST_F(PlacementTest, TooLargeModelRefusedBeforeAnyByteMoves) {
  AddModel("small", 400);
  AddModel("huge", 1200);
  Make();
  ASSERT_TRUE(registry_->Load("small").ok());
  const int64_t before = device_.allocated();
  absl::StatusOr<ModelInfo> huge = registry_->Load("huge");
  ASSERT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string message(huge.status().message());
  EXPECT_THAT(message, HasSubstr("needs 2400 bytes"));  // weights + estimated reserve
  EXPECT_THAT(message, HasSubstr("at most 1000 bytes"));
  EXPECT_EQ(device_.allocated(), before);
  EXPECT_EQ(registry_->Get("small")->state, ModelState::kReady);
  EXPECT_EQ(registry_->Get("huge")->state, ModelState::kHost);
  Use("small");
}

TEST_F(PlacementTest, HeldModelIsNeverEvicted) {
  for (const char* name : {"a", "b", "c"}) AddModel(name, 400);
  Make();
  // Measure every reserve first (before measuring, a reserve is estimated as
  // large as the weights), ending with a and b resident, a the older.
  Use("c");
  Use("a");
  Use("b");
  ASSERT_EQ(registry_->Get("c")->state, ModelState::kHost);
  absl::StatusOr<ModelHandle> held = registry_->Acquire("a");
  ASSERT_TRUE(held.ok());
  testing::FakeModel* a = loader_.last_model("a");
  absl::Notification started, release;
  a->BlockNextForward(&started, &release);
  std::thread batch([&] {
    InputBatch input{1, 1, {5}, {1}, {0}};
    EXPECT_TRUE((*held)->model->Forward(input).ok());
  });
  started.WaitForNotification();
  // c needs room: b goes, although a is older, because a is in use.
  ASSERT_TRUE(registry_->Load("c").ok()) << registry_->Load("c").status();
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kReady);
  EXPECT_EQ(registry_->Get("b")->state, ModelState::kHost);
  EXPECT_EQ(registry_->Get("c")->state, ModelState::kReady);
  release.Notify();
  batch.join();
  held->reset();
}

// Two models that cannot share the device take turns: a placement that needs
// the room a held model takes ends that model's turn (no new holds; the held
// requests finish), and a request arriving for it meanwhile waits for its
// next turn instead of renewing it or failing.
TEST_F(PlacementTest, HeldModelsTurnEndsAndItsNewRequestsWaitForTheNextTurn) {
  // Alone each fits (500 + its reserve estimated as 500 until measured);
  // together they do not (500 + 500 + the measured reserve of 16).
  AddModel("a", 500);
  AddModel("b", 500);
  Make();
  Use("b");  // measure b's reserve
  Use("a");  // b evicted, a resident
  absl::StatusOr<ModelHandle> a_held = registry_->Acquire("a");
  ASSERT_TRUE(a_held.ok());

  absl::Notification b_placed;
  absl::StatusOr<ModelHandle> b_held = absl::UnknownError("not called");
  registry_->AcquireAsync("b", absl::InfiniteFuture(), [&](absl::StatusOr<ModelHandle> h) {
    b_held = std::move(h);
    b_placed.Notify();
  });
  // The placement of b now waits for a's hold, and a takes no new ones.
  // Polled: the placement worker reaches that point on its own thread.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (true) {
    ASSERT_LT(absl::Now(), give_up) << "a kept taking new holds while b waited for the device";
    absl::StatusOr<ModelHandle> probe = registry_->TryAcquire("a");
    if (!probe.ok()) {
      EXPECT_EQ(probe.status().code(), absl::StatusCode::kUnavailable);
      EXPECT_THAT(std::string(probe.status().message()), HasSubstr("turn"));
      break;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::Notification a_again;
  absl::StatusOr<ModelHandle> a_next = absl::UnknownError("not called");
  registry_->AcquireAsync("a", absl::InfiniteFuture(), [&](absl::StatusOr<ModelHandle> h) {
    a_next = std::move(h);
    a_again.Notify();
  });
  EXPECT_FALSE(b_placed.HasBeenNotified());
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kReady);

  a_held->reset();  // a's last request finishes: its turn is over
  b_placed.WaitForNotification();
  ASSERT_TRUE(b_held.ok()) << b_held.status();
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kHost);
  // a's request waits while b serves its own.
  EXPECT_FALSE(a_again.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  b_held->reset();
  a_again.WaitForNotification();
  ASSERT_TRUE(a_next.ok()) << a_next.status();
  EXPECT_EQ(registry_->Get("b")->state, ModelState::kHost);
  a_next->reset();
  EXPECT_EQ(Count("evict/a"), 1);
  EXPECT_EQ(Count("evict/b"), 2);
}

TEST_F(PlacementTest, NothingEvictableMeansResourceExhausted) {
  AddModel("pinned", 500, "pinned: true");
  AddModel("other", 400);
  Make();
  ASSERT_TRUE(registry_->Load("pinned").ok());
  absl::StatusOr<ModelInfo> other = registry_->Load("other");
  ASSERT_EQ(other.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("in use or pinned"));
  EXPECT_EQ(registry_->Get("pinned")->state, ModelState::kReady);
}

TEST_F(PlacementTest, OtherProcessesMemoryCounts) {
  AddModel("a", 400);
  Make();
  device_.SetForeignBytes(700);
  absl::StatusOr<ModelInfo> a = registry_->Load("a");
  ASSERT_EQ(a.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("reports only 300 free"));
  device_.SetForeignBytes(0);
  EXPECT_TRUE(registry_->Load("a").ok());
}

TEST_F(PlacementTest, HostBudgetDropsOldestCopyAndItReloadsFromDisk) {
  for (const char* name : {"a", "b", "c", "d"}) AddModel(name, 400);
  Make(/*host_budget=*/800);
  // First loads estimate the reserve as large as the weights, so each one
  // evicts every other model: a, b, c pile up in the host tier, and the
  // oldest copy (a) is dropped once they exceed 800 bytes.
  for (const char* name : {"a", "b", "c", "d"}) Use(name);
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kUnloaded);
  EXPECT_EQ(registry_->Get("a")->unloads, 1);
  EXPECT_EQ(registry_->Get("b")->state, ModelState::kHost);
  EXPECT_EQ(registry_->Get("c")->state, ModelState::kHost);
  EXPECT_EQ(registry_->Memory().host_bytes, 800);
  EXPECT_EQ(loader_.loads_of("a"), 1);
  // a comes back from disk, correctly; its measured reserve is remembered, so
  // d stays resident beside it.
  Use("a");
  EXPECT_EQ(loader_.loads_of("a"), 2);
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kReady);
  EXPECT_EQ(registry_->Get("a")->labels.size(), 2u);
  EXPECT_EQ(registry_->Get("d")->state, ModelState::kReady);
  // Swap-ins come from the host tier, never from disk.
  Use("b");
  Use("c");
  EXPECT_EQ(loader_.loads_of("b"), 1);
  EXPECT_EQ(loader_.loads_of("c"), 1);
  EXPECT_LE(registry_->Memory().host_bytes, 800);
}

TEST_F(PlacementTest, FiftyLoadUnloadCyclesReturnToBaseline) {
  AddModel("a", 400);
  AddModel("b", 300);
  Make();
  const int64_t device_baseline = device_.allocated();
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(registry_->Load("a").ok());
    ASSERT_TRUE(registry_->Load("b").ok());
    Use(i % 2 ? "a" : "b");
    ASSERT_TRUE(registry_->Unload("a").ok());
    ASSERT_TRUE(registry_->Unload("b").ok());
  }
  EXPECT_EQ(device_.allocated(), device_baseline);
  const MemorySnapshot m = registry_->Memory();
  EXPECT_EQ(m.reserved, 0);
  EXPECT_EQ(m.host_bytes, 0);
  EXPECT_EQ(registry_->Get("a")->unloads, 50);
}

TEST_F(PlacementTest, RequestPlacesModelOnItsOwn) {
  AddModel("a", 400);
  Make();
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kUnloaded);
  Use("a");
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kReady);
  EXPECT_EQ(Count("load/a"), 1);
}

TEST_F(PlacementTest, CpuModelsNeedNoBudget) {
  AddModel("big-cpu", 5000, "device: DEVICE_CPU");
  Make();
  absl::StatusOr<ModelInfo> info = registry_->Load("big-cpu");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->device, "cpu");
  EXPECT_EQ(registry_->Memory().reserved, 0);
  EXPECT_EQ(device_.allocated(), 0);
}

}  // namespace
}  // namespace bertserve::core
