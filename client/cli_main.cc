// bertserve-cli: classify, tokenize, manage models and check the health of a
// bertserve server.
//
// Exit codes: 0 success, 1 the server could not be reached or answered with an
// error (its gRPC code name and message go to stderr), 2 bad usage, 3 (health
// only) the server answered but liveness or readiness is not SERVING.
//
// The global options (--server, --json, --timeout, the TLS options and
// --token-file) may come before or after the subcommand (every subcommand falls
// through to the top-level options).

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "client/cli_bench.h"
#include "client/cli_client.h"
#include "client/cli_output.h"

#ifndef PROJECT_VERSION
#error "PROJECT_VERSION must be defined by the build (client/CMakeLists.txt)"
#endif

namespace {

constexpr const char* kFooter =
    "The global options (--server, --json, --timeout, --tls*, --token-file) may also\n"
    "follow the subcommand.\n"
    "Exit codes: 0 success; 1 the server could not be reached or answered with an\n"
    "error (code and message on stderr); 2 bad usage; 3 (health) not SERVING.";

}  // namespace

int main(int argc, char** argv) {
  using namespace bertserve;  // NOLINT: a main function's brevity
  cli::Options options;
  CLI::App app{"bertserve-cli: client for the bertserve inference server"};
  app.name("bertserve-cli");
  // Subcommands inherit these two, so options of `app` are also found after
  // `classify`, `models list` and the rest; the footer is inherited too.
  app.fallthrough();
  app.footer(kFooter);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("bertserve-cli ") + PROJECT_VERSION,
                       "Print the version and exit");
  app.add_option("--server", options.server, "Server address HOST:PORT or unix:PATH")
      ->envname("BERTSERVE_SERVER")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& address) -> std::string {
            if (address.rfind("unix:", 0) == 0 && address.size() > 5) return std::string();
            // Decimal digits only, as gRPC reads them ("070000" is no octal).
            const size_t colon = address.rfind(':');
            const std::string digits =
                colon == std::string::npos ? std::string() : address.substr(colon + 1);
            const bool decimal = !digits.empty() && digits.size() <= 5 &&
                                 digits.find_first_not_of("0123456789") == std::string::npos;
            const int port = decimal ? std::stoi(digits) : 0;
            if (colon == 0 || !decimal || port < 1 || port > 65535) {
              return "\"" + address + "\" is not HOST:PORT (PORT 1-65535) or unix:PATH";
            }
            return std::string();
          },
          "HOST:PORT"));
  app.add_flag("--json", options.json, "Print the response as one JSON document");
  app.add_option("--timeout", options.timeout_seconds, "RPC deadline in seconds")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  app.add_flag("--tls", options.tls,
               "Use TLS, trusting the system's CA roots (implied by the --tls-* options)")
      ->envname("BERTSERVE_TLS");
  app.add_option("--tls-ca", options.tls_ca, "PEM CA bundle that signed the server's certificate")
      ->envname("BERTSERVE_TLS_CA");
  app.add_option("--tls-cert", options.tls_cert,
                 "PEM client certificate, for servers that require one (mutual TLS)")
      ->envname("BERTSERVE_TLS_CERT");
  app.add_option("--tls-key", options.tls_key, "PEM private key of --tls-cert")
      ->envname("BERTSERVE_TLS_KEY");
  app.add_option("--tls-server-name", options.tls_server_name,
                 "Name to check the server's certificate against (default: the --server host)")
      ->envname("BERTSERVE_TLS_SERVER_NAME");
  app.add_option("--token-file", options.token_file,
                 "File holding the bearer token to send (management, or inference when the "
                 "server requires one)")
      ->envname("BERTSERVE_TOKEN_FILE");

  std::string model;
  std::vector<std::string> texts;
  std::vector<std::string> pairs;
  int top_k = 0;
  bool raw_scores = false;
  bool no_truncate = false;
  std::string request_id;

  CLI::App* classify = app.add_subcommand("classify", "Classify one or more texts");
  classify->add_option("-m,--model", model, "Model name")->required();
  classify->add_option("texts", texts, "Texts to classify")->required();
  classify
      ->add_option("--pair", pairs,
                   "Second segment for a text pair; repeat once per text, in order")
      ->allow_extra_args(false);
  classify->add_option("--top-k", top_k, "Scores per input, best first (0: all)");
  classify->add_flag("--raw-scores", raw_scores, "Return logits instead of probabilities");
  classify->add_flag("--no-truncate", no_truncate,
                     "Refuse inputs longer than the model's max length instead of truncating");
  classify->add_option("--request-id", request_id, "Echoed in the response");

  std::string tokenize_text;
  std::string tokenize_pair;
  CLI::App* tokenize = app.add_subcommand("tokenize", "Show the tokens the model would see");
  tokenize->add_option("-m,--model", model, "Model name")->required();
  tokenize->add_option("text", tokenize_text, "Text")->required();
  tokenize->add_option("--pair", tokenize_pair, "Second segment");
  tokenize->add_flag("--no-truncate", no_truncate, "Refuse over-long input");

  std::string name;
  CLI::App* models = app.add_subcommand("models", "List, inspect, load and unload models");
  models->require_subcommand(1);
  CLI::App* list = models->add_subcommand("list", "Every model in the repository");
  CLI::App* get = models->add_subcommand("get", "One model's state");
  get->add_option("name", name, "Model name")->required();
  CLI::App* load = models->add_subcommand("load", "Load a model and wait until READY");
  load->add_option("name", name, "Model name")->required();
  CLI::App* unload = models->add_subcommand("unload", "Unload a model");
  unload->add_option("name", name, "Model name")->required();

  cli::BenchOptions bench_options;
  CLI::App* bench = app.add_subcommand(
      "bench", "Load the server with Classify calls and report throughput and latency");
  bench->add_option("-m,--model", bench_options.model, "Model name")->required();
  CLI::Option* concurrency =
      bench->add_option("-c,--concurrency", bench_options.concurrency,
                        "Closed loop: callers, each sending when its last call is answered "
                        "(one that gets UNAVAILABLE stops)")
          ->capture_default_str();
  bench->add_option("-r,--rate", bench_options.rate,
                    "Open loop: requests per second at Poisson arrival times (instead of "
                    "--concurrency)")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            double rate = 0;
            if (CLI::detail::lexical_cast(value, rate) && rate > 0 && rate <= 1e6) {
              return std::string();
            }
            return "must be a number of requests per second above 0 and at most 1000000, not "
                   "\"" + value + "\"";
          },
          ">0"))
      ->excludes(concurrency);
  bench->add_option("-d,--duration", bench_options.duration_seconds,
                    "Seconds of sending (calls in flight at the end are awaited)")
      ->capture_default_str();
  bench->add_option("--texts", bench_options.texts_per_request, "Texts per request")
      ->capture_default_str();
  bench->add_option("--min-words", bench_options.min_words, "Shortest text, in words")
      ->capture_default_str();
  bench->add_option("--max-words", bench_options.max_words, "Longest text, in words")
      ->capture_default_str();
  bench->add_option("--seed", bench_options.seed, "Seed of the texts and arrival times")
      ->capture_default_str();

  CLI::App* health = app.add_subcommand(
      "health",
      "Check liveness (grpc.health.v1 service \"\") and readiness (service \"readiness\")");
  health->footer(std::string(kFooter) +
                 "\nhealth exits 0 only when both liveness and readiness are SERVING.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print and exit 0; anything else is bad usage.
    return app.exit(e) == 0 ? cli::kExitOk : cli::kExitUsage;
  }
  std::string error;
  std::unique_ptr<cli::Client> connected = cli::Client::Create(options, &error);
  if (connected == nullptr) {
    fprintf(stderr, "error: %s\n", error.c_str());
    return cli::kExitUsage;
  }
  cli::Client& client = *connected;

  if (*classify) {
    if (!pairs.empty() && pairs.size() != texts.size()) {
      fprintf(stderr, "error: %zu --pair values for %zu texts; give one per text or none\n",
              pairs.size(), texts.size());
      return cli::kExitUsage;
    }
    v1::ClassifyRequest request;
    request.set_model(model);
    request.set_top_k(top_k);
    request.set_raw_scores(raw_scores);
    request.set_request_id(request_id);
    if (no_truncate) request.set_truncate(false);
    for (size_t i = 0; i < texts.size(); ++i) {
      v1::TextInput* input = request.add_inputs();
      input->set_text(texts[i]);
      if (!pairs.empty()) input->set_text_pair(pairs[i]);
    }
    return client.Run<v1::ClassifyResponse>(
        [&](grpc::ClientContext* c, v1::ClassifyResponse* r) {
          return client.inference().Classify(c, request, r);
        },
        [&](const v1::ClassifyResponse& r) { return cli::FormatClassify(request, r); });
  }
  if (*tokenize) {
    v1::TokenizeRequest request;
    request.set_model(model);
    request.mutable_input()->set_text(tokenize_text);
    request.mutable_input()->set_text_pair(tokenize_pair);
    if (no_truncate) request.set_truncate(false);
    return client.Run<v1::TokenizeResponse>(
        [&](grpc::ClientContext* c, v1::TokenizeResponse* r) {
          return client.inference().Tokenize(c, request, r);
        },
        cli::FormatTokenize);
  }
  if (*list) {
    return client.Run<v1::ListModelsResponse>(
        [&](grpc::ClientContext* c, v1::ListModelsResponse* r) {
          return client.models().List(c, v1::ListModelsRequest(), r);
        },
        cli::FormatModels);
  }
  if (*get) {
    v1::GetModelRequest request;
    request.set_name(name);
    return client.Run<v1::ModelStatus>(
        [&](grpc::ClientContext* c, v1::ModelStatus* r) {
          return client.models().Get(c, request, r);
        },
        cli::FormatModel);
  }
  if (*load) {
    v1::LoadModelRequest request;
    request.set_name(name);
    return client.Run<v1::ModelStatus>(
        [&](grpc::ClientContext* c, v1::ModelStatus* r) {
          return client.models().Load(c, request, r);
        },
        cli::FormatModel);
  }
  if (*unload) {
    v1::UnloadModelRequest request;
    request.set_name(name);
    return client.Run<v1::ModelStatus>(
        [&](grpc::ClientContext* c, v1::ModelStatus* r) {
          return client.models().Unload(c, request, r);
        },
        cli::FormatModel);
  }
  if (*health) return client.Health();
  if (*bench) return cli::RunBench(client, bench_options, options.json);
  return cli::kExitUsage;
}
