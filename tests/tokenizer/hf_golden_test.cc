// Holds BertTokenizer to what Hugging Face `tokenizers` (Rust) produced for
// the cases in testdata/hf_golden.json (made by testdata/make_hf_golden.js):
// ids, tokens, offsets and type ids, over several normalizer settings, the
// real bert-base-uncased vocab and the small upstream test vocab.
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/tokenizer/bert_tokenizer.h"
#include "tests/tokenizer/tokenizer_test_data.h"

namespace bertserve::tokenizer {
namespace {

using Json = nlohmann::json;

std::string GoldenPath() {
  const char* source = std::getenv("BERTSERVE_SOURCE_DIR");
  return std::string(source == nullptr ? "." : source) +
         "/tests/tokenizer/testdata/hf_golden.json";
}

NormalizerOptions OptionsOf(const Json& config) {
  NormalizerOptions options;
  options.clean_text = config.at("clean_text").get<bool>();
  options.handle_chinese_chars = config.at("handle_chinese_chars").get<bool>();
  options.lowercase = config.at("lowercase").get<bool>();
  if (!config.at("strip_accents").is_null()) {
    options.strip_accents = config.at("strip_accents").get<bool>();
  }
  return options;
}

TEST(HfGoldenTest, MatchesHuggingFaceTokenizers) {
  const std::string problem = testing::RealVocabProblem();
  ASSERT_TRUE(problem.empty()) << problem;
  std::ifstream in(GoldenPath());
  ASSERT_TRUE(in) << "cannot open " << GoldenPath()
                  << " (run through ctest, which sets BERTSERVE_SOURCE_DIR)";
  std::stringstream contents;
  contents << in.rdbuf();
  const Json golden = Json::parse(contents.str());

  std::map<std::string, std::unique_ptr<BertTokenizer>> tokenizers;
  for (const auto& [name, config] : golden.at("configs").items()) {
    absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
        config.at("vocab") == "real"
            ? BertTokenizer::FromVocabFile(testing::RealVocabPath(),
                                           OptionsOf(config))
            : BertTokenizer::FromVocab(
                  golden.at("small_vocab").get<std::vector<std::string>>(),
                  OptionsOf(config));
    ASSERT_TRUE(tokenizer.ok()) << name << ": " << tokenizer.status();
    tokenizers[name] = *std::move(tokenizer);
  }

  int checked = 0;
  for (const Json& c : golden.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    std::optional<std::string> pair;
    if (!c.at("pair").is_null()) pair = c.at("pair").get<std::string>();
    const int max_length =
        c.at("max_length").is_null() ? 100000 : c.at("max_length").get<int>();
    SCOPED_TRACE(::testing::Message()
                 << "config " << c.at("config").get<std::string>() << ", text "
                 << c.at("text").dump() << ", pair " << c.at("pair").dump()
                 << ", max_length " << c.at("max_length").dump());
    const BertTokenizer& tokenizer = *tokenizers.at(c.at("config"));
    absl::StatusOr<Encoding> e = tokenizer.Encode(
        text, pair ? std::optional<std::string_view>(*pair) : std::nullopt,
        max_length, /*truncate=*/true);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->tokens, c.at("tokens").get<std::vector<std::string>>());
    EXPECT_EQ(e->ids, c.at("ids").get<std::vector<int32_t>>());
    EXPECT_EQ(e->type_ids, c.at("type_ids").get<std::vector<int32_t>>());
    std::vector<std::pair<int32_t, int32_t>> offsets;
    for (const Json& o : c.at("offsets"))
      offsets.emplace_back(o.at(0), o.at(1));
    EXPECT_EQ(e->offsets, offsets);
    ++checked;
  }
  EXPECT_GT(checked, 600);
}

}  // namespace
}  // namespace bertserve::tokenizer
