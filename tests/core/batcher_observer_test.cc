// The batcher calls its observer without holding its lock: an observer that
// blocks (a slow log sink, a metrics registry under contention) delays only
// the thread that called it, and queue depth reports made out of order never
// leave a stale depth standing.
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/batcher.h"
#include "server/core/model_repository.h"
#include "tests/test_util/fake_model.h"

namespace bertserve::core {
namespace {

constexpr int kLabels = 3;
constexpr int64_t kWeights = 1000;
constexpr char kConfig[] =
    "max_sequence_length: 32 batch { max_client_batch_size: 64 max_batch_tokens: 64 "
    "max_queue_delay_us: 1000 }";
// Long enough that a lock held for the whole wait fails the test, short
// enough that such a failure does not stall the suite.
constexpr absl::Duration kWait = absl::Seconds(10);

enum class Event { kTokenLimit, kQueueDepth, kQueued };
enum class Caller { kSubmitter, kExecutor };

// Blocks the first call of one event from one kind of thread until released,
// and records the last queue depth reported per model. Thread-safe.
class BlockingObserver : public BatchObserver {
 public:
  void BlockOnce(Event event, Caller caller, std::thread::id submitter) {
    absl::MutexLock lock(&mu_);
    block_event_ = event;
    block_caller_ = caller;
    submitter_ = submitter;
  }

  void OnBatch(const std::string&, int, int64_t, int64_t, double) override {}
  void OnQueued(const std::string&, double) override { Maybe(Event::kQueued); }
  void OnOom(const std::string&, int64_t, const absl::Status&) override {}
  void OnSplit(const std::string&) override {}
  void OnTokenLimit(const std::string&, int64_t, int) override { Maybe(Event::kTokenLimit); }
  void OnQueueDepth(const std::string& model, int64_t inputs) override {
    {
      absl::MutexLock lock(&mu_);
      depth_[model] = inputs;
      if (inputs == 0 && std::this_thread::get_id() != submitter_ && !drained.HasBeenNotified()) {
        drained.Notify();
      }
    }
    Maybe(Event::kQueueDepth);
  }
  void OnExpired(const std::string&) override {}
  void OnTokenized(const std::string&, double) override {}

  int64_t depth(const std::string& model) const {
    absl::MutexLock lock(&mu_);
    auto it = depth_.find(model);
    return it == depth_.end() ? -1 : it->second;
  }

  absl::Notification entered;  // the blocked call has started
  absl::Notification release;  // lets it return
  absl::Notification drained;  // an executor reported an empty queue

 private:
  void Maybe(Event event) {
    {
      absl::MutexLock lock(&mu_);
      if (blocked_ || !block_event_.has_value() || *block_event_ != event) return;
      const bool on_submitter = std::this_thread::get_id() == submitter_;
      if (on_submitter != (block_caller_ == Caller::kSubmitter)) return;
      blocked_ = true;
    }
    entered.Notify();
    release.WaitForNotification();
  }

  mutable absl::Mutex mu_;
  std::optional<Event> block_event_ ABSL_GUARDED_BY(mu_);
  Caller block_caller_ ABSL_GUARDED_BY(mu_) = Caller::kSubmitter;
  std::thread::id submitter_ ABSL_GUARDED_BY(mu_);
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, int64_t> depth_ ABSL_GUARDED_BY(mu_);
};

struct Call {
  absl::Notification answered;
  absl::StatusOr<BatchResult> result;
};

class BatcherObserverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    device_ = std::make_unique<testing::FakeDevice>(4 * (kWeights + 64));
    loader_ = std::make_unique<testing::FakeLoader>(device_.get());
    repo_.AddModel("m", kConfig);
    loader_->SetNumLabels("m", kLabels);
    loader_->SetWeightBytes("m", kWeights);
    loader_->SetActivationBytesPerToken(1);
    absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo_.root());
    ASSERT_TRUE(r.ok());
    RegistryOptions registry_options;
    registry_options.device = device_.get();
    registry_options.vram_budget = 4 * (kWeights + 64);
    registry_options.host_budget = 1 << 20;
    auto registry = ModelRegistry::Create(*r, loader_.get(), registry_options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Load("m").ok());
    BatcherOptions options;
    options.observer = &observer_;
    batcher_ = std::make_unique<Batcher>(registry_.get(), options);
  }

  static EncodedInput Input(int length) {
    EncodedInput input;
    for (int i = 0; i < length; ++i) {
      input.ids.push_back(5 + i % 4);
      input.type_ids.push_back(0);
    }
    return input;
  }

  // Submits one input of `length` tokens; the answer lands in the result.
  std::unique_ptr<Call> Submit(int length) {
    auto call = std::make_unique<Call>();
    Call* raw = call.get();
    absl::StatusOr<ModelHandle> handle = registry_->Acquire("m");
    EXPECT_TRUE(handle.ok()) << handle.status();
    absl::Status s = batcher_->Submit(*handle, {Input(length)}, absl::InfiniteFuture(),
                                      [raw](absl::StatusOr<BatchResult> result) {
                                        raw->result = std::move(result);
                                        raw->answered.Notify();
                                      });
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) raw->answered.Notify();
    return call;
  }

  testing::TempRepository repo_;
  std::unique_ptr<testing::FakeDevice> device_;
  std::unique_ptr<testing::FakeLoader> loader_;
  std::unique_ptr<ModelRegistry> registry_;
  BlockingObserver observer_;
  std::unique_ptr<Batcher> batcher_;  // declared last: stops first
};

class ObserverOutsideTheLockTest
    : public BatcherObserverTest,
      public ::testing::WithParamInterface<std::tuple<Event, Caller, int>> {};

// While one observer call blocks, other threads use the batcher: its token
// limit can be read, and (unless the blocked call is a depth report, which
// the others' depth reports queue behind) their requests are accepted, and
// answered too when the blocked call is not on the executor.
TEST_P(ObserverOutsideTheLockTest, OthersProceedWhileAnObserverCallBlocks) {
  const Event event = std::get<0>(GetParam());
  const Caller caller = std::get<1>(GetParam());
  const int threads = std::get<2>(GetParam());
  // A submitter's depth report is dropped when the executor has taken the
  // input and reported a newer depth first; with the executor held in an
  // earlier forward, the submitter's report is the newest and is made.
  const bool hold_executor = event == Event::kQueueDepth && caller == Caller::kSubmitter;
  absl::Notification forward_started, forward_release;
  std::unique_ptr<Call> earlier;
  if (hold_executor) {
    loader_->last_model("m")->BlockNextForward(&forward_started, &forward_release);
    earlier = Submit(4);
    EXPECT_TRUE(forward_started.WaitForNotificationWithTimeout(kWait));
  }
  std::unique_ptr<Call> first;
  std::thread submitter([&] {
    observer_.BlockOnce(event, caller, std::this_thread::get_id());
    first = Submit(4);
  });
  // No ASSERT until every thread is joined: a failure must not leave one running.
  EXPECT_TRUE(observer_.entered.WaitForNotificationWithTimeout(kWait));
  forward_release.Notify();

  absl::Notification limit_read;
  std::vector<std::unique_ptr<Call>> others(threads);
  std::vector<absl::Notification> accepted(threads);
  std::vector<std::thread> workers;
  workers.emplace_back([&] {
    EXPECT_EQ(batcher_->TokenLimit("m"), 64);
    limit_read.Notify();
  });
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      others[t] = Submit(2 + t % 8);
      accepted[t].Notify();
    });
  }
  EXPECT_TRUE(limit_read.WaitForNotificationWithTimeout(kWait))
      << "TokenLimit waited for an observer call";
  if (event != Event::kQueueDepth) {
    for (int t = 0; t < threads; ++t) {
      const bool ok = accepted[t].WaitForNotificationWithTimeout(kWait);
      EXPECT_TRUE(ok) << "Submit waited for an observer call";
      if (ok && caller == Caller::kSubmitter) {
        EXPECT_TRUE(others[t]->answered.WaitForNotificationWithTimeout(kWait))
            << "the executor waited for an observer call on a submitting thread";
      }
    }
  }
  observer_.release.Notify();
  for (std::thread& w : workers) w.join();
  submitter.join();
  ASSERT_TRUE(first->answered.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(first->result.ok()) << first->result.status();
  if (earlier != nullptr) others.push_back(std::move(earlier));
  for (const std::unique_ptr<Call>& call : others) {
    ASSERT_TRUE(call->answered.WaitForNotificationWithTimeout(kWait));
    EXPECT_TRUE(call->result.ok()) << call->result.status();
  }
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<Event, Caller, int>>& info) {
  constexpr const char* kEvents[] = {"TokenLimit", "QueueDepth", "Queued"};
  return std::string(kEvents[static_cast<int>(std::get<0>(info.param))]) + "On" +
         (std::get<1>(info.param) == Caller::kSubmitter ? "Submitter" : "Executor") + "With" +
         std::to_string(std::get<2>(info.param)) + "Others";
}

INSTANTIATE_TEST_SUITE_P(
    EveryDeferredCall, ObserverOutsideTheLockTest,
    ::testing::Values(std::make_tuple(Event::kTokenLimit, Caller::kSubmitter, 1),
                      std::make_tuple(Event::kQueueDepth, Caller::kSubmitter, 1),
                      std::make_tuple(Event::kQueueDepth, Caller::kSubmitter, 8),
                      std::make_tuple(Event::kQueued, Caller::kExecutor, 1),
                      std::make_tuple(Event::kQueued, Caller::kExecutor, 8),
                      std::make_tuple(Event::kQueueDepth, Caller::kExecutor, 1),
                      std::make_tuple(Event::kQueueDepth, Caller::kExecutor, 8)),
    ParamName);

// Submit's depth report (1) is held back, behind its token limit report,
// until the executor has taken the input and reported the queue empty (0):
// the late 1 must not overwrite the 0, or a scaler reading the gauge would
// see work that is not there.
TEST_F(BatcherObserverTest, ALateDepthReportNeverOverwritesANewerOne) {
  std::unique_ptr<Call> call;
  std::thread submitter([&] {
    observer_.BlockOnce(Event::kTokenLimit, Caller::kSubmitter, std::this_thread::get_id());
    call = Submit(4);
  });
  // No ASSERT until the submitter is joined: a failure must not leave it running.
  EXPECT_TRUE(observer_.entered.WaitForNotificationWithTimeout(kWait));
  // The executor takes the input once its queue delay is over.
  EXPECT_TRUE(observer_.drained.WaitForNotificationWithTimeout(kWait))
      << "the executor waited for an observer call on a submitting thread";
  observer_.release.Notify();
  submitter.join();
  ASSERT_TRUE(call->answered.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(call->result.ok()) << call->result.status();
  EXPECT_EQ(observer_.depth("m"), 0);
}

}  // namespace
}  // namespace bertserve::core
