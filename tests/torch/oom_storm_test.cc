// OOM recovery with real allocations: a TorchScript model on the simulated
// device, the registry, the batcher and the classifier, under a storm of
// concurrent requests while "another process" holds most of the device.
// Every answer must equal the model run on each input alone.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <ATen/ATen.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/synchronization/mutex.h"
#include "server/core/batcher.h"
#include "server/core/classifier.h"
#include "server/core/model_registry.h"
#include "server/core/model_repository.h"
#include "server/torch/cpu_device.h"
#include "server/torch/simulated_device.h"
#include "server/torch/torch_model.h"
#include "tests/test_util/recording_observer.h"
#include "tests/torch/torch_test_util.h"

namespace bertserve::torchrt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kCapacity = int64_t{512} << 20;
constexpr int kClients = 8;
constexpr int kRequestsPerClient = 63;  // 504 requests
const char* const kWords[] = {"hello", "world", "the", "quick", "brown", "fox", "jumps",
                              "over", "lazy", "dog", "serving", "models", "memory", "é"};

// A random text of `words` words.
std::string Text(std::mt19937& rng, int words) {
  std::string text;
  for (int i = 0; i < words; ++i) {
    if (i > 0) text += ' ';
    text += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
  }
  return text;
}

// The process's one simulated device.
TorchDevice* Sim() {
  static TorchDevice* const device = [] {
    auto made = CreateTorchDevice("sim", kCapacity);
    EXPECT_TRUE(made.ok()) << made.status();
    return made.ok() ? made->release() : nullptr;
  }();
  return device;
}

class OomStormTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string source = testing::ModelsDir() + "/tt-tuple";
    ASSERT_TRUE(fs::exists(source)) << "run scripts/make-test-models.sh first";
    root_ = fs::temp_directory_path() / ("bertserve-storm-" + std::to_string(::getpid()));
    fs::create_directories(root_ / "storm");
    for (const char* file : {"model.pt", "vocab.txt"}) {
      fs::copy_file(fs::path(source) / file, root_ / "storm" / file,
                    fs::copy_options::overwrite_existing);
    }
    std::ofstream(root_ / "storm" / "config.pbtxt")
        << "labels: \"a\" labels: \"b\" labels: \"c\" max_sequence_length: 64\n"
           "batch { max_client_batch_size: 16 max_batch_tokens: 2048 max_queue_delay_us: 2000 }\n";

    sim_ = Sim();
    ASSERT_NE(sim_, nullptr);
    device_loader_ = std::make_unique<TorchModelLoader>(sim_, &cpu_);
    auto repository = core::ModelRepository::Open(root_.string());
    ASSERT_TRUE(repository.ok());
    core::RegistryOptions options;
    options.device = sim_;
    options.vram_budget = kCapacity;
    options.host_budget = kCapacity;
    auto registry = core::ModelRegistry::Create(*repository, device_loader_.get(), options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Load("storm").ok());

    core::BatcherOptions batching;
    batching.observer = &observer_;
    batching.probe_after_successes = 8;
    batcher_ = std::make_unique<core::Batcher>(registry_.get(), batching);
    classifier_ = std::make_unique<core::Classifier>(registry_.get(), batcher_.get());

    // The reference: the same file on the plain CPU, one input per forward.
    TorchModelLoader cpu_loader(&cpu_, &cpu_);
    core::ModelSource ref_source;
    ref_source.name = "storm";
    ref_source.directory = (root_ / "storm").string();
    ref_source.model_path = (root_ / "storm" / "model.pt").string();
    auto reference = cpu_loader.Load(ref_source);
    ASSERT_TRUE(reference.ok()) << reference.status();
    reference_ = *std::move(reference);
  }

  void TearDown() override {
    classifier_.reset();
    batcher_.reset();
    registry_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // Logits of `text` run alone on the CPU reference.
  std::vector<float> Reference(const std::string& text) {
    v1::TokenizeRequest request;
    request.set_model("storm");
    request.mutable_input()->set_text(text);
    auto tokens = classifier_->Tokenize(request);
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    const core::EncodedInput input = core::EncodedInputOf(*tokens);
    const core::InputBatch batch = core::PadInputs({&input}, /*pad_id=*/0);
    absl::MutexLock lock(&reference_mu_);
    auto logits = reference_->Forward(batch);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits->values;
  }

  // Holds all of the simulated device but `free_bytes`, as another process would.
  at::Tensor Squeeze(int64_t free_bytes) {
    const int64_t take = sim_->Memory().free_bytes - free_bytes;
    auto scope = sim_->Enter();
    return at::empty({take}, at::kByte);
  }

  v1::ClassifyRequest Request(const std::vector<std::string>& texts) {
    v1::ClassifyRequest request;
    request.set_model("storm");
    request.set_raw_scores(true);
    for (const std::string& t : texts) request.add_inputs()->set_text(t);
    return request;
  }

  fs::path root_;
  CpuDevice cpu_;
  TorchDevice* sim_ = nullptr;
  std::unique_ptr<TorchModelLoader> device_loader_;
  std::unique_ptr<core::ModelRegistry> registry_;
  bertserve::testing::RecordingObserver observer_;
  std::unique_ptr<core::Batcher> batcher_;
  std::unique_ptr<core::Classifier> classifier_;
  absl::Mutex reference_mu_;
  std::unique_ptr<core::Model> reference_;
};

TEST_F(OomStormTest, EveryRequestAnsweredExactlyWhileBatchesRunOutOfMemory) {
  const core::ModelInfo info = *registry_->Get("storm");
  ASSERT_TRUE(info.reserve_measured);
  ASSERT_EQ(info.batch_token_limit, 2048);  // warm-up proved it with the device free
  // Room for about a quarter of a full batch's activations.
  at::Tensor squeeze = Squeeze(info.activation_reserve / 4);

  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  std::atomic<int> wrong{0};
  absl::Mutex failures_mu;
  std::vector<std::string> failures;
  double worst = 0;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(1234 + c);
      for (int r = 0; r < kRequestsPerClient; ++r) {
        std::vector<std::string> texts;
        const int inputs = 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < inputs; ++i) texts.push_back(Text(rng, 1 + rng() % 50));
        auto response = classifier_->Classify(Request(texts), absl::Now());
        if (!response.ok()) {
          absl::MutexLock lock(&failures_mu);
          failures.push_back(std::string(response.status().message()));
          continue;
        }
        answered++;
        for (int i = 0; i < inputs; ++i) {
          const std::vector<float> want = Reference(texts[i]);
          const v1::Classification& got = response->results(i);
          for (const v1::LabelScore& s : got.scores()) {
            const double diff = std::abs(s.score() - want[s.index()]);
            absl::MutexLock lock(&failures_mu);
            worst = std::max(worst, diff);
            if (diff > 1e-5) wrong++;
          }
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_THAT(failures, ::testing::IsEmpty());
  EXPECT_EQ(answered, kClients * kRequestsPerClient);
  EXPECT_EQ(wrong, 0) << "worst difference " << worst;
  EXPECT_GT(observer_.ooms, 0);
  EXPECT_GT(observer_.splits, 0);
  EXPECT_GT(observer_.lowered, 0);  // the limit fell (it may have risen again since)
  std::printf("storm: %d OOMs, %d splits, limit now %lld tokens, worst |diff| %.2g\n",
              observer_.ooms.load(), observer_.splits.load(),
              static_cast<long long>(batcher_->TokenLimit("storm")), worst);

  // The other process leaves: full batches succeed and the limit climbs back.
  squeeze.reset();
  std::mt19937 rng(99);
  for (int r = 0; r < 200 && observer_.raised == 0; ++r) {
    std::vector<std::string> texts;
    for (int i = 0; i < 16; ++i) texts.push_back(Text(rng, 40));
    auto response = classifier_->Classify(Request(texts), absl::Now());
    ASSERT_TRUE(response.ok()) << response.status();
  }
  EXPECT_GT(observer_.raised, 0);
}

TEST_F(OomStormTest, AnInputTooLongForTheDeviceFailsAloneAndTheNextSucceeds) {
  const core::ModelInfo info = *registry_->Get("storm");
  // Less room than one 64-token input needs, more than a 4-token one.
  std::mt19937 rng(7);
  const std::string long_text = Text(rng, 60);
  at::Tensor squeeze = Squeeze(info.activation_reserve / 64);
  auto bad = classifier_->Classify(Request({long_text}), absl::Now());
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kResourceExhausted) << bad.status();
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("even alone"));
  auto good = classifier_->Classify(Request({"hello"}), absl::Now());
  ASSERT_TRUE(good.ok()) << good.status();
  squeeze.reset();
  auto again = classifier_->Classify(Request({long_text}), absl::Now());
  EXPECT_TRUE(again.ok()) << again.status();
}

}  // namespace
}  // namespace bertserve::torchrt
