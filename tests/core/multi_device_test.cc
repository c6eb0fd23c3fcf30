// Several execution devices in one ModelRegistry: the placement policy
// (free budget first, then the smallest idle eviction set, never a held or
// pinned model), pins in config, refusals that name every device's budget,
// and a device lost for good. Fake devices whose capacity the fake models
// really use; fake models compute their logits from their input, so a wrong
// device or a stale copy shows.

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/batcher.h"
#include "server/core/model_registry.h"
#include "tests/test_util/fake_model.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kBudget = 1000;
// A forward costs 1 byte per padded token; warm-up runs at max_batch_tokens,
// so each model's reserve is 16 bytes once measured (until then the registry
// assumes as much as its weights).
constexpr char kConfig[] = "max_sequence_length: 8 batch { max_batch_tokens: 16 }";

class MultiDeviceTest : public ::testing::Test {
 protected:
  MultiDeviceTest()
      : d0_(kBudget, true, "fake:0"), d1_(kBudget, true, "fake:1"), loader_({&d0_, &d1_}) {}

  void Make(int64_t budget1 = kBudget, absl::Duration hold_wait = absl::Milliseconds(200)) {
    absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo_.root());
    ASSERT_TRUE(r.ok());
    loader_.SetActivationBytesPerToken(1);
    RegistryOptions options;
    options.devices = {{&d0_, kBudget}, {&d1_, budget1}};
    options.host_budget = 1 << 30;
    options.hold_wait = hold_wait;
    auto registry = ModelRegistry::Create(*r, &loader_, options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    registry_->AddPlacementListener([this](const PlacementEvent& e) {
      absl::MutexLock lock(&mu_);
      events_.push_back(absl::StrCat(PlacementKindName(e.kind), "/", e.model, "/", e.device, "/",
                                     e.reason, e.ok ? "" : "/error"));
      if (!e.ok) errors_.push_back(e.error);
    });
  }

  void AddModel(const std::string& name, int64_t weights, const std::string& extra = "") {
    repo_.AddModel(name, std::string(kConfig) + " " + extra);
    loader_.SetWeightBytes(name, weights);
  }

  std::string DeviceOf(const std::string& name) {
    absl::StatusOr<ModelInfo> info = registry_->Get(name);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() && info->state == ModelState::kReady ? info->device : "";
  }

  int ResidentOn(const std::string& device) {
    int n = 0;
    for (const ModelInfo& info : registry_->List()) {
      n += info.state == ModelState::kReady && info.device == device;
    }
    return n;
  }

  // One forward through a handle, as a request would; checks the answer.
  void Use(const std::string& name) {
    absl::StatusOr<ModelHandle> handle = registry_->Acquire(name);
    ASSERT_TRUE(handle.ok()) << name << ": " << handle.status();
    InputBatch batch{1, 2, {5, 6}, {1, 1}, {0, 0}};
    absl::StatusOr<Logits> logits = (*handle)->model->Forward(batch);
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_EQ(logits->values, testing::FakeModel::ExpectedRow({5, 6}, {0, 0}, 2));
  }

  std::vector<std::string> Events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  // What the failed events said, in order.
  std::vector<std::string> Errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

  // Waits for an event starting with `prefix` (placements of replicas run in
  // the background); returns it.
  std::string WaitForEvent(const std::string& prefix) {
    absl::MutexLock lock(&mu_);
    std::string found;
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const std::string& e : events_) {
        if (e.rfind(prefix, 0) == 0) {
          found = e;
          return true;
        }
      }
      return false;
    };
    mu_.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(30));
    return found;
  }

  testing::TempRepository repo_;
  testing::FakeDevice d0_, d1_;
  testing::FakeLoader loader_;
  std::unique_ptr<ModelRegistry> registry_;
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

TEST_F(MultiDeviceTest, FreeBudgetFirstThenSmallestIdleEvictionSet) {
  // Four models of 40% of one device: two fit per device once their
  // reserves are measured (a fresh one counts its weights twice).
  for (const char* name : {"a", "b", "c", "d"}) AddModel(name, 400);
  Make();
  ASSERT_TRUE(registry_->Load("a").ok());
  // The device with the most budget left after placing: the empty one.
  ASSERT_TRUE(registry_->Load("b").ok());
  EXPECT_NE(DeviceOf("a"), DeviceOf("b"));
  ASSERT_TRUE(registry_->Load("c").ok());
  ASSERT_TRUE(registry_->Load("d").ok());
  // Round-robin traffic: every answer right, at most two per device, and
  // once all are measured, all four resident, two per device.
  for (int round = 0; round < 3; ++round) {
    for (const char* name : {"a", "b", "c", "d"}) {
      Use(name);
      EXPECT_LE(ResidentOn("fake:0"), 2);
      EXPECT_LE(ResidentOn("fake:1"), 2);
    }
  }
  EXPECT_EQ(ResidentOn("fake:0"), 2);
  EXPECT_EQ(ResidentOn("fake:1"), 2);
  EXPECT_EQ(d0_.allocated(), 800);
  EXPECT_EQ(d1_.allocated(), 800);
  int free_placements = 0;
  for (const std::string& e : Events()) {
    free_placements += e.find("/free") != std::string::npos;
    EXPECT_THAT(e, ::testing::Not(HasSubstr("/error"))) << e;
  }
  EXPECT_GE(free_placements, 4);

  // A fifth: every device full; the least recently used idle model goes.
  AddModel("e", 400);
  Use("b");
  Use("c");
  Use("d");
  const std::string a_device = DeviceOf("a");  // the coldest
  ASSERT_TRUE(registry_->Load("e").ok());
  EXPECT_EQ(registry_->Get("a")->state, ModelState::kHost);
  EXPECT_EQ(DeviceOf("e"), a_device);
  EXPECT_GE(registry_->Get("e")->placed_evict, 1);
  // The other device was left alone.
  EXPECT_EQ(ResidentOn(a_device == "fake:0" ? "fake:1" : "fake:0"), 2);
  Use("a");  // and back
  const MemorySnapshot memory = registry_->Memory();
  ASSERT_EQ(memory.devices.size(), 2u);
  EXPECT_EQ(memory.devices[0].device, "fake:0");
  EXPECT_EQ(memory.devices[1].device, "fake:1");
  EXPECT_EQ(memory.devices[0].resident_models, ResidentOn("fake:0"));
  EXPECT_EQ(memory.devices[1].resident_models, ResidentOn("fake:1"));
  EXPECT_LE(memory.devices[0].resident_models, 2);
  EXPECT_LE(memory.devices[1].resident_models, 2);
  EXPECT_EQ(memory.device, "fake:0");
}

TEST_F(MultiDeviceTest, SmallestEvictionSetWinsOverOlderButLargerOne) {
  AddModel("big", 480);
  AddModel("small1", 200);
  AddModel("small2", 200);
  AddModel("new", 350);
  Make();
  ASSERT_TRUE(registry_->Load("big").ok());     // fake:0
  ASSERT_TRUE(registry_->Load("small1").ok());  // fake:1 (more free)
  ASSERT_TRUE(registry_->Load("small2").ok());  // fake:1 (fake:0 has no room)
  ASSERT_EQ(DeviceOf("big"), "fake:0");
  ASSERT_EQ(DeviceOf("small1"), "fake:1");
  ASSERT_EQ(DeviceOf("small2"), "fake:1");
  // "new" (350, counted twice while fresh) fits nowhere as things are; on
  // fake:1 one small model must go (200 bytes), on fake:0 the big one (480
  // bytes), which is also the least recently used.
  Use("small1");
  Use("small2");
  ASSERT_TRUE(registry_->Load("new").ok());
  EXPECT_EQ(DeviceOf("new"), "fake:1");
  EXPECT_EQ(DeviceOf("big"), "fake:0");
  EXPECT_EQ(registry_->Get("small1")->state, ModelState::kHost);  // the colder small one
  EXPECT_EQ(registry_->Get("new")->placed_evict, 1);
}

TEST_F(MultiDeviceTest, TooLargeForEveryDeviceIsRefusedNamingEachBudget) {
  AddModel("huge", 1200);
  Make();
  absl::StatusOr<ModelInfo> info = registry_->Load("huge");
  ASSERT_EQ(info.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("fake:0 budget 1000 bytes"));
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("fake:1 budget 1000 bytes"));
  EXPECT_EQ(d0_.allocated(), 0);
  EXPECT_EQ(d1_.allocated(), 0);
}

TEST_F(MultiDeviceTest, PinnedModelLandsOnlyOnItsDevices) {
  AddModel("a", 400);
  AddModel("pinned", 400, "devices: [1]");
  AddModel("nowhere", 400, "devices: [2]");
  Make();
  ASSERT_TRUE(registry_->Load("a").ok());
  ASSERT_EQ(DeviceOf("a"), "fake:0");
  // Fake:1 is empty anyway; pin it to fake:1 and fill fake:1 with held models.
  ASSERT_TRUE(registry_->Load("pinned").ok());
  EXPECT_EQ(DeviceOf("pinned"), "fake:1");
  absl::StatusOr<ModelInfo> nowhere = registry_->Load("nowhere");
  ASSERT_EQ(nowhere.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(nowhere.status().message()), HasSubstr("pinned to device 2"));
}

TEST_F(MultiDeviceTest, PinnedModelWaitsForItsFullDeviceNeverLandsElsewhere) {
  AddModel("h1", 300, "devices: [0]");
  AddModel("h2", 300, "devices: [0]");
  AddModel("pinned", 300, "devices: [0]");
  Make();
  // fake:0 full of models held by requests; fake:1 empty.
  absl::StatusOr<ModelHandle> h1 = registry_->Acquire("h1");
  absl::StatusOr<ModelHandle> h2 = registry_->Acquire("h2");
  ASSERT_TRUE(h1.ok() && h2.ok());
  absl::StatusOr<ModelInfo> pinned = registry_->Load("pinned");
  ASSERT_EQ(pinned.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(pinned.status().message()), HasSubstr("held by models in use"));
  EXPECT_EQ(d1_.allocated(), 0);
  // Once a request lets go, its turn ends and the pinned model gets the room.
  h1->reset();
  ASSERT_TRUE(registry_->Load("pinned").ok());
  EXPECT_EQ(DeviceOf("pinned"), "fake:0");
  EXPECT_EQ(d1_.allocated(), 0);
}

TEST_F(MultiDeviceTest, APlacementWaitingForTurnsOnOneDeviceHoldsBackNoneOnAnother) {
  AddModel("h1", 300, "devices: [0]");
  AddModel("h2", 300, "devices: [0]");
  AddModel("waits", 300, "devices: [0]");
  AddModel("other", 300, "devices: [1]");
  // Long enough that a placement queued behind the waiting one would show.
  Make(kBudget, absl::Seconds(60));
  absl::StatusOr<ModelHandle> h1 = registry_->Acquire("h1");
  absl::StatusOr<ModelHandle> h2 = registry_->Acquire("h2");
  ASSERT_TRUE(h1.ok() && h2.ok());
  // fake:0 is full of models that requests hold: "waits" waits for their
  // turn to end.
  absl::Notification placed;
  absl::Status waited;
  registry_->LoadAsync("waits", absl::InfiniteFuture(), [&](absl::StatusOr<ModelInfo> info) {
    waited = info.status();
    placed.Notify();
  });
  // It is waiting once h1 takes no new requests (its turn is ending).
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (registry_->TryAcquire("h1").ok()) {
    ASSERT_LT(absl::Now(), give_up) << "the placement of \"waits\" never started waiting";
    absl::SleepFor(absl::Milliseconds(1));  // a poll interval, not a wait for a condition
  }
  // A placement on fake:1 meanwhile runs on that device's lane, not behind it.
  absl::StatusOr<ModelInfo> other = registry_->Load("other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(DeviceOf("other"), "fake:1");
  EXPECT_FALSE(placed.HasBeenNotified()) << waited;
  // The waiting one gets its turn once the requests let go.
  h1->reset();
  h2->reset();
  ASSERT_TRUE(placed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(waited.ok()) << waited;
  EXPECT_EQ(DeviceOf("waits"), "fake:0");
}

TEST_F(MultiDeviceTest, LostDeviceMovesItsModelsToTheOtherOne) {
  AddModel("a", 400);
  AddModel("b", 400);
  Make();
  ASSERT_TRUE(registry_->Load("a").ok());
  ASSERT_TRUE(registry_->Load("b").ok());
  const std::string lost = DeviceOf("a");
  const std::string other = DeviceOf("b");
  ASSERT_NE(lost, other);
  (lost == "fake:0" ? d0_ : d1_).FailForGood();

  // A request in flight on the lost device fails as device-lost, through the
  // batcher, which tells the registry.
  std::atomic<int> lost_calls{0};
  BatcherOptions options;
  options.on_device_lost = [&](const absl::Status&) { lost_calls++; };
  Batcher batcher(registry_.get(), options);
  absl::StatusOr<ModelHandle> handle = registry_->Acquire("a");
  ASSERT_TRUE(handle.ok());
  absl::Notification answered;
  absl::StatusOr<BatchResult> result;
  EncodedInput input;
  input.ids = {5, 6};
  input.type_ids = {0, 0};
  ASSERT_TRUE(batcher
                  .Submit(*handle, {input}, absl::InfiniteFuture(),
                          [&](absl::StatusOr<BatchResult> r) {
                            result = std::move(r);
                            answered.Notify();
                          })
                  .ok());
  handle->reset();
  answered.WaitForNotification();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(lost));
  EXPECT_EQ(lost_calls.load(), 1);

  // Its model serves from the other device; the other model never moved.
  Use("a");
  EXPECT_EQ(DeviceOf("a"), other);
  EXPECT_EQ(DeviceOf("b"), other);
  EXPECT_EQ(registry_->DevicesServing(), 1);
  const MemorySnapshot memory = registry_->Memory();
  EXPECT_TRUE(memory.devices[lost == "fake:0" ? 0 : 1].lost);
  bool saw_lost_event = false;
  for (const std::string& e : Events()) {
    saw_lost_event |= e.rfind("device_lost/a/" + lost, 0) == 0;
  }
  EXPECT_TRUE(saw_lost_event);

  // Work for the model on the other device is accepted through the batcher.
  absl::StatusOr<ModelHandle> again = registry_->Acquire("a");
  ASSERT_TRUE(again.ok());
  absl::Notification answered_again;
  ASSERT_TRUE(batcher
                  .Submit(*again, {input}, absl::InfiniteFuture(),
                          [&](absl::StatusOr<BatchResult> r) {
                            result = std::move(r);
                            answered_again.Notify();
                          })
                  .ok());
  again->reset();
  answered_again.WaitForNotification();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(lost_calls.load(), 1);
}

TEST_F(MultiDeviceTest, ReplicaOnTheOtherDeviceSharesTheLoadAndGoesFirstWhenRoomIsNeeded) {
  AddModel("hot", 300, "max_replicas: 2");
  AddModel("other", 300, "devices: [1]");
  AddModel("big", 350, "devices: [1]");
  Make();
  ASSERT_TRUE(registry_->Load("hot").ok());
  ASSERT_EQ(DeviceOf("hot"), "fake:0");
  registry_->RequestReplica("hot");
  EXPECT_EQ(WaitForEvent("replicate/hot/"), "replicate/hot/fake:1/free");
  absl::StatusOr<ModelInfo> info = registry_->Get("hot");
  ASSERT_EQ(info->copies.size(), 2u);
  EXPECT_EQ(info->copies[0].device, "fake:0");
  EXPECT_FALSE(info->copies[0].replica);
  EXPECT_EQ(info->copies[1].device, "fake:1");
  EXPECT_TRUE(info->copies[1].replica);
  EXPECT_EQ(d1_.allocated(), 300);
  EXPECT_EQ(registry_->Memory().devices[1].resident_models, 1);

  // Requests go to the copy the fewest hold: two at once use both devices,
  // and each answers right.
  absl::StatusOr<ModelHandle> first = registry_->Acquire("hot");
  absl::StatusOr<ModelHandle> second = registry_->Acquire("hot");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE((*first)->model->device(), (*second)->model->device());
  InputBatch batch{1, 2, {5, 6}, {1, 1}, {0, 0}};
  for (const ModelHandle* h : {&*first, &*second}) {
    absl::StatusOr<Logits> logits = (*h)->model->Forward(batch);
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_EQ(logits->values, testing::FakeModel::ExpectedRow({5, 6}, {0, 0}, 2));
  }
  EXPECT_EQ(registry_->Get("hot")->copies[1].in_use, 1);
  // No more than max_replicas copies.
  registry_->RequestReplica("hot");
  EXPECT_EQ(registry_->Get("hot")->copies.size(), 2u);
  first->reset();
  second->reset();

  // With the queues known, the copy with the fewest queued tokens wins,
  // even over a copy fewer requests hold.
  registry_->SetQueueProbe([](const std::string& model) {
    EXPECT_EQ(model, "hot");
    return absl::flat_hash_map<std::string, QueuedWork>{{"fake:0", {1, 100}}, {"fake:1", {1, 10}}};
  });
  absl::StatusOr<ModelHandle> third = registry_->Acquire("hot");
  absl::StatusOr<ModelHandle> fourth = registry_->Acquire("hot");
  ASSERT_TRUE(third.ok() && fourth.ok());
  EXPECT_EQ((*third)->model->device(), "fake:1");
  EXPECT_EQ((*fourth)->model->device(), "fake:1");
  third->reset();
  fourth->reset();
  registry_->SetQueueProbe(nullptr);

  // Room on fake:1 for a bigger model: the idle replica goes, nothing else.
  ASSERT_TRUE(registry_->Load("other").ok());  // fake:1 beside the replica
  ASSERT_EQ(DeviceOf("other"), "fake:1");
  ASSERT_TRUE(registry_->Load("big").ok());
  EXPECT_EQ(DeviceOf("big"), "fake:1");
  EXPECT_EQ(DeviceOf("other"), "fake:1");
  EXPECT_EQ(registry_->Get("hot")->copies.size(), 1u);
  EXPECT_EQ(DeviceOf("hot"), "fake:0");
  bool replica_evicted = false;
  for (const std::string& e : Events()) replica_evicted |= e == "evict/hot/fake:1/replica";
  EXPECT_TRUE(replica_evicted);
  Use("hot");

  // An unload takes every copy.
  registry_->RequestReplica("hot");  // too soon after the last try: nothing
  ASSERT_TRUE(registry_->Unload("hot").ok());
  EXPECT_TRUE(registry_->Get("hot")->copies.empty());
}

TEST_F(MultiDeviceTest, NoReplicaBeyondMaxReplicasNorInPlaceOfAModelInUse) {
  AddModel("single", 300);  // max_replicas defaults to 1
  AddModel("hot", 300, "max_replicas: 2");
  AddModel("held", 200, "devices: [1]");
  Make(/*budget1=*/500);
  ASSERT_TRUE(registry_->Load("single").ok());
  registry_->RequestReplica("single");  // refused at once: one copy allowed
  EXPECT_EQ(registry_->Get("single")->copies.size(), 1u);
  ASSERT_TRUE(registry_->Load("hot").ok());
  ASSERT_EQ(DeviceOf("hot"), "fake:0");  // fake:1's 500 bytes cannot take it fresh
  // fake:1 could take a replica only by evicting a model a request holds.
  absl::StatusOr<ModelHandle> held = registry_->Acquire("held");
  ASSERT_TRUE(held.ok());
  ASSERT_EQ((*held)->model->device(), "fake:1");
  registry_->RequestReplica("hot");
  EXPECT_EQ(WaitForEvent("replicate/hot/"), "replicate/hot///error");
  EXPECT_EQ(registry_->Get("hot")->copies.size(), 1u);
  EXPECT_EQ(DeviceOf("held"), "fake:1");
  Use("hot");
}

// A replica reads the model's file again. Once that file has changed on disk
// (a new version copied over it), the copy would run other weights under the
// same name: no replica then, and the model keeps serving from its one copy.
TEST_F(MultiDeviceTest, NoReplicaOfAModelWhoseFileChangedSinceItWasRead) {
  AddModel("hot", 300, "max_replicas: 2");
  Make();
  ASSERT_TRUE(registry_->Load("hot").ok());
  const int reads = loader_.loads_of("hot");
  repo_.WriteFile("hot/model.pt", "another version");
  registry_->RequestReplica("hot");
  EXPECT_EQ(WaitForEvent("replicate/hot/"), "replicate/hot///error");
  ASSERT_EQ(Errors().size(), 1u);
  EXPECT_THAT(Errors()[0], HasSubstr("hot/model.pt changed on disk since it was read"));
  EXPECT_THAT(Errors()[0], HasSubstr("until it is loaded again"));
  EXPECT_EQ(loader_.loads_of("hot"), reads);  // not even read
  EXPECT_EQ(registry_->Get("hot")->copies.size(), 1u);
  EXPECT_EQ(d1_.allocated(), 0);
  Use("hot");

  // Loaded again, it reads the new file, and replicas of that are welcome
  // at once (the refusal concerned the last read).
  ASSERT_TRUE(registry_->Unload("hot").ok());
  ASSERT_TRUE(registry_->Load("hot").ok());
  registry_->RequestReplica("hot");
  EXPECT_EQ(WaitForEvent("replicate/hot/fake:1"), "replicate/hot/fake:1/free");
  EXPECT_EQ(registry_->Get("hot")->copies.size(), 2u);
}

// The file may also change while the replica reads it: that copy is dropped.
TEST_F(MultiDeviceTest, AReplicaReadWhileItsFileChangesIsDropped) {
  AddModel("hot", 300, "max_replicas: 2");
  Make();
  ASSERT_TRUE(registry_->Load("hot").ok());
  absl::Notification started, release;
  loader_.BlockLoad("hot", &started, &release);
  registry_->RequestReplica("hot");
  started.WaitForNotification();
  repo_.WriteFile("hot/model.pt", "another version");
  release.Notify();
  EXPECT_EQ(WaitForEvent("replicate/hot/"), "replicate/hot///error");
  ASSERT_EQ(Errors().size(), 1u);
  EXPECT_THAT(Errors()[0], HasSubstr("hot/model.pt changed on disk while it was read"));
  EXPECT_EQ(registry_->Get("hot")->copies.size(), 1u);
  EXPECT_EQ(d1_.allocated(), 0);
  Use("hot");
}

// A replica read holds nothing of the primary: an Unload meanwhile frees the
// primary's device memory at once, and a copy read for a load that is gone
// (loaded again since, perhaps with another config) is dropped.
TEST_F(MultiDeviceTest, AReplicaReadForALoadThatIsGoneIsDroppedAndHoldsNothing) {
  AddModel("hot", 300, "max_replicas: 2");
  Make();
  ASSERT_TRUE(registry_->Load("hot").ok());
  ASSERT_EQ(d0_.allocated(), 300);
  absl::Notification started, release;
  loader_.BlockLoad("hot", &started, &release);
  registry_->RequestReplica("hot");
  started.WaitForNotification();
  ASSERT_TRUE(registry_->Unload("hot").ok());
  EXPECT_EQ(d0_.allocated(), 0);  // nothing kept alive by the read
  ASSERT_TRUE(registry_->Load("hot").ok());
  release.Notify();
  EXPECT_EQ(WaitForEvent("replicate/hot/"), "replicate/hot///error");
  ASSERT_EQ(Errors().size(), 1u);
  EXPECT_THAT(Errors()[0], HasSubstr("\"hot\" was loaded again while a replica was read"));
  EXPECT_EQ(registry_->Get("hot")->copies.size(), 1u);
  EXPECT_EQ(d0_.allocated() + d1_.allocated(), 300);
  Use("hot");
}

TEST_F(MultiDeviceTest, DevicesOfTwoKindsAreRefused) {
  testing::FakeDevice cpu(0, /*has_budget=*/false, "cpu");
  absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo_.root());
  ASSERT_TRUE(r.ok());
  RegistryOptions options;
  options.devices = {{&d0_, kBudget}, {&cpu, 0}};
  auto registry = ModelRegistry::Create(*r, &loader_, options);
  EXPECT_EQ(registry.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bertserve::core
