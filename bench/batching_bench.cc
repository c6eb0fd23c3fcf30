// Dynamic batching vs one request per forward, on the plain CPU device with a
// real TorchScript model, under concurrent clients. Each client sends
// single-input Classify requests of random length (3 to 60 words) and waits
// for each answer before the next, as an online caller does.
//
//   baseline  every request tokenized and run alone (one forward at a time,
//             as one device runs them)
//   batched   the same requests through the Classifier and Batcher
//
// Prints requests/s of both, their ratio (goal >= 3x with 32 clients) and the
// batched run's padding efficiency, real / padded tokens (goal >= 0.8).
// Figures, not assertions.
//
//   build/bench/batching_bench --model build/testdata/models/tt-tuple
//   build-gpu/bench/batching_bench --device cuda:0 --model DIR

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "absl/synchronization/mutex.h"
#include "server/core/batcher.h"
#include "server/core/classifier.h"
#include "server/core/model_registry.h"
#include "server/core/model_repository.h"
#include "server/torch/cpu_device.h"
#include "server/torch/torch_device.h"
#include "server/torch/torch_model.h"

namespace {

namespace fs = std::filesystem;
using namespace bertserve;  // NOLINT: a benchmark's main file
using Clock = std::chrono::steady_clock;

const char* const kWords[] = {"the", "service", "was", "slow", "but", "the", "food",
                              "arrived", "warm", "and", "tasty", "great", "value"};

std::string Text(std::mt19937& rng) {
  const int words = 3 + static_cast<int>(rng() % 58);
  std::string text;
  for (int i = 0; i < words; ++i) {
    if (i > 0) text += ' ';
    text += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
  }
  return text;
}

[[noreturn]] void Die(const std::string& what, const absl::Status& s) {
  fprintf(stderr, "batching_bench: %s: %s\n", what.c_str(), std::string(s.message()).c_str());
  std::exit(1);
}

struct Counts : core::BatchObserver {
  void OnBatch(const std::string&, int rows, int64_t padded, int64_t real, double) override {
    batches++;
    inputs += rows;
    padded_tokens += padded;
    real_tokens += real;
  }
  void OnQueued(const std::string&, double) override {}
  void OnOom(const std::string&, int64_t, const absl::Status&) override {}
  void OnSplit(const std::string&) override {}
  void OnTokenLimit(const std::string&, int64_t, int) override {}
  void OnQueueDepth(const std::string&, int64_t) override {}
  void OnExpired(const std::string&) override {}
  void OnTokenized(const std::string&, double) override {}
  std::atomic<int64_t> batches{0}, inputs{0}, padded_tokens{0}, real_tokens{0};
};

// Runs `clients` threads of `per_client` requests through `one`; seconds.
double Drive(int clients, int per_client, const std::function<void(const std::string&)>& one) {
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(100 + c);
      for (int r = 0; r < per_client; ++r) one(Text(rng));
    });
  }
  for (std::thread& t : threads) t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  int clients = 32;
  int per_client = 20;
  int delay_us = 2000;
  std::string spec = "cpu";
  CLI::App app{"batching_bench: dynamic batching vs one request per forward"};
  app.add_option("--model", model_dir, "Model directory (model.pt, vocab.txt)")->required();
  app.add_option("--clients", clients, "Concurrent clients");
  app.add_option("--requests", per_client, "Requests per client");
  app.add_option("--queue-delay-us", delay_us, "The model's max_queue_delay_us");
  app.add_option("--device", spec, "cpu or cuda:N");
  CLI11_PARSE(app, argc, argv);

  // A repository of one model with a serving-sized token budget.
  const fs::path root = fs::temp_directory_path() / ("batching-bench-" + std::to_string(getpid()));
  fs::create_directories(root / "m");
  for (const char* file : {"model.pt", "vocab.txt"}) {
    fs::copy_file(fs::path(model_dir) / file, root / "m" / file,
                  fs::copy_options::overwrite_existing);
  }
  std::ofstream(root / "m" / "config.pbtxt")
      << "max_sequence_length: 64\n"
         "batch { max_client_batch_size: 1 max_batch_tokens: 2048 max_queue_delay_us: "
      << delay_us << " }\n";

  torchrt::CpuDevice cpu;
  auto made = torchrt::CreateTorchDevice(spec, 0);
  if (!made.ok()) Die("--device " + spec, made.status());
  torchrt::TorchDevice* device = made->get();
  torchrt::TorchModelLoader loader(device, &cpu);
  auto repository = core::ModelRepository::Open(root.string());
  if (!repository.ok()) Die("repository", repository.status());
  core::RegistryOptions options;
  options.device = device;
  options.vram_budget = device->Memory().total_bytes / 10 * 9;
  options.host_budget = int64_t{8} << 30;
  auto registry = core::ModelRegistry::Create(*repository, &loader, options);
  if (!registry.ok()) Die("registry", registry.status());
  if (auto loaded = (*registry)->Load("m"); !loaded.ok()) Die("load", loaded.status());
  Counts counts;
  core::BatcherOptions batching;
  batching.observer = &counts;
  core::Batcher batcher(registry->get(), batching);
  core::Classifier classifier(registry->get(), &batcher, &counts);

  auto request_for = [](const std::string& text) {
    v1::ClassifyRequest request;
    request.set_model("m");
    request.add_inputs()->set_text(text);
    return request;
  };

  // Baseline: tokenize and run each request alone, one forward at a time.
  absl::Mutex one_device;
  const double alone = Drive(clients, per_client, [&](const std::string& text) {
    v1::TokenizeRequest tokenize;
    tokenize.set_model("m");
    tokenize.mutable_input()->set_text(text);
    auto tokens = classifier.Tokenize(tokenize);
    if (!tokens.ok()) Die("tokenize", tokens.status());
    auto handle = (*registry)->Acquire("m");
    if (!handle.ok()) Die("acquire", handle.status());
    const core::EncodedInput input = core::EncodedInputOf(*tokens);
    const core::InputBatch batch = core::PadInputs({&input}, /*pad_id=*/0);
    absl::MutexLock one_at_a_time(&one_device);
    if (auto logits = (*handle)->model->Forward(batch); !logits.ok()) Die("forward", logits.status());
  });

  const double batched = Drive(clients, per_client, [&](const std::string& text) {
    auto response = classifier.Classify(request_for(text), absl::Now());
    if (!response.ok()) Die("classify", response.status());
  });

  const int total = clients * per_client;
  printf("device %s, model %s, %d clients x %d single-input requests (3-60 words)\n",
         device->name().c_str(), model_dir.c_str(), clients, per_client);
  printf("  one request per forward  %8.1f requests/s\n", total / alone);
  printf("  dynamic batching         %8.1f requests/s   %.1f inputs per forward\n",
         total / batched,
         static_cast<double>(counts.inputs) / static_cast<double>(std::max<int64_t>(1, counts.batches)));
  printf("  speed-up                 %8.2f x   (goal >= 3)\n", alone / batched);
  printf("  padding efficiency       %8.2f     (real / padded tokens; goal >= 0.8)\n",
         static_cast<double>(counts.real_tokens) /
             static_cast<double>(std::max<int64_t>(1, counts.padded_tokens)));
  std::error_code ignored;
  fs::remove_all(root, ignored);
  return 0;
}
