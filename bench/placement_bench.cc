// Swap-in speed. For one model, measures (medians over --repeats):
//   cold load   disk -> host -> device (TorchModelLoader::Load + MoveToDevice)
//   swap-in     host tier -> device (MoveToDevice), what an offloaded model costs
//   evict       device -> host tier (MoveToHost)
//   plain copy  one tensor of the same byte count, host -> device, through the
//               same device (on CUDA: pinned host-to-device bandwidth)
// and prints swap-in / plain copy (goal <= 1.25) and cold load / swap-in
// (goal on GPU >= 20). Figures, not assertions.
//
//   build/bench/placement_bench --device sim --model build/testdata/models/tt-tuple
//   build-gpu/bench/placement_bench --device cuda:0 --model DIR

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "server/core/model_config.h"
#include "server/torch/torch_device.h"
#include "server/torch/torch_model.h"

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

[[noreturn]] void Die(const std::string& what, const absl::Status& s) {
  fprintf(stderr, "placement_bench: %s: %s\n", what.c_str(), std::string(s.message()).c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace bertserve;  // NOLINT: a benchmark's main
  std::string spec = "sim";
  std::string model_dir;
  int repeats = 10;
  CLI::App app{"placement_bench: cold load vs swap-in vs plain copy"};
  app.add_option("--device", spec, "sim, cuda:N");
  app.add_option("--model", model_dir, "Model directory (config.pbtxt, model.pt)")->required();
  app.add_option("--repeats", repeats, "Timed repetitions per figure");
  CLI11_PARSE(app, argc, argv);

  auto device = torchrt::CreateTorchDevice(spec, int64_t{64} << 30);
  if (!device.ok()) Die("--device " + spec, device.status());
  auto cpu = torchrt::CreateTorchDevice("cpu", 0);
  if (!cpu.ok()) Die("cpu device", cpu.status());
  torchrt::TorchModelLoader loader(device->get(), cpu->get());

  core::ModelSource source;
  source.name = "bench";
  source.directory = model_dir;
  auto config = core::ReadModelConfig(model_dir + "/config.pbtxt");
  if (!config.ok()) Die("config", config.status());
  source.config = *config;
  source.model_path = model_dir + "/" + config->model_file();

  std::vector<double> cold, swap_in, evict, copy;
  int64_t bytes = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t = Clock::now();
    auto model = loader.Load(source);
    if (!model.ok()) Die("load", model.status());
    if (absl::Status s = (*model)->MoveToDevice(); !s.ok()) Die("move to device", s);
    cold.push_back(Since(t));
    bytes = (*model)->weight_bytes();
  }
  {
    auto model = loader.Load(source);
    if (!model.ok()) Die("load", model.status());
    for (int r = 0; r < repeats + 1; ++r) {
      auto t = Clock::now();
      if (absl::Status s = (*model)->MoveToDevice(); !s.ok()) Die("swap-in", s);
      if (r > 0) swap_in.push_back(Since(t));  // the first warms caches
      t = Clock::now();
      if (absl::Status s = (*model)->MoveToHost(); !s.ok()) Die("evict", s);
      if (r > 0) evict.push_back(Since(t));
    }
  }
  {
    const at::Tensor host = (*device)->ToHost(torch::ones({bytes}, torch::kUInt8));
    for (int r = 0; r < repeats + 1; ++r) {
      const auto t = Clock::now();
      at::Tensor on_device = (*device)->ToDevice(host);
      if (r > 0) copy.push_back(Since(t));
    }
  }
  const double c = Median(cold), s = Median(swap_in), e = Median(evict), p = Median(copy);
  printf("device %s, model %s, weight bytes %lld (%.1f MiB), %d repeats (medians)\n",
         (*device)->name().c_str(), model_dir.c_str(), static_cast<long long>(bytes),
         static_cast<double>(bytes) / (1 << 20), repeats);
  printf("  cold load (disk -> device)   %10.3f ms\n", c * 1e3);
  printf("  swap-in   (host -> device)   %10.3f ms   %.2f GB/s\n", s * 1e3, bytes / s / 1e9);
  printf("  evict     (device -> host)   %10.3f ms   %.2f GB/s\n", e * 1e3, bytes / e / 1e9);
  printf("  plain copy of the same bytes %10.3f ms   %.2f GB/s\n", p * 1e3, bytes / p / 1e9);
  printf("  swap-in / plain copy         %10.2f x   (goal <= 1.25)\n", s / p);
  printf("  cold load / swap-in          %10.2f x   (goal on GPU >= 20)\n", c / s);
  return 0;
}
