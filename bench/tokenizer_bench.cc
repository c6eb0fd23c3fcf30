// Tokenizer throughput on the real bert-base-uncased vocabulary.
//   BERTSERVE_TEST_DATA=build/testdata build/bench/tokenizer_bench

#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

#include "server/tokenizer/bert_tokenizer.h"

namespace {

const bertserve::tokenizer::BertTokenizer& Tokenizer() {
  static const auto* tokenizer = [] {
    const char* dir = std::getenv("BERTSERVE_TEST_DATA");
    const std::string path = std::string(dir ? dir : "build/testdata") + "/vocab.txt";
    auto t = bertserve::tokenizer::BertTokenizer::FromVocabFile(path, {});
    if (!t.ok()) {
      fprintf(stderr, "%s\n", std::string(t.status().message()).c_str());
      std::exit(1);
    }
    return t->release();
  }();
  return *tokenizer;
}

void BM_EncodeSentence(benchmark::State& state) {
  const std::string text =
      "The quick brown fox jumped over the lazy dog, and naïve café-goers "
      "watched it happen from across the street.";
  for (auto _ : state) {
    auto e = Tokenizer().Encode(text, std::nullopt, 512, true);
    benchmark::DoNotOptimize(e);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_EncodeSentence);

void BM_EncodeLongTruncated(benchmark::State& state) {
  std::string text;
  while (text.size() < 8000) text += "Transformers process tokens in parallel; ";
  for (auto _ : state) {
    auto e = Tokenizer().Encode(text, std::nullopt, 512, true);
    benchmark::DoNotOptimize(e);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_EncodeLongTruncated);

}  // namespace

BENCHMARK_MAIN();
