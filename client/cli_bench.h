#ifndef BERTSERVE_CLIENT_CLI_BENCH_H_
#define BERTSERVE_CLIENT_CLI_BENCH_H_

#include <cstdint>
#include <string>

#include "client/cli_client.h"

namespace bertserve::cli {

// A load run of Classify against one model (`bertserve-cli bench`).
struct BenchOptions {
  std::string model;
  // Closed loop: this many callers, each sending its next request when its
  // last one is answered. Ignored when `rate` is set.
  int concurrency = 1;
  // Open loop: requests per second, sent at Poisson arrival times whatever
  // the answers do (0: closed loop).
  double rate = 0;
  double duration_seconds = 10;  // how long requests are sent, in seconds
  int texts_per_request = 1;
  // Each text has a length in words drawn uniformly from this range.
  int min_words = 3;
  int max_words = 60;
  uint64_t seed = 1;
};

// Sends the load through `client`'s channel (its deadline, TLS and token
// apply to every call) and prints the report to stdout (text, or one JSON
// document with `json`): requests and sequences answered, sequences and
// tokens per second, latency p50/p90/p99/max in milliseconds, errors by gRPC
// code, and the server's own split of the time (tokenize, queue, compute,
// from each answer's timing). A progress line goes to stderr every second of
// runs longer than 5 s. Returns kExitOk when every request was answered,
// kExitServerError when any failed, kExitUsage for bad options.
int RunBench(Client& client, const BenchOptions& options, bool json);

}  // namespace bertserve::cli

#endif  // BERTSERVE_CLIENT_CLI_BENCH_H_
