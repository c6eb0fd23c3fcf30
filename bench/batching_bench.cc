// Dynamic batching vs one request per forward, on a real device (the CPU by
// default) with a real TorchScript model, under concurrent clients. Each client sends
// single-input Classify requests of random length (3 to 60 words) and waits
// for each answer before the next, as an online caller does.
//
//   baseline  every request tokenized on its client's thread and run alone
//             on one device thread (one forward at a time)
//   batched   the same requests through the Classifier and Batcher
//   ceiling   the same inputs, tokenized up front, sorted by length and run
//             back to back in batches at the token limit
//
// Prints requests/s of each, the batched run's ratio to the faster baseline
// (goal >= 3x with 32 clients), the share of its wall time the device spent
// in forwards, and its padding efficiency, real / padded tokens (goal >= 0.8).
// Figures, not assertions.
//
//   build/bench/batching_bench --model build/testdata/models/tt-tuple
//   build-gpu/bench/batching_bench --device cuda:0 --model DIR

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "absl/synchronization/notification.h"
#include "server/core/batcher.h"
#include "server/core/classifier.h"
#include "server/core/model_registry.h"
#include "server/core/model_repository.h"
#include "server/core/usable_cores.h"
#include "server/core/worker_pool.h"
#include "server/torch/cpu_device.h"
#include "server/torch/runtime_info.h"
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
  void OnBatch(const std::string&, int rows, int64_t padded, int64_t real, double seconds) override {
    batches++;
    compute_us += static_cast<int64_t>(seconds * 1e6);
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
  std::atomic<int64_t> compute_us{0}, batches{0}, inputs{0}, padded_tokens{0}, real_tokens{0};
};

// Each client's texts, the same in every run.
std::vector<std::vector<std::string>> ClientTexts(int clients, int per_client) {
  std::vector<std::vector<std::string>> texts(clients);
  for (int c = 0; c < clients; ++c) {
    std::mt19937 rng(100 + c);
    for (int r = 0; r < per_client; ++r) texts[c].push_back(Text(rng));
  }
  return texts;
}

// Runs one thread per client, each sending its texts through `one` in turn;
// seconds.
double Drive(const std::vector<std::vector<std::string>>& texts,
             const std::function<void(const std::string&)>& one) {
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (const std::vector<std::string>& client : texts) {
    threads.emplace_back([&one, &client] {
      for (const std::string& text : client) one(text);
    });
  }
  for (std::thread& t : threads) t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `work` on `thread` and waits for it: the one device thread of the
// baseline and the ceiling.
void RunOn(core::WorkerPool& thread, const std::function<void()>& work) {
  absl::Notification done;
  thread.Submit([&] {
    work();
    done.Notify();
  });
  done.WaitForNotification();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  int clients = 32;
  int per_client = 20;
  int delay_us = 0;
  std::string spec = "cpu";
  int threads = core::UsableCores();
  core::BatcherOptions batching;
  CLI::App app{"batching_bench: dynamic batching vs one request per forward"};
  app.add_option("--model", model_dir, "Model directory (model.pt, vocab.txt)")->required();
  app.add_option("--clients", clients, "Concurrent clients");
  app.add_option("--requests", per_client, "Requests per client");
  app.add_option("--queue-delay-us", delay_us, "The model's max_queue_delay_us");
  app.add_option("--device", spec, "cpu or cuda:N");
  app.add_option("--intra-op-threads", threads,
                 "Threads one forward uses, as bertserve's flag (default: usable cores)");
  app.add_option("--min-padding-efficiency", batching.min_padding_efficiency,
                 "The batcher's padding floor (default 0.8)");
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
  batching.observer = &counts;
  core::Batcher batcher(registry->get(), batching);
  core::Classifier classifier(registry->get(), &batcher, &counts);

  auto request_for = [](const std::string& text) {
    v1::ClassifyRequest request;
    request.set_model("m");
    request.add_inputs()->set_text(text);
    return request;
  };

  // Baseline: tokenize on the client's thread, then run the request alone on
  // one device thread, as a server without batching runs it. (Forwards from
  // 32 client threads would each start their own OpenMP team, a cost no
  // server pays.) Measured with one intra-op thread as well: a forward of one
  // short input can be faster without OpenMP, and the speed-up is taken
  // against the better baseline.
  const std::vector<std::vector<std::string>> texts = ClientTexts(clients, per_client);
  auto encode = [&](const std::string& text) {
    v1::TokenizeRequest tokenize;
    tokenize.set_model("m");
    tokenize.mutable_input()->set_text(text);
    auto tokens = classifier.Tokenize(tokenize);
    if (!tokens.ok()) Die("tokenize", tokens.status());
    return core::EncodedInputOf(*tokens);
  };
  auto run_alone = [&](int intra_op_threads) {
    if (auto set = torchrt::SetIntraOpThreads(intra_op_threads); !set.ok()) {
      Die("--intra-op-threads", set);
    }
    core::WorkerPool device_thread(1);  // new: libtorch reads the setting once per thread
    return Drive(texts, [&](const std::string& text) {
      const core::EncodedInput input = encode(text);
      auto handle = (*registry)->Acquire("m");
      if (!handle.ok()) Die("acquire", handle.status());
      const core::InputBatch batch = core::PadInputs({&input}, /*pad_id=*/0);
      RunOn(device_thread, [&] {
        if (auto logits = (*handle)->model->Forward(batch); !logits.ok()) {
          Die("forward", logits.status());
        }
      });
    });
  };
  const double alone_one_thread = threads > 1 ? run_alone(1) : 0;
  const double alone = run_alone(threads);
  const double best_alone = threads > 1 ? std::min(alone, alone_one_thread) : alone;

  const double batched = Drive(texts, [&](const std::string& text) {
    auto response = classifier.Classify(request_for(text), absl::Now());
    if (!response.ok()) Die("classify", response.status());
  });

  // Ceiling: the same texts tokenized up front, sorted by length and run back
  // to back in batches at the token limit. No batcher gets more out of the
  // device than this.
  std::vector<core::EncodedInput> all;
  for (const std::vector<std::string>& client : texts) {
    for (const std::string& text : client) all.push_back(encode(text));
  }
  std::sort(all.begin(), all.end(), [](const core::EncodedInput& a, const core::EncodedInput& b) {
    return a.ids.size() < b.ids.size();
  });
  const int64_t limit = batcher.TokenLimit("m");
  double sorted_seconds = 0;
  {
    auto handle = (*registry)->Acquire("m");
    if (!handle.ok()) Die("acquire", handle.status());
    core::WorkerPool device_thread(1);
    RunOn(device_thread, [&] {
      const auto start = Clock::now();
      for (size_t first = 0; first < all.size();) {
        std::vector<const core::EncodedInput*> rows;
        while (first + rows.size() < all.size() &&
               static_cast<int64_t>((rows.size() + 1) * all[first + rows.size()].ids.size()) <= limit) {
          rows.push_back(&all[first + rows.size()]);
        }
        if (rows.empty()) rows.push_back(&all[first]);
        first += rows.size();
        if (auto logits = (*handle)->model->Forward(core::PadInputs(rows, 0)); !logits.ok()) {
          Die("forward", logits.status());
        }
      }
      sorted_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    });
  }

  const int total = clients * per_client;
  printf("device %s, %d intra-op threads, model %s, %d clients x %d single-input requests "
         "(3-60 words)\n",
         device->name().c_str(), threads, model_dir.c_str(), clients, per_client);
  printf("  one request per forward  %8.1f requests/s\n", total / alone);
  if (threads > 1) {
    printf("    with 1 intra-op thread %8.1f requests/s\n", total / alone_one_thread);
  }
  printf("  dynamic batching         %8.1f requests/s   %.1f inputs per forward\n",
         total / batched,
         static_cast<double>(counts.inputs) / static_cast<double>(std::max<int64_t>(1, counts.batches)));
  printf("  ceiling                  %8.1f requests/s   (sorted by length, batches at the limit "
         "of %lld tokens, no serving)\n",
         total / sorted_seconds, static_cast<long long>(limit));
  printf("  device busy              %8.2f     (forward time / wall time, batched run)\n",
         static_cast<double>(counts.compute_us) / 1e6 / batched);
  printf("  speed-up                 %8.2f x   (against the better baseline; goal >= 3)\n",
         best_alone / batched);
  printf("  padding efficiency       %8.2f     (real / padded tokens; goal >= 0.8)\n",
         static_cast<double>(counts.real_tokens) /
             static_cast<double>(std::max<int64_t>(1, counts.padded_tokens)));
  std::error_code ignored;
  fs::remove_all(root, ignored);
  return 0;
}
