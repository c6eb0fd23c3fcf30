#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer/bert_tokenizer.h"
#include "tests/tokenizer/tokenizer_test_data.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// A tokenizer.json as tokenizers 0.13+ saves BertWordPieceTokenizer over the
// small upstream test vocabulary.
Json BertJson() {
  Json vocab = Json::object();
  const std::vector<std::string> tokens = testing::SmallVocab();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  Json added = Json::array();
  for (const char* token : {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"}) {
    added.push_back({{"id", vocab[token]},
                     {"content", token},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "BertNormalizer"},
        {"clean_text", true},
        {"handle_chinese_chars", true},
        {"strip_accents", nullptr},
        {"lowercase", true}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "BertProcessing"},
        {"sep", {"[SEP]", 2}},
        {"cls", {"[CLS]", 1}}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", "[UNK]"},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 100},
        {"vocab", vocab}}},
  };
}

// The TemplateProcessing that tokenizers writes for BERT.
Json BertTemplate() {
  auto special = [](const char* id, int type_id) {
    return Json{{"SpecialToken", {{"id", id}, {"type_id", type_id}}}};
  };
  auto sequence = [](const char* id, int type_id) {
    return Json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  return {
      {"type", "TemplateProcessing"},
      {"single", {special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0)}},
      {"pair",
       {special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0),
        sequence("B", 1), special("[SEP]", 1)}},
      {"special_tokens",
       {{"[CLS]", {{"id", "[CLS]"}, {"ids", {1}}, {"tokens", {"[CLS]"}}}},
        {"[SEP]", {{"id", "[SEP]"}, {"ids", {2}}, {"tokens", {"[SEP]"}}}}}},
  };
}

std::string Write(const std::string& name, const std::string& contents) {
  const std::string path =
      (std::filesystem::path(::testing::TempDir()) / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

absl::StatusOr<std::unique_ptr<BertTokenizer>> Load(const std::string& name,
                                                    const Json& json) {
  return BertTokenizer::FromTokenizerJson(Write(name, json.dump()));
}

TEST(TokenizerJsonTest, LoadsBertWordPiece) {
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      Load("bert.json", BertJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT(*(*tokenizer)->Tokenize("UNwant\u00E9d,running"),
              ElementsAre("un", "##want", "##ed", ",", "runn", "##ing"));
  EXPECT_EQ((*tokenizer)->vocab_size(), 15);
  EXPECT_EQ((*tokenizer)->pad_id(), 3);
  EXPECT_FALSE((*tokenizer)->options().strip_accents.has_value());
  absl::StatusOr<Encoding> encoding =
      (*tokenizer)->Encode("want [MASK]", "low", 16, false);
  ASSERT_TRUE(encoding.ok()) << encoding.status();
  EXPECT_THAT(encoding->ids, ElementsAre(1, 5, 4, 2, 13, 2));
  EXPECT_THAT(encoding->type_ids, ElementsAre(0, 0, 0, 0, 1, 1));
}

TEST(TokenizerJsonTest, UsesNormalizerAndModelSettings) {
  Json json = BertJson();
  json["normalizer"]["lowercase"] = false;
  json["normalizer"]["strip_accents"] = true;
  json["model"]["max_input_chars_per_word"] = 4;
  json["padding"] = {{"pad_id", 0}, {"pad_token", "[UNK]"}};
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      Load("settings.json", json);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_FALSE((*tokenizer)->options().lowercase);
  EXPECT_EQ((*tokenizer)->options().strip_accents, true);
  EXPECT_EQ((*tokenizer)->pad_id(), 0);
  // Not lowercased: "Want" is unknown; "wänt" loses its accent; "lowest" is
  // over 4 characters.
  EXPECT_THAT(*(*tokenizer)->Tokenize("Want w\u00E4nt lowest low"),
              ElementsAre("[UNK]", "want", "[UNK]", "low"));
}

TEST(TokenizerJsonTest, AcceptsTheBertTemplate) {
  Json json = BertJson();
  json["post_processor"] = BertTemplate();
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      Load("template.json", json);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<Encoding> encoding =
      (*tokenizer)->Encode("want", "wa", 8, true);
  ASSERT_TRUE(encoding.ok()) << encoding.status();
  EXPECT_THAT(encoding->tokens,
              ElementsAre("[CLS]", "want", "[SEP]", "wa", "[SEP]"));
}

TEST(TokenizerJsonTest, RefusesOtherTemplates) {
  Json json = BertJson();
  json["post_processor"] = BertTemplate();
  json["post_processor"]["pair"][4]["SpecialToken"]["type_id"] = 0;
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      Load("other_template.json", json);
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("TemplateProcessing"));
}

TEST(TokenizerJsonTest, RefusesBpeNamingTypeAndFile) {
  const Json bpe = {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}},
        {"merges", {"a b"}}}},
  };
  const std::string path = Write("bpe_tokenizer.json", bpe.dump());
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      BertTokenizer::FromTokenizerJson(path);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_THAT(tokenizer.status().code(),
              AnyOf(absl::StatusCode::kFailedPrecondition,
                    absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(tokenizer.status().message(),
              AllOf(HasSubstr("\"BPE\""), HasSubstr(path)));
}

TEST(TokenizerJsonTest, RefusesUnigramAndOtherComponents) {
  Json json = BertJson();
  json["model"] = {{"type", "Unigram"}, {"vocab", {{"a", 0.0}}}};
  EXPECT_THAT(Load("unigram.json", json).status().message(),
              HasSubstr("\"Unigram\""));

  json = BertJson();
  json["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_THAT(Load("whitespace.json", json).status().message(),
              HasSubstr("Whitespace"));

  json = BertJson();
  json["normalizer"] = {{"type", "Sequence"}, {"normalizers", Json::array()}};
  EXPECT_THAT(Load("sequence.json", json).status().message(),
              HasSubstr("Sequence"));

  json = BertJson();
  json["added_tokens"][0]["lstrip"] = true;
  EXPECT_THAT(Load("lstrip.json", json).status().message(),
              HasSubstr("lstrip"));
}

TEST(TokenizerJsonTest, MissingAndMalformedFiles) {
  const std::string missing = ::testing::TempDir() + "/nope/tokenizer.json";
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      BertTokenizer::FromTokenizerJson(missing);
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(missing));

  const std::string garbage = Write("garbage.json", "{\"model\": ");
  tokenizer = BertTokenizer::FromTokenizerJson(garbage);
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(garbage));

  Json json = BertJson();
  json["model"]["vocab"]["want"] = "five";
  EXPECT_EQ(Load("bad_id.json", json).status().code(),
            absl::StatusCode::kInvalidArgument);

  json = BertJson();
  json["model"]["unk_token"] = "<unk>";
  EXPECT_THAT(Load("no_unk.json", json).status().message(), HasSubstr("<unk>"));
}

TEST(TokenizerJsonTest, WithoutAddedTokensUsesBertSpecials) {
  Json json = BertJson();
  json.erase("added_tokens");
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      Load("no_added.json", json);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT(*(*tokenizer)->Tokenize("[MASK]want"),
              ElementsAre("[MASK]", "want"));
}

TEST(TokenizerJsonTest, EmptyAddedTokensMatchNothing) {
  Json json = BertJson();
  json["added_tokens"] = Json::array();
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      Load("empty_added.json", json);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT(*(*tokenizer)->Tokenize("[MASK]"),
              ElementsAre("[UNK]", "[UNK]", "[UNK]"));
}

// Numbers where ints are expected (found while writing
// tokenizer_json_fuzzer; its corpus keeps both inputs): a float out of int's
// range was converted to int, which is undefined behaviour, and a huge
// vocabulary id allocated a slot for every id below it. Each is refused,
// naming the file.
TEST(TokenizerJsonTest, RefusesNumbersThatAreNotIdsOrCounts) {
  Json json = BertJson();
  json["model"]["max_input_chars_per_word"] = 1e300;
  absl::StatusOr<std::unique_ptr<BertTokenizer>> t = Load("float.json", json);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()),
              AllOf(HasSubstr("float.json"),
                    HasSubstr("max_input_chars_per_word")));

  json = BertJson();
  json["post_processor"] = BertTemplate();
  json["post_processor"]["single"][0]["SpecialToken"]["type_id"] = -1e300;
  t = Load("type.json", json);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("type.json"));

  json = BertJson();
  json["model"]["vocab"]["huge"] = 2000000000;
  t = Load("huge.json", json);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()),
              AllOf(HasSubstr("huge.json"), HasSubstr("\"huge\"")));
}

}  // namespace
}  // namespace bertserve::tokenizer
