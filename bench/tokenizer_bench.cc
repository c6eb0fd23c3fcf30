// Tokenizer throughput on the real bert-base-uncased vocabulary, in MB/s of
// UTF-8 input (Google Benchmark's bytes_per_second), by kind of text:
//   BERTSERVE_TEST_DATA=build/testdata build/bench/tokenizer_bench
//
// Encode* run without truncation (max_length past the text's length) unless
// the name says Truncated. BM_EncodeLongTruncated (about 8 KB cut to 512
// tokens) should cost about what BM_Encode512Tokens costs: the tokenizer stops
// once a single text is past max_length.

#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

#include "server/tokenizer/bert_tokenizer.h"

namespace {

using bertserve::tokenizer::BertTokenizer;

const BertTokenizer& Tokenizer() {
  static const auto* tokenizer = [] {
    const char* dir = std::getenv("BERTSERVE_TEST_DATA");
    const std::string path = std::string(dir ? dir : "build/testdata") + "/vocab.txt";
    auto t = BertTokenizer::FromVocabFile(path, {});
    if (!t.ok()) {
      fprintf(stderr, "%s\n", std::string(t.status().message()).c_str());
      std::exit(1);
    }
    return t->release();
  }();
  return *tokenizer;
}

// `unit` repeated until the text is at least `bytes` long.
std::string Repeat(const std::string& unit, size_t bytes) {
  std::string text;
  while (text.size() < bytes) text += unit;
  return text;
}

const std::string& EnglishText() {
  static const std::string text = Repeat(
      "The committee's report, published on Tuesday, argues that public "
      "transport in mid-sized cities has been underfunded for decades. "
      "Ridership fell by 12% between 2009 and 2019, while operating costs "
      "rose steadily; the authors recommend dedicated bus lanes, simpler "
      "fares and better coordination between regional authorities. Critics "
      "say the proposals are expensive and that \"electric cars will solve "
      "most of these problems anyway.\" Nevertheless, several mayors have "
      "already announced pilot programmes for next spring. ",
      4000);
  return text;
}

const std::string& CjkText() {
  static const std::string text = Repeat(
      "自然语言处理是人工智能的一个重要分支，研究如何让计算机理解人类语言。"
      "東京は日本の首都であり、世界有数の大都市です。"
      "BERT 模型在 2018 年发布后，迅速成为许多任务的基线。"
      "한국어 문장도 함께 섞여 있습니다. ",
      4000);
  return text;
}

const std::string& AccentedText() {
  static const std::string text = Repeat(
      "À l'été, les élèves français préfèrent déjeuner au café près de "
      "l'église. Über die Brücke gingen fünf Mädchen und grüßten höflich. "
      "El niño comió piñata en Señor García's fiesta, ¿verdad? "
      "Tiếng Việt có nhiều dấu: người, được, những, chuyện. "
      "Zażółć gęślą jaźń; Ærøskøbing ligger på Ærø. ",
      4000);
  return text;
}

void EncodeLoop(benchmark::State& state, const std::string& text,
                int max_length) {
  size_t tokens = 0;
  for (auto _ : state) {
    auto e = Tokenizer().Encode(text, std::nullopt, max_length, true);
    benchmark::DoNotOptimize(e);
    tokens = e->ids.size();
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

void BM_EncodeSentence(benchmark::State& state) {
  EncodeLoop(state,
             "The quick brown fox jumped over the lazy dog, and naïve "
             "café-goers watched it happen from across the street.",
             512);
}
BENCHMARK(BM_EncodeSentence);

void BM_EncodeEnglish(benchmark::State& state) {
  EncodeLoop(state, EnglishText(), 1 << 20);
}
BENCHMARK(BM_EncodeEnglish);

void BM_EncodeCjk(benchmark::State& state) {
  EncodeLoop(state, CjkText(), 1 << 20);
}
BENCHMARK(BM_EncodeCjk);

void BM_EncodeAccented(benchmark::State& state) {
  EncodeLoop(state, AccentedText(), 1 << 20);
}
BENCHMARK(BM_EncodeAccented);

std::string LongText() {
  return Repeat("Transformers process tokens in parallel; ", 8000);
}

// The longest prefix of LongText() that is 510 tokens (512 with [CLS] and
// [SEP]): what the truncated encoding keeps.
const std::string& Text512Tokens() {
  static const std::string text = [] {
    const std::string long_text = LongText();
    auto e = Tokenizer().Encode(long_text, std::nullopt, 512, true);
    const int32_t end_char = e->offsets[e->offsets.size() - 2].second;
    // The text is ASCII, so characters are bytes.
    return long_text.substr(0, static_cast<size_t>(end_char));
  }();
  return text;
}

void BM_EncodeLongTruncated(benchmark::State& state) {
  EncodeLoop(state, LongText(), 512);
}
BENCHMARK(BM_EncodeLongTruncated);

void BM_Encode512Tokens(benchmark::State& state) {
  EncodeLoop(state, Text512Tokens(), 512);
}
BENCHMARK(BM_Encode512Tokens);

}  // namespace

BENCHMARK_MAIN();
