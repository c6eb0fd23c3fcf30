#include "server/core/batcher.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/model_repository.h"
#include "tests/test_util/fake_model.h"
#include "tests/test_util/recording_observer.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

constexpr int kLabels = 3;
constexpr int64_t kWeights = 1000;
// A forward costs 1 byte per padded token; warm-up proves 64 tokens.
constexpr char kConfig[] =
    "max_sequence_length: 32 batch { max_client_batch_size: 64 max_batch_tokens: 64 "
    "max_queue_delay_us: 1000 }";

// One submitted request and, once `answered`, its result.
struct Call {
  absl::Notification answered;
  absl::StatusOr<BatchResult> result;
};

class BatcherTest : public ::testing::Test {
 protected:
  void Make(BatcherOptions options = {}, int64_t capacity = kWeights + 64 + kWeights + 64,
            const std::string& config = kConfig) {
    device_ = std::make_unique<testing::FakeDevice>(capacity);
    loader_ = std::make_unique<testing::FakeLoader>(device_.get());
    repo_.AddModel("m", config);
    repo_.AddModel("idle", kConfig);
    loader_->SetNumLabels("m", kLabels);
    loader_->SetNumLabels("idle", kLabels);
    loader_->SetWeightBytes("m", kWeights);
    loader_->SetWeightBytes("idle", kWeights);
    loader_->SetActivationBytesPerToken(1);
    absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo_.root());
    ASSERT_TRUE(r.ok());
    RegistryOptions registry_options;
    registry_options.device = device_.get();
    registry_options.vram_budget = capacity;
    registry_options.host_budget = 1 << 20;
    auto registry = ModelRegistry::Create(*r, loader_.get(), registry_options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Load("m").ok());
    options.observer = &observer_;
    options.on_device_lost = [this](const absl::Status&) { device_lost_calls_++; };
    batcher_ = std::make_unique<Batcher>(registry_.get(), options);
  }

  testing::FakeModel& Model() { return *loader_->last_model("m"); }

  static EncodedInput Input(int length, int32_t first_id = 5) {
    EncodedInput input;
    for (int i = 0; i < length; ++i) {
      input.ids.push_back(first_id + i % 4);
      input.type_ids.push_back(i >= length / 2 ? 1 : 0);
    }
    return input;
  }

  std::unique_ptr<Call> Submit(std::vector<EncodedInput> inputs,
                               absl::Time deadline = absl::InfiniteFuture(),
                               absl::Status* refused = nullptr, const std::string& model = "m") {
    auto call = std::make_unique<Call>();
    Call* raw = call.get();
    absl::StatusOr<ModelHandle> handle = registry_->Acquire(model);
    EXPECT_TRUE(handle.ok()) << handle.status();
    absl::Status s = batcher_->Submit(*handle, std::move(inputs), deadline,
                                      [raw](absl::StatusOr<BatchResult> result) {
                                        raw->result = std::move(result);
                                        raw->answered.Notify();
                                      });
    if (refused != nullptr) *refused = s;
    if (!s.ok()) return nullptr;
    return call;
  }

  static void ExpectRows(const Call& call, const std::vector<EncodedInput>& inputs) {
    ASSERT_TRUE(call.result.ok()) << call.result.status();
    ASSERT_EQ(call.result->rows.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_EQ(call.result->rows[i],
                testing::FakeModel::ExpectedRow(inputs[i].ids, inputs[i].type_ids, kLabels))
          << "input " << i;
    }
  }

  testing::TempRepository repo_;
  std::unique_ptr<testing::FakeDevice> device_;
  std::unique_ptr<testing::FakeLoader> loader_;
  std::unique_ptr<ModelRegistry> registry_;
  testing::RecordingObserver observer_;
  std::atomic<int> device_lost_calls_{0};
  std::unique_ptr<Batcher> batcher_;  // declared last: stops first
};

// The default max_queue_delay_us (0): an idle executor runs a lone input at
// once, and inputs that arrive during a forward all go into the next one.
TEST_F(BatcherTest, WorkConservingByDefault) {
  Make({}, kWeights + 64 + kWeights + 64,
       "max_sequence_length: 32 batch { max_client_batch_size: 64 max_batch_tokens: 64 }");
  absl::Notification started, release;
  Model().BlockNextForward(&started, &release);
  const std::vector<EncodedInput> first = {Input(4)};
  std::unique_ptr<Call> lone = Submit(first);
  started.WaitForNotification();  // a lone input on an idle device runs now
  const int forwards_before = Model().forwards();
  std::vector<std::unique_ptr<Call>> later;
  std::vector<std::vector<EncodedInput>> later_inputs;
  for (int i = 0; i < 3; ++i) {
    later_inputs.push_back({Input(4 + i, 7)});
    later.push_back(Submit(later_inputs.back()));
  }
  release.Notify();
  lone->answered.WaitForNotification();
  ExpectRows(*lone, first);
  for (size_t i = 0; i < later.size(); ++i) {
    later[i]->answered.WaitForNotification();
    ExpectRows(*later[i], later_inputs[i]);
  }
  // The three that came during the first forward shared the next one.
  EXPECT_EQ(Model().forwards() - forwards_before, 1);
}

// Forwards run on the device's executor thread, named after the device, so
// that its CPU (and that of the OpenMP workers it starts, which inherit the
// name) can be told apart from request work's (scripts/bench.sh does).
TEST_F(BatcherTest, ForwardsRunOnTheDevicesNamedExecutorThread) {
  Make();
  const std::vector<EncodedInput> inputs = {Input(4)};
  std::unique_ptr<Call> call = Submit(inputs);
  call->answered.WaitForNotification();
  ExpectRows(*call, inputs);
  EXPECT_EQ(Model().last_forward_thread(), ("exec-" + device_->name()).substr(0, 15));
}

TEST_F(BatcherTest, ConcurrentRequestsShareForwardsAndKeepTheirOrder) {
  Make();
  absl::Notification started, release;
  Model().BlockNextForward(&started, &release);
  const int forwards_before = Model().forwards();
  std::vector<EncodedInput> first = {Input(4)};
  auto blocker = Submit(first);
  started.WaitForNotification();
  // While the device is busy, twelve requests of two inputs queue up.
  std::vector<std::vector<EncodedInput>> inputs;
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 12; ++i) {
    inputs.push_back({Input(3 + i % 4, 5 + i), Input(2, 9)});
    calls.push_back(Submit(inputs.back()));
  }
  release.Notify();
  blocker->answered.WaitForNotification();
  ExpectRows(*blocker, first);
  for (size_t i = 0; i < calls.size(); ++i) {
    calls[i]->answered.WaitForNotification();
    ExpectRows(*calls[i], inputs[i]);
  }
  // 24 inputs of at most 6 tokens, 64 tokens per forward: a handful of
  // forwards, not 24.
  const int forwards = Model().forwards() - forwards_before - 1;
  EXPECT_LE(forwards, 6);
  EXPECT_EQ(observer_.ooms, 0);
}

TEST_F(BatcherTest, OomSplitsLowersTheLimitAndProbesBackUp) {
  BatcherOptions options;
  options.probe_after_successes = 2;
  Make(options);
  // Another process takes all but 40 bytes of what a batch could use: a
  // 64-token forward no longer fits, 32 tokens do.
  const int64_t squeeze = device_->Memory().free_bytes - 40;
  ASSERT_TRUE(device_->Allocate(squeeze).ok());
  absl::Notification started, release;
  Model().BlockNextForward(&started, &release);
  std::vector<EncodedInput> first = {Input(2)};
  auto blocker = Submit(first);
  started.WaitForNotification();
  std::vector<EncodedInput> inputs;
  for (int i = 0; i < 8; ++i) inputs.push_back(Input(8, 5 + i));
  auto call = Submit(inputs);  // 8 x 8 = 64 tokens: one batch, out of memory
  release.Notify();
  call->answered.WaitForNotification();
  ExpectRows(*call, inputs);  // every input answered, exactly as unsplit
  EXPECT_GE(observer_.ooms, 1);
  EXPECT_GE(observer_.splits, 1);
  EXPECT_GE(observer_.lowered, 1);
  EXPECT_LT(batcher_->TokenLimit("m"), 64);

  device_->Free(squeeze);
  // A run of successes raises the limit back to the configured 64.
  for (int i = 0; i < 20 && batcher_->TokenLimit("m") < 64; ++i) {
    std::vector<EncodedInput> more = {Input(4), Input(5)};
    auto c = Submit(more);
    c->answered.WaitForNotification();
    ExpectRows(*c, more);
  }
  EXPECT_EQ(batcher_->TokenLimit("m"), 64);
  EXPECT_GE(observer_.raised, 1);
}

TEST_F(BatcherTest, AnInputThatFitsOnlyAloneGetsTheDeviceByEvictingIdleModels) {
  // Room for both models even while the second's reserve is still the
  // pre-warm-up estimate (its weight bytes).
  Make({}, 3 * kWeights + 64);
  ASSERT_TRUE(registry_->Load("idle").ok());
  ASSERT_EQ(registry_->Get("idle")->state, ModelState::kReady);
  // 20 bytes left while "idle" is resident: a 30-token input needs 30.
  const int64_t squeeze = device_->Memory().free_bytes - 20;
  ASSERT_TRUE(device_->Allocate(squeeze).ok());
  std::vector<EncodedInput> long_input = {Input(30)};
  auto call = Submit(long_input);
  call->answered.WaitForNotification();
  ExpectRows(*call, long_input);
  EXPECT_EQ(registry_->Get("idle")->state, ModelState::kHost);  // evicted to make room
  EXPECT_GE(observer_.ooms, 1);
  // One input's OOM says nothing about batches: the limit stays.
  EXPECT_EQ(batcher_->TokenLimit("m"), 64);
  device_->Free(squeeze);
}

TEST_F(BatcherTest, AnInputThatFitsNowhereFailsAloneAndTheNextSucceeds) {
  Make();
  const int64_t squeeze = device_->Memory().free_bytes - 20;
  ASSERT_TRUE(device_->Allocate(squeeze).ok());
  std::vector<EncodedInput> too_long = {Input(30)};
  std::vector<EncodedInput> fine = {Input(5)};
  auto bad = Submit(too_long);
  bad->answered.WaitForNotification();
  ASSERT_EQ(bad->result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(bad->result.status().message()), HasSubstr("30 tokens"));
  EXPECT_THAT(std::string(bad->result.status().message()), HasSubstr("even alone"));
  auto good = Submit(fine);
  good->answered.WaitForNotification();
  ExpectRows(*good, fine);
  device_->Free(squeeze);
}

TEST_F(BatcherTest, QueueBoundRefusesAtOnceAndLosesNothingAccepted) {
  BatcherOptions options;
  options.max_queued_inputs_per_model = 4;
  Make(options);
  absl::Notification started, release;
  Model().BlockNextForward(&started, &release);
  std::vector<EncodedInput> first = {Input(3)};
  auto blocker = Submit(first);
  started.WaitForNotification();
  std::vector<EncodedInput> two = {Input(3), Input(4)};
  auto a = Submit(two);
  auto b = Submit(two);
  absl::Status refused;
  EXPECT_EQ(Submit(two, absl::InfiniteFuture(), &refused), nullptr);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("queue full"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("retry later"));
  // A request that even an empty queue could not hold is told so, not to
  // retry.
  std::vector<EncodedInput> five = {Input(3), Input(3), Input(3), Input(3), Input(3)};
  EXPECT_EQ(Submit(five, absl::InfiniteFuture(), &refused), nullptr);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("this request alone is too large for model \"m\"'s queue: it adds 5 "
                        "inputs and the bound is 4 (--max-queued-inputs-per-model); split it"));
  EXPECT_THAT(std::string(refused.message()), ::testing::Not(HasSubstr("retry")));
  release.Notify();
  for (Call* c : {blocker.get(), a.get(), b.get()}) c->answered.WaitForNotification();
  ExpectRows(*blocker, first);
  ExpectRows(*a, two);
  ExpectRows(*b, two);
}

// One input more than a token bound holds is not told to split itself.
TEST_F(BatcherTest, AnInputNoQueueCouldHoldIsToldWhatWouldHelp) {
  BatcherOptions options;
  options.max_queued_tokens = 20;
  Make(options);
  absl::Status refused;
  std::vector<EncodedInput> one = {Input(30)};
  EXPECT_EQ(Submit(one, absl::InfiniteFuture(), &refused), nullptr);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("this request alone is too large for the server's queues: it adds 30 "
                        "tokens and the bound is 20 (--max-queued-tokens); raise the bound, or "
                        "send shorter text"));
  std::vector<EncodedInput> fits = {Input(5)};
  auto good = Submit(fits);
  good->answered.WaitForNotification();
  ExpectRows(*good, fits);
}

TEST_F(BatcherTest, ExpiredInputsNeverReachTheForward) {
  Make();
  const int forwards_before = Model().forwards();
  auto late = Submit({Input(4), Input(5)}, absl::Now() - absl::Seconds(1));
  late->answered.WaitForNotification();
  EXPECT_EQ(late->result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Model().forwards(), forwards_before);
  EXPECT_EQ(observer_.expired, 2);
}

TEST_F(BatcherTest, DeviceLostIsReportedOnceAndNewWorkRefused) {
  Make();
  Model().FailNextForward(MarkDeviceLost(absl::InternalError("CUDA error: an illegal memory access")));
  auto call = Submit({Input(4)});
  call->answered.WaitForNotification();
  EXPECT_EQ(call->result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(call->result.status().message()), HasSubstr("illegal memory access"));
  EXPECT_EQ(device_lost_calls_, 1);
  absl::Status refused;
  EXPECT_EQ(Submit({Input(4)}, absl::InfiniteFuture(), &refused), nullptr);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  // An ordinary internal error is not a lost device.
  EXPECT_FALSE(IsDeviceLost(absl::InternalError("shape mismatch")));
}

TEST_F(BatcherTest, PacksSimilarLengthsTogether) {
  Make();
  absl::Notification started, release;
  Model().BlockNextForward(&started, &release);
  auto blocker = Submit({Input(2)});
  started.WaitForNotification();
  // Alternating 30- and 2-token inputs, oldest first; unsorted batches of
  // this mix would pad every 2-token input to 30.
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 8; ++i) calls.push_back(Submit({Input(i % 2 == 0 ? 30 : 2)}));
  const int64_t padded_before = observer_.padded_tokens;
  const int64_t real_before = observer_.real_tokens;
  release.Notify();
  for (auto& c : calls) c->answered.WaitForNotification();
  const double efficiency = static_cast<double>(observer_.real_tokens - real_before) /
                            static_cast<double>(observer_.padded_tokens - padded_before);
  EXPECT_GT(efficiency, 0.9);
}

TEST_F(BatcherTest, AModelPlacedOnAnotherDeviceMovesToThatDevicesExecutorWithAFreshLimit) {
  Make();
  const std::vector<EncodedInput> inputs = {Input(4)};
  auto on_device = Submit(inputs);
  on_device->answered.WaitForNotification();
  ExpectRows(*on_device, inputs);
  // An OOM on the device lowers m's limit there (as in the test above).
  const int64_t squeeze = device_->Memory().free_bytes - 40;
  ASSERT_TRUE(device_->Allocate(squeeze).ok());
  absl::Notification busy, go;
  Model().BlockNextForward(&busy, &go);
  auto first = Submit({Input(2)});
  busy.WaitForNotification();
  std::vector<EncodedInput> eight;
  for (int i = 0; i < 8; ++i) eight.push_back(Input(8, 5 + i));
  auto split = Submit(eight);
  go.Notify();
  split->answered.WaitForNotification();
  ExpectRows(*split, eight);
  first->answered.WaitForNotification();
  ASSERT_LT(batcher_->TokenLimit("m"), 64);
  device_->Free(squeeze);
  // Its config now says CPU: reloaded, m runs on the CPU's executor, not
  // behind the device's, which a blocked forward of another model holds.
  ASSERT_TRUE(registry_->Unload("m").ok());
  repo_.AddModel("m", std::string(kConfig) + " device: DEVICE_CPU");
  ASSERT_TRUE(registry_->Load("m").ok());
  ASSERT_EQ(registry_->Get("m")->device, "cpu");
  ASSERT_TRUE(registry_->Load("idle").ok());
  absl::Notification started, release;
  loader_->last_model("idle")->BlockNextForward(&started, &release);
  auto blocker = Submit({Input(3)}, absl::InfiniteFuture(), nullptr, "idle");
  started.WaitForNotification();
  auto on_cpu = Submit(inputs);
  // A bound on a failure, not a pause: the answer comes at once when right.
  const bool answered = on_cpu->answered.WaitForNotificationWithTimeout(absl::Seconds(30));
  release.Notify();
  blocker->answered.WaitForNotification();
  ASSERT_TRUE(answered) << "m waited behind the device's executor";
  ExpectRows(*on_cpu, inputs);
  // The device's OOMs say nothing of the CPU: the limit starts at the proven 64.
  EXPECT_EQ(batcher_->TokenLimit("m"), 64);
}

}  // namespace
}  // namespace bertserve::core
