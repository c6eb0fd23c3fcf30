// Differential test against Hugging Face `tokenizers` (Rust) on seeded random
// multi-script text: hf/hf_random_cases.js writes the texts and what Hugging
// Face makes of them (ids, tokens, offsets, type ids, whether it truncated),
// CTest runs it first (fixture hf_random_cases), and this test holds
// BertTokenizer to every case. $BERTSERVE_HF_RANDOM_CASES names another case
// file, e.g. a bigger one made by hand with a different seed.
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "server/tokenizer/bert_tokenizer.h"
#include "server/tokenizer/unicode.h"
#include "tests/tokenizer/tokenizer_test_data.h"

namespace bertserve::tokenizer {
namespace {

using Json = nlohmann::json;

std::string CasesPath() {
  if (const char* path = std::getenv("BERTSERVE_HF_RANDOM_CASES")) return path;
  const char* dir = std::getenv("BERTSERVE_TEST_DATA");
  return std::string(dir == nullptr ? "." : dir) + "/hf_random_cases.json";
}

// "U+0041 U+0301 ...": the JSON dump of a text hides format characters.
std::string CodePoints(const std::string& text) {
  std::string out;
  absl::StatusOr<std::u32string> chars = unicode::DecodeUtf8(text, "text");
  if (!chars.ok()) return chars.status().ToString();
  for (char32_t c : *chars) {
    out += absl::StrFormat("%sU+%04X", out.empty() ? "" : " ",
                           static_cast<uint32_t>(c));
  }
  return out;
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

TEST(HfRandomTest, MatchesHuggingFaceOnRandomText) {
  const std::string problem = testing::RealVocabProblem();
  ASSERT_TRUE(problem.empty()) << problem;
  std::ifstream in(CasesPath());
  ASSERT_TRUE(in) << "cannot open " << CasesPath()
                  << " (run through ctest, whose fixture hf_random_cases "
                     "makes it with hf/hf_random_cases.js)";
  std::stringstream contents;
  contents << in.rdbuf();
  const Json cases = Json::parse(contents.str());

  std::map<std::string, std::unique_ptr<BertTokenizer>> tokenizers;
  for (const auto& [name, config] : cases.at("configs").items()) {
    absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
        config.at("vocab") == "real"
            ? BertTokenizer::FromVocabFile(testing::RealVocabPath(),
                                           OptionsOf(config))
            : BertTokenizer::FromVocab(
                  cases.at("small_vocab").get<std::vector<std::string>>(),
                  OptionsOf(config));
    ASSERT_TRUE(tokenizer.ok()) << name << ": " << tokenizer.status();
    tokenizers[name] = *std::move(tokenizer);
  }

  int checked = 0;
  int failed = 0;
  for (const Json& c : cases.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    std::optional<std::string> pair;
    if (!c.at("pair").is_null()) pair = c.at("pair").get<std::string>();
    const int max_length =
        c.at("max_length").is_null() ? 100000 : c.at("max_length").get<int>();
    const BertTokenizer& tokenizer = *tokenizers.at(c.at("config"));
    absl::StatusOr<Encoding> e = tokenizer.Encode(
        text, pair ? std::optional<std::string_view>(*pair) : std::nullopt,
        max_length, /*truncate=*/true);
    std::vector<std::pair<int32_t, int32_t>> offsets;
    for (const Json& o : c.at("offsets"))
      offsets.emplace_back(o.at(0), o.at(1));
    const bool same =
        e.ok() && e->ids == c.at("ids").get<std::vector<int32_t>>() &&
        e->tokens == c.at("tokens").get<std::vector<std::string>>() &&
        e->type_ids == c.at("type_ids").get<std::vector<int32_t>>() &&
        e->offsets == offsets && e->truncated == c.at("truncated").get<bool>();
    ++checked;
    if (same) continue;
    // The first few differences in full; the count says how many there are.
    if (++failed > 10) continue;
    std::ostringstream ours;
    if (!e.ok()) {
      ours << e.status();
    } else {
      Json j;
      j["ids"] = e->ids;
      j["tokens"] = e->tokens;
      j["offsets"] = e->offsets;
      j["type_ids"] = e->type_ids;
      j["truncated"] = e->truncated;
      ours << j.dump();
    }
    ADD_FAILURE() << "config " << c.at("config") << ", text "
                  << c.at("text").dump() << ", pair " << c.at("pair").dump()
                  << ", max_length " << c.at("max_length").dump()
                  << "\n  text code points: " << CodePoints(text)
                  << "\n  pair code points: " << CodePoints(pair.value_or(""))
                  << "\n  Hugging Face: ids " << c.at("ids").dump()
                  << " tokens " << c.at("tokens").dump() << " offsets "
                  << c.at("offsets").dump() << " truncated "
                  << c.at("truncated").dump() << "\n  ours: " << ours.str();
  }
  EXPECT_EQ(failed, 0) << "of " << checked << " cases";
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace bertserve::tokenizer
