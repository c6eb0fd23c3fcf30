// The raw libtorch loop: what the device does with the texts of
// `bertserve-cli bench` when nothing serves them. No gRPC, no batcher, no
// bertserve runtime: torch::jit::load, then forwards back to back on one
// thread, as scripts/bench.sh's reference points.
//
//   one per forward  each text alone, one forward after the other
//   sorted           every text, sorted by length, in batches that fill the
//                    token limit (rows x longest <= --max-batch-tokens): the
//                    ceiling no batching server gets past on this device
//
// Texts are tokenized up front (bertserve's tokenizer), outside the timings.
// --device cuda:N and --dtype fp16|bf16 run the same loops on a GPU, the
// weights converted as bertserve converts them (floating-point tensors only);
// each forward ends when its logits are back in host memory, as a served
// one does. --min-words = --max-words past the truncation length gives
// inputs of exactly --max-sequence-length tokens.
//
// Model FLOPs, for utilisation figures: per token, 2 x the model's matrix
// parameters outside its embeddings (every Linear, a multiply and an add
// per weight), plus 4 x hidden x sequence length per attention layer (Q.K^T
// and the weighted sum of V); attention layers are counted by their "query"
// weights, hidden is the word embeddings' width. --matmul-probe N measures
// what the device does at its best: back-to-back N x N matrix products at
// --dtype, the rate utilisation is taken against.
// With --rounds N the two loops alternate N times and each keeps its fastest
// round, so that a burst of other work on a shared machine does not land on
// one of them only. Prints sequences/s of each, forward times, and the
// process CPU time they took (per text, and per token, which
// scripts/bench.sh sets against a server's CPU time), as one JSON object
// with --json. Figures, not assertions.
//
//   build/bench/forward_bench --model DIR --max-batch-tokens 8192 --texts 512
//
// bench/ is not server/: this file includes libtorch directly on purpose, so
// that the reference carries none of bertserve's own code in its timings.

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <torch/cuda.h>
#include <torch/script.h>

#include "absl/strings/str_format.h"
#include "client/bench_texts.h"
#include "server/core/usable_cores.h"
#include "server/tokenizer/bert_tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "forward_bench: %s\n", what.c_str());
  std::exit(1);
}

double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// The forward arguments this loop fills, in the schema's order.
enum class Arg { kInputIds, kAttentionMask, kTokenTypeIds };

std::vector<Arg> ForwardArgs(torch::jit::Module& module) {
  std::vector<Arg> args;
  const auto& arguments = module.get_method("forward").function().getSchema().arguments();
  for (size_t i = 1; i < arguments.size(); ++i) {  // 0 is self
    const std::string& name = arguments[i].name();
    if (name == "input_ids") {
      args.push_back(Arg::kInputIds);
    } else if (name == "attention_mask") {
      args.push_back(Arg::kAttentionMask);
    } else if (name == "token_type_ids") {
      args.push_back(Arg::kTokenTypeIds);
    } else if (!arguments[i].default_value().has_value()) {
      Die("forward argument " + name + " is not one this bench fills");
    }
  }
  return args;
}

// The first tensor in a forward's result (a tensor, a tuple or list, or a
// dict's first value): the logits.
at::Tensor FirstTensor(const c10::IValue& value) {
  if (value.isTensor()) return value.toTensor();
  if (value.isTuple()) {
    for (const c10::IValue& v : value.toTupleRef().elements()) {
      at::Tensor t = FirstTensor(v);
      if (t.defined()) return t;
    }
  }
  if (value.isList()) {
    for (const c10::IValue& v : value.toListRef()) {
      at::Tensor t = FirstTensor(v);
      if (t.defined()) return t;
    }
  }
  if (value.isGenericDict()) {
    for (const auto& item : value.toGenericDict()) {
      at::Tensor t = FirstTensor(item.value());
      if (t.defined()) return t;
    }
  }
  return at::Tensor();
}

// Runs one forward of `rows` (token ids, [CLS] ... [SEP]) padded to the
// longest on `device`; returns once the logits are in host memory.
void Forward(torch::jit::Module& module, const std::vector<Arg>& args,
             const std::vector<const std::vector<int32_t>*>& rows, int32_t pad_id,
             const c10::Device& device) {
  size_t longest = 0;
  for (const auto* row : rows) longest = std::max(longest, row->size());
  const int64_t n = static_cast<int64_t>(rows.size()), length = static_cast<int64_t>(longest);
  torch::Tensor ids = torch::full({n, length}, pad_id, torch::kLong);
  torch::Tensor mask = torch::zeros({n, length}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t r = 0; r < n; ++r) {
    for (size_t t = 0; t < rows[r]->size(); ++t) {
      ids_a[r][static_cast<int64_t>(t)] = (*rows[r])[t];
      mask_a[r][static_cast<int64_t>(t)] = 1;
    }
  }
  std::vector<c10::IValue> inputs;
  for (const Arg arg : args) {
    switch (arg) {
      case Arg::kInputIds: inputs.emplace_back(ids.to(device)); break;
      case Arg::kAttentionMask: inputs.emplace_back(mask.to(device)); break;
      case Arg::kTokenTypeIds:
        inputs.emplace_back(torch::zeros({n, length}, torch::kLong).to(device));
        break;
    }
  }
  const at::Tensor logits = FirstTensor(module.forward(inputs));
  if (!logits.defined()) Die("the forward returned no tensor");
  // Reading the logits back waits for the device (a CUDA stream included).
  const at::Tensor host = logits.to(c10::kCPU);
  (void)host;
}

struct Run {
  double seconds = 0;      // wall time of the forwards
  double cpu_seconds = 0;  // process CPU time over the same span
  int forwards = 0;
  std::vector<double> forward_seconds;  // each forward's wall time
};

// Runs `batches` (indices into `encoded`) one forward each, timing each.
Run Time(torch::jit::Module& module, const std::vector<Arg>& args,
         const std::vector<std::vector<int32_t>>& encoded,
         const std::vector<std::vector<size_t>>& batches, int32_t pad_id,
         const c10::Device& device) {
  Run run;
  const double cpu0 = ProcessCpuSeconds();
  const Clock::time_point start = Clock::now();
  for (const std::vector<size_t>& batch : batches) {
    std::vector<const std::vector<int32_t>*> rows;
    for (const size_t i : batch) rows.push_back(&encoded[i]);
    const Clock::time_point t0 = Clock::now();
    Forward(module, args, rows, pad_id, device);
    run.forward_seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  run.cpu_seconds = ProcessCpuSeconds() - cpu0;
  run.forwards = static_cast<int>(batches.size());
  return run;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (const double x : v) sum += x;
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

// Model FLOPs of one forward per token, without the attention term, and
// what the attention term needs (see the file comment).
struct FlopModel {
  double matrix_flops_per_token = 0;  // 2 x matrix parameters outside embeddings
  int64_t attention_layers = 0;       // "query" weights
  int64_t hidden = 0;                 // width of the word embeddings
  double PerText(int64_t tokens) const {
    const auto t = static_cast<double>(tokens);
    return t * matrix_flops_per_token +
           4.0 * static_cast<double>(attention_layers) * static_cast<double>(hidden) * t * t;
  }
};

FlopModel CountFlops(const torch::jit::Module& module) {
  FlopModel flops;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    const std::string& name = p.name;
    if (p.value.dim() != 2) continue;
    if (name.find("embedding") != std::string::npos) {
      if (name.find("word_embeddings") != std::string::npos) flops.hidden = p.value.size(1);
      continue;
    }
    flops.matrix_flops_per_token += 2.0 * static_cast<double>(p.value.numel());
    if (name.find("query") != std::string::npos) flops.attention_layers++;
  }
  return flops;
}

// FLOP/s of back-to-back n x n matrix products at `dtype` on `device`, the
// best of a few timed spans of at least 0.2 s each.
double MatmulRate(int64_t n, c10::ScalarType dtype, const c10::Device& device) {
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  const at::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  at::Tensor c = torch::mm(a, b);
  c[0][0].item<double>();  // waits for the device
  double best = 0;
  for (int span = 0; span < 3; ++span) {
    int products = 0;
    const Clock::time_point start = Clock::now();
    double seconds = 0;
    while (seconds < 0.2) {
      for (int i = 0; i < 4; ++i, ++products) c = torch::mm(a, b);
      c[0][0].item<double>();
      seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    best = std::max(best, 2.0 * static_cast<double>(n) * static_cast<double>(n) *
                              static_cast<double>(n) * products / seconds);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  int texts = 256;
  int max_sequence_length = 128;
  int64_t max_batch_tokens = 8192;
  int min_words = 3, max_words = 60;
  uint64_t seed = 1;
  int threads = bertserve::core::UsableCores();
  int rounds = 1;
  std::string device_spec = "cpu", dtype_name = "fp32";
  int64_t matmul_size = 0;
  bool json = false;
  CLI::App app{"forward_bench: the raw libtorch loop, one input per forward and sorted batches"};
  app.add_option("--model", model_dir, "Model directory (model.pt, vocab.txt)")->required();
  app.add_option("--texts", texts, "Texts run each way (the first of bertserve-cli bench's)")
      ->capture_default_str();
  app.add_option("--max-sequence-length", max_sequence_length, "Tokens kept per text")
      ->capture_default_str();
  app.add_option("--max-batch-tokens", max_batch_tokens, "Token limit of a sorted batch")
      ->capture_default_str();
  app.add_option("--min-words", min_words, "As bertserve-cli bench")->capture_default_str();
  app.add_option("--max-words", max_words, "As bertserve-cli bench")->capture_default_str();
  app.add_option("--seed", seed, "As bertserve-cli bench")->capture_default_str();
  app.add_option("--intra-op-threads", threads, "Threads one forward uses (default: usable cores)");
  app.add_option("--rounds", rounds, "Times each loop runs, alternating; the fastest counts")
      ->capture_default_str();
  app.add_option("--device", device_spec, "Where the forwards run: cpu, cuda:N")
      ->capture_default_str();
  app.add_option("--dtype", dtype_name, "Weights' floating-point type: fp32, fp16, bf16")
      ->capture_default_str();
  app.add_option("--matmul-probe", matmul_size,
                 "Also measure N x N matrix products at --dtype on --device (0: not)")
      ->capture_default_str();
  app.add_flag("--json", json, "One JSON object instead of text");
  CLI11_PARSE(app, argc, argv);
  if (texts < 1 || rounds < 1 || max_batch_tokens < max_sequence_length || matmul_size < 0) {
    Die("need --texts >= 1, --rounds >= 1, --max-batch-tokens >= --max-sequence-length "
        "and --matmul-probe >= 0");
  }
  c10::ScalarType dtype = c10::kFloat;
  if (dtype_name == "fp16") {
    dtype = c10::kHalf;
  } else if (dtype_name == "bf16") {
    dtype = c10::kBFloat16;
  } else if (dtype_name != "fp32") {
    Die("--dtype " + dtype_name + ": not fp32, fp16 or bf16");
  }
  std::optional<c10::Device> parsed_device;
  try {
    parsed_device.emplace(device_spec);
  } catch (const std::exception& e) {
    Die("--device " + device_spec + ": not a device (cpu, cuda:N)");
  }
  const c10::Device device = *parsed_device;
  if (device.is_cuda() && !torch::cuda::is_available()) {
    Die("--device " + device_spec + ": this libtorch sees no CUDA device");
  }

  auto tokenizer = bertserve::tokenizer::BertTokenizer::FromVocabFile(
      model_dir + "/vocab.txt", bertserve::tokenizer::NormalizerOptions{});
  if (!tokenizer.ok()) Die(std::string(tokenizer.status().message()));
  std::vector<std::vector<int32_t>> encoded;
  int64_t tokens = 0;
  for (const auto& request :
       bertserve::cli::BenchTexts(min_words, max_words, 1, seed, static_cast<size_t>(texts))) {
    auto e = (*tokenizer)->Encode(request[0], std::nullopt, max_sequence_length, true);
    if (!e.ok()) Die(std::string(e.status().message()));
    tokens += static_cast<int64_t>(e->ids.size());
    encoded.push_back(std::move(e->ids));
  }
  const int32_t pad_id = (*tokenizer)->pad_id();

  at::set_num_threads(threads);
  torch::jit::Module module;
  try {
    module = torch::jit::load(model_dir + "/model.pt", c10::Device(c10::kCPU));
    module.eval();
    // Floating-point tensors only (Module::to(dtype) in libtorch 1.13
    // converts integer buffers too), as bertserve converts them.
    if (dtype != c10::kFloat) {
      for (at::Tensor p : module.parameters(/*recurse=*/true)) {
        if (p.is_floating_point()) p.set_data(p.to(dtype));
      }
      for (at::Tensor b : module.buffers(/*recurse=*/true)) {
        if (b.is_floating_point()) b.set_data(b.to(dtype));
      }
    }
    module.to(device);
  } catch (const std::exception& e) {
    Die(std::string("loading model.pt onto ") + device_spec + " at " + dtype_name + ": " +
        e.what());
  }
  c10::InferenceMode inference;
  const std::vector<Arg> args = ForwardArgs(module);
  const FlopModel flop_model = CountFlops(module);
  double flops = 0;  // model FLOPs of every text once
  for (const auto& e : encoded) flops += flop_model.PerText(static_cast<int64_t>(e.size()));

  std::vector<std::vector<size_t>> alone;
  for (size_t i = 0; i < encoded.size(); ++i) alone.push_back({i});
  std::vector<size_t> by_length(encoded.size());
  for (size_t i = 0; i < by_length.size(); ++i) by_length[i] = i;
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](size_t a, size_t b) { return encoded[a].size() < encoded[b].size(); });
  std::vector<std::vector<size_t>> sorted;
  for (const size_t i : by_length) {
    // Sorted ascending, so this row is the batch's longest.
    if (sorted.empty() || static_cast<int64_t>((sorted.back().size() + 1) * encoded[i].size()) >
                              max_batch_tokens) {
      sorted.emplace_back();
    }
    sorted.back().push_back(i);
  }

  // TorchScript's profiling executor optimizes a graph after its first runs:
  // a few forwards of each kind first, as the server's warm-up does.
  try {
    for (int i = 0; i < 3; ++i) {
      Time(module, args, encoded, {alone[static_cast<size_t>(i) % alone.size()]}, pad_id,
           device);
    }
    Time(module, args, encoded, {sorted.front()}, pad_id, device);
  } catch (const std::exception& e) {
    Die(std::string("forward: ") + e.what());
  }
  Run one, batched;
  for (int round = 0; round < rounds; ++round) {
    const Run a = Time(module, args, encoded, alone, pad_id, device);
    if (round == 0 || a.seconds < one.seconds) one = a;
    const Run b = Time(module, args, encoded, sorted, pad_id, device);
    if (round == 0 || b.seconds < batched.seconds) batched = b;
  }

  double matmul_flops = 0;  // per second
  if (matmul_size > 0) {
    try {
      matmul_flops = MatmulRate(matmul_size, dtype, device);
    } catch (const std::exception& e) {
      Die(std::string("matmul probe: ") + e.what());
    }
  }
  // Model FLOP utilisation of a run: its model FLOPs per second over the
  // probe's rate (0 without a probe).
  auto utilisation = [&](const Run& r) {
    return matmul_flops > 0 ? flops / r.seconds / matmul_flops : 0.0;
  };

  const double n = static_cast<double>(encoded.size());
  if (json) {
    auto run_json = [&](const Run& r) {
      return absl::StrFormat(
          "{\"sequences_per_second\": %.2f, \"forwards\": %d, \"seconds\": %.3f, "
          "\"forward_ms_p50\": %.3f, \"forward_ms_mean\": %.3f, \"forward_ms_max\": %.3f, "
          "\"cpu_per_wall\": %.3f, \"cpu_ms_per_text\": %.4f, \"cpu_us_per_token\": %.3f, "
          "\"model_tflops\": %.4f, \"mfu\": %.4f}",
          n / r.seconds, r.forwards, r.seconds, Median(r.forward_seconds) * 1e3,
          Mean(r.forward_seconds) * 1e3,
          *std::max_element(r.forward_seconds.begin(), r.forward_seconds.end()) * 1e3,
          r.cpu_seconds / r.seconds, r.cpu_seconds / n * 1e3,
          r.cpu_seconds / static_cast<double>(tokens) * 1e6, flops / r.seconds / 1e12,
          utilisation(r));
    };
    printf("{\"model\": \"%s\", \"device\": \"%s\", \"dtype\": \"%s\", \"texts\": %d, "
           "\"tokens_per_text\": %.2f, \"flops_per_text\": %.6g, \"matmul_tflops\": %.4f, "
           "\"matmul_size\": %lld, \"intra_op_threads\": %d, \"max_batch_tokens\": %lld, "
           "\"rounds\": %d, \"one_per_forward\": %s, \"sorted\": %s}\n",
           model_dir.c_str(), device.str().c_str(), dtype_name.c_str(), texts,
           static_cast<double>(tokens) / n, flops / n, matmul_flops / 1e12,
           static_cast<long long>(matmul_size), threads, static_cast<long long>(max_batch_tokens),
           rounds, run_json(one).c_str(), run_json(batched).c_str());
    return 0;
  }
  printf("model %s on %s at %s, %d texts (%.1f tokens each on average, %.3g model FLOPs), "
         "%d intra-op threads\n",
         model_dir.c_str(), device.str().c_str(), dtype_name.c_str(), texts,
         static_cast<double>(tokens) / n, flops / n, threads);
  printf("  one per forward  %8.1f sequences/s   forward p50 %.2f ms   %.2f cores busy\n",
         n / one.seconds, Median(one.forward_seconds) * 1e3, one.cpu_seconds / one.seconds);
  printf("  sorted batches   %8.1f sequences/s   %d forwards at <= %lld tokens, mean %.1f ms   "
         "%.2f cores busy\n",
         n / batched.seconds, batched.forwards, static_cast<long long>(max_batch_tokens),
         Mean(batched.forward_seconds) * 1e3, batched.cpu_seconds / batched.seconds);
  if (matmul_flops > 0) {
    printf("  matmul probe     %8.2f TFLOP/s (%lld x %lld at %s); model FLOP utilisation: "
           "one per forward %.3f, sorted %.3f\n",
           matmul_flops / 1e12, static_cast<long long>(matmul_size),
           static_cast<long long>(matmul_size), dtype_name.c_str(), utilisation(one),
           utilisation(batched));
  }
  return 0;
}
