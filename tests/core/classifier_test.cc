#include "server/core/classifier.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/synchronization/notification.h"
#include "server/core/scores.h"
#include "tests/test_util/fake_model.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

// Vocabulary of TempRepository::AddModel.
constexpr int kCls = 2, kSep = 3, kHello = 5, kWorld = 6, kBang = 8;

class ClassifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_.AddModel("m",
                   "labels: \"a\" labels: \"b\" labels: \"c\" max_sequence_length: 6 "
                   "batch { max_client_batch_size: 4 max_batch_tokens: 12 }");
    repo_.AddModel("cold");
    loader_.SetNumLabels("m", 3);
    absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo_.root());
    ASSERT_TRUE(r.ok());
    RegistryOptions options;
    options.device = &cpu_;
    auto registry = ModelRegistry::Create(*r, &loader_, options);
    ASSERT_TRUE(registry.ok());
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Load("m").ok());
    batcher_ = std::make_unique<Batcher>(registry_.get(), BatcherOptions{});
    waiters_ = std::make_unique<WorkerPool>(2);
    classifier_ =
        std::make_unique<Classifier>(registry_.get(), batcher_.get(), nullptr, waiters_.get());
  }

  static v1::ClassifyRequest Request(std::vector<std::string> texts) {
    v1::ClassifyRequest request;
    request.set_model("m");
    for (const std::string& t : texts) request.add_inputs()->set_text(t);
    return request;
  }

  testing::TempRepository repo_;
  testing::FakeDevice cpu_{0, /*has_budget=*/false};
  testing::FakeLoader loader_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<WorkerPool> waiters_;
  std::unique_ptr<Classifier> classifier_;
};

void ExpectScores(const v1::Classification& got, const std::vector<int32_t>& ids,
                  const std::vector<int32_t>& types, bool raw) {
  std::vector<float> logits = testing::FakeModel::ExpectedRow(ids, types, 3);
  std::vector<v1::LabelScore> want = ScoreRow(logits.data(), 3, raw, 0, {"a", "b", "c"});
  ASSERT_EQ(got.scores_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(got.scores(i).label(), want[i].label());
    EXPECT_NEAR(got.scores(i).score(), want[i].score(), 1e-6);
  }
  EXPECT_EQ(got.num_tokens(), static_cast<int>(ids.size()));
}

TEST_F(ClassifierTest, PaddedBatchEqualsEachInputAlone) {
  absl::StatusOr<v1::ClassifyResponse> r =
      classifier_->Classify(Request({"hello", "hello world !"}), absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->results_size(), 2);
  ExpectScores(r->results(0), {kCls, kHello, kSep}, {0, 0, 0}, false);
  ExpectScores(r->results(1), {kCls, kHello, kWorld, kBang, kSep}, {0, 0, 0, 0, 0}, false);
  EXPECT_GE(r->timing().tokenize_seconds(), 0);
  EXPECT_GE(r->timing().total_seconds(), r->timing().compute_seconds());
}

TEST_F(ClassifierTest, PairsGetTypeIdsAndRawScores) {
  v1::ClassifyRequest request = Request({"hello"});
  request.mutable_inputs(0)->set_text_pair("world");
  request.set_raw_scores(true);
  absl::StatusOr<v1::ClassifyResponse> r = classifier_->Classify(request, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectScores(r->results(0), {kCls, kHello, kSep, kWorld, kSep}, {0, 0, 0, 1, 1}, true);
}

TEST_F(ClassifierTest, InputsBeyondTokenBudgetRunInSeveralForwards) {
  // 4 inputs of 5 tokens; 12 tokens per forward allows 2 at a time.
  absl::StatusOr<v1::ClassifyResponse> r = classifier_->Classify(
      Request({"hello world !", "hello world !", "hello world !", "hello world !"}), absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->results_size(), 4);
  auto handle = registry_->Acquire("m");
  // One warm-up forward at placement, then ours.
  EXPECT_EQ(static_cast<const testing::FakeModel*>((*handle)->model.get())->forwards(), 1 + 2);
}

TEST_F(ClassifierTest, TruncatesByDefaultAndRefusesWhenAsked) {
  v1::ClassifyRequest request = Request({"hello world hello world hello world"});
  absl::StatusOr<v1::ClassifyResponse> r = classifier_->Classify(request, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->results(0).truncated());
  EXPECT_EQ(r->results(0).num_tokens(), 6);
  request.set_truncate(false);
  r = classifier_->Classify(request, absl::Now());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("inputs[0]"));
}

TEST_F(ClassifierTest, TopKKeepsBest) {
  v1::ClassifyRequest request = Request({"hello"});
  request.set_top_k(1);
  absl::StatusOr<v1::ClassifyResponse> r = classifier_->Classify(request, absl::Now());
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->results(0).scores_size(), 1);
  EXPECT_EQ(r->results(0).scores(0).label(), "c");  // logits grow with label index
}

TEST_F(ClassifierTest, BadRequestsNameTheProblem) {
  struct Case {
    v1::ClassifyRequest request;
    absl::StatusCode code;
    const char* says;
  };
  std::vector<Case> cases;
  cases.push_back({Request({}), absl::StatusCode::kInvalidArgument, "inputs is empty"});
  cases.push_back({Request({"a", "b", "c", "d", "e"}), absl::StatusCode::kInvalidArgument,
                   "at most 4"});
  cases.push_back({Request({"hello", ""}), absl::StatusCode::kInvalidArgument,
                   "inputs[1].text is empty"});
  v1::ClassifyRequest negative = Request({"hello"});
  negative.set_top_k(-1);
  cases.push_back({negative, absl::StatusCode::kInvalidArgument, "top_k"});
  v1::ClassifyRequest absurd = Request({"hello"});
  absurd.set_top_k(1 << 30);
  cases.push_back({absurd, absl::StatusCode::kInvalidArgument, "top_k"});
  v1::ClassifyRequest unknown = Request({"hello"});
  unknown.set_model("nope");
  cases.push_back({unknown, absl::StatusCode::kNotFound, "nope"});
  v1::ClassifyRequest path = Request({"hello"});
  path.set_model("../m");
  cases.push_back({path, absl::StatusCode::kInvalidArgument, "[A-Za-z0-9_.-]"});
  v1::ClassifyRequest bad_utf8 = Request({"hello \xff"});
  cases.push_back({bad_utf8, absl::StatusCode::kInvalidArgument, "UTF-8"});
  for (const Case& c : cases) {
    absl::StatusOr<v1::ClassifyResponse> r = classifier_->Classify(c.request, absl::Now());
    EXPECT_EQ(r.status().code(), c.code) << c.says << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.says));
    // The server still answers a good request after each bad one.
    EXPECT_TRUE(classifier_->Classify(Request({"hello"}), absl::Now()).ok());
  }
}

TEST_F(ClassifierTest, TokenizeReportsOffsetsAndTypes) {
  v1::TokenizeRequest request;
  request.set_model("m");
  request.mutable_input()->set_text("Hello, world");
  absl::StatusOr<v1::TokenizeResponse> r = classifier_->Tokenize(request);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->tokens_size(), 5);
  EXPECT_EQ(r->tokens(1).token(), "hello");
  EXPECT_EQ(r->tokens(1).start(), 0);
  EXPECT_EQ(r->tokens(1).end(), 5);
  EXPECT_EQ(r->tokens(2).token(), ",");
  EXPECT_EQ(r->tokens(3).start(), 7);
  EXPECT_EQ(r->tokens(0).sequence(), -1);
}

TEST_F(ClassifierTest, ARequestWaitingForPlacementDoesNotHoldUpOtherModels) {
  absl::Notification load_started, release_load;
  loader_.BlockLoad("cold", &load_started, &release_load);
  absl::Notification cold_answered;
  absl::StatusOr<v1::ClassifyResponse> cold;
  v1::ClassifyRequest cold_request = Request({"hello"});
  cold_request.set_model("cold");
  // Returns at once: the wait for "cold" happens on the waiters pool.
  classifier_->ClassifyAsync(cold_request, absl::Now(), absl::InfiniteFuture(),
                             [&](absl::StatusOr<v1::ClassifyResponse> r) {
                               cold = std::move(r);
                               cold_answered.Notify();
                             });
  load_started.WaitForNotification();
  // This thread, and the device, serve "m" while "cold" is still loading.
  absl::StatusOr<v1::ClassifyResponse> warm = classifier_->Classify(Request({"hello"}), absl::Now());
  ASSERT_TRUE(warm.ok()) << warm.status();
  EXPECT_FALSE(cold_answered.HasBeenNotified());
  release_load.Notify();
  cold_answered.WaitForNotification();
  ASSERT_TRUE(cold.ok()) << cold.status();
  EXPECT_EQ(cold->results_size(), 1);
}

}  // namespace
}  // namespace bertserve::core
