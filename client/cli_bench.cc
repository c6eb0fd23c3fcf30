#include "client/cli_bench.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/bench_texts.h"

namespace bertserve::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What the run saw; guarded by `mu`.
struct Tally {
  std::mutex mu;
  std::condition_variable idle;
  int in_flight = 0;
  int64_t sent = 0, answered = 0, sequences = 0, tokens = 0;
  std::vector<double> latencies;  // seconds, answered requests
  std::map<std::string, int64_t> errors;  // by gRPC code name
  double tokenize = 0, queue = 0, compute = 0;  // summed over answers, seconds
};

// One Classify in flight: owns what gRPC needs until the callback.
struct Call {
  grpc::ClientContext context;
  v1::ClassifyRequest request;
  v1::ClassifyResponse response;
  Clock::time_point sent;
};

// `s` as a JSON string body (the model name is the user's text).
std::string JsonEscaped(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
      continue;
    }
    out += c;
  }
  return out;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

}  // namespace

int RunBench(Client& client, const BenchOptions& o, bool json) {
  if (o.model.empty() || o.concurrency < 1 || o.rate < 0 || o.duration_seconds <= 0 ||
      o.texts_per_request < 1 || o.min_words < 1 || o.max_words < o.min_words) {
    fprintf(stderr, "error: bench needs a model, --concurrency >= 1, --duration > 0, "
                    "--texts >= 1 and 1 <= --min-words <= --max-words\n");
    return kExitUsage;
  }
  // Drawn once, so that generating them costs nothing while the load runs.
  const std::vector<std::vector<std::string>> texts =
      BenchTexts(o.min_words, o.max_words, o.texts_per_request, o.seed, 1024);
  Tally tally;
  const Clock::time_point start = Clock::now();
  const Clock::time_point stop =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(o.duration_seconds));
  std::function<void(int64_t)> send;
  // Records one answer; in the closed loop, the caller goes again.
  auto finish = [&](Call* call, const grpc::Status& status, int64_t n) {
    const double seconds = std::chrono::duration<double>(Clock::now() - call->sent).count();
    bool again = false;
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      if (status.ok()) {
        ++tally.answered;
        tally.sequences += call->response.results_size();
        for (const v1::Classification& r : call->response.results()) tally.tokens += r.num_tokens();
        tally.latencies.push_back(seconds);
        tally.tokenize += call->response.timing().tokenize_seconds();
        tally.queue += call->response.timing().queue_seconds();
        tally.compute += call->response.timing().compute_seconds();
      } else {
        ++tally.errors[CodeName(status.error_code())];
      }
      // A caller whose server is unreachable (or draining) stops rather
      // than hammer it with calls that fail at once.
      again = o.rate == 0 && Clock::now() < stop &&
              status.error_code() != grpc::StatusCode::UNAVAILABLE;
      if (!again) {
        --tally.in_flight;
        tally.idle.notify_all();
      }
    }
    delete call;
    if (again) send(n + o.concurrency);
  };
  send = [&](int64_t n) {
    auto* call = new Call;
    call->request.set_model(o.model);
    for (const std::string& text : texts[n % texts.size()]) {
      call->request.add_inputs()->set_text(text);
    }
    client.Prepare(&call->context);
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      ++tally.sent;
    }
    call->sent = Clock::now();
    client.inference().async()->Classify(
        &call->context, &call->request, &call->response,
        [call, n, &finish](grpc::Status status) { finish(call, status, n); });
  };

  // Closed loop: every caller in flight before the reporter looks, so that
  // "no caller left" means they all stopped.
  if (o.rate == 0) {
    std::lock_guard<std::mutex> lock(tally.mu);
    tally.in_flight = o.concurrency;
  }
  const bool progress = o.duration_seconds > 5;
  std::thread reporter;
  if (progress) {
    reporter = std::thread([&] {
      std::unique_lock<std::mutex> lock(tally.mu);
      // Closed loop: no caller left (each stops at the end, or early on
      // UNAVAILABLE); open loop: the end, and nothing in flight.
      while (!tally.idle.wait_until(lock, Clock::now() + std::chrono::seconds(1), [&] {
        return tally.in_flight == 0 && (o.rate == 0 || Clock::now() >= stop);
      })) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        int64_t errors = 0;
        for (const auto& [code, count] : tally.errors) errors += count;
        fprintf(stderr, "bench: %.0f s, %lld answered, %lld errors, %.1f sequences/s\n", elapsed,
                static_cast<long long>(tally.answered), static_cast<long long>(errors),
                tally.sequences / elapsed);
      }
    });
  }
  if (o.rate == 0) {
    for (int i = 0; i < o.concurrency; ++i) send(i);
  } else {
    // Open loop: arrivals do not wait for answers.
    std::mt19937_64 rng(o.seed + 1);
    std::exponential_distribution<double> gap(o.rate);
    Clock::time_point next = start;
    for (int64_t n = 0;; ++n) {
      next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      if (next >= stop) break;
      std::this_thread::sleep_until(next);
      {
        std::lock_guard<std::mutex> lock(tally.mu);
        ++tally.in_flight;
      }
      send(n);
    }
  }
  {
    std::unique_lock<std::mutex> lock(tally.mu);
    tally.idle.wait(lock, [&] { return tally.in_flight == 0; });
  }
  if (reporter.joinable()) reporter.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> sorted = tally.latencies;
  std::sort(sorted.begin(), sorted.end());
  const double ms = 1000;
  const double p50 = Percentile(sorted, 0.50) * ms, p90 = Percentile(sorted, 0.90) * ms,
               p99 = Percentile(sorted, 0.99) * ms, max = sorted.empty() ? 0 : sorted.back() * ms;
  const double answered = static_cast<double>(std::max<int64_t>(1, tally.answered));
  int64_t failed = 0;
  for (const auto& [code, count] : tally.errors) failed += count;
  const std::string mode = o.rate > 0 ? absl::StrFormat("open loop, %.1f requests/s", o.rate)
                                      : absl::StrFormat("closed loop, %d callers", o.concurrency);
  if (json) {
    std::vector<std::string> errors;
    for (const auto& [code, count] : tally.errors) {
      errors.push_back(absl::StrFormat("\"%s\": %d", code, count));
    }
    std::cout << absl::StrFormat(
        "{\"model\": \"%s\", \"mode\": \"%s\", \"concurrency\": %d, \"rate\": %g, "
        "\"texts_per_request\": %d, \"seconds\": %.3f, \"requests_sent\": %d, "
        "\"requests_answered\": %d, \"sequences\": %d, \"tokens\": %d, "
        "\"sequences_per_second\": %.2f, \"tokens_per_second\": %.1f, "
        "\"latency_ms\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}, "
        "\"server_ms\": {\"tokenize\": %.3f, \"queue\": %.3f, \"compute\": %.3f}, "
        "\"errors\": {%s}}\n",
        JsonEscaped(o.model), mode, o.concurrency, o.rate, o.texts_per_request, elapsed, tally.sent,
        tally.answered, tally.sequences, tally.tokens, tally.sequences / elapsed,
        tally.tokens / elapsed, p50, p90, p99, max, tally.tokenize / answered * ms,
        tally.queue / answered * ms, tally.compute / answered * ms,
        absl::StrJoin(errors, ", "));
  } else {
    std::cout << absl::StrFormat(
        "model %s, %s, %d text(s) per request, %.1f s\n"
        "  %d requests answered of %d sent, %d sequences, %d tokens\n"
        "  %.1f sequences/s, %.0f tokens/s\n"
        "  latency ms: p50 %.2f, p90 %.2f, p99 %.2f, max %.2f\n"
        "  server ms per request (mean): tokenize %.3f, queue %.3f, compute %.3f\n",
        o.model, mode, o.texts_per_request, elapsed, tally.answered, tally.sent,
        tally.sequences, tally.tokens, tally.sequences / elapsed, tally.tokens / elapsed, p50,
        p90, p99, max, tally.tokenize / answered * ms, tally.queue / answered * ms,
        tally.compute / answered * ms);
    for (const auto& [code, count] : tally.errors) {
      std::cout << absl::StrFormat("  errors: %s %d\n", code, count);
    }
  }
  return failed == 0 ? kExitOk : kExitServerError;
}

}  // namespace bertserve::cli
