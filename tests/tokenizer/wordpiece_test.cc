#include "server/tokenizer/wordpiece.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class WordPieceTest : public ::testing::Test {
 protected:
  // The vocabulary of transformers' test_wordpiece_tokenizer.
  WordPieceTest()
      : vocab_(*Vocab::FromTokens({"[UNK]", "[CLS]", "[SEP]", "want", "##want",
                                   "##ed", "wa", "un", "runn", "##ing"})) {}

  // Tokenizes each space-separated word, as the upstream test does.
  std::vector<std::string> Tokenize(const std::string& text,
                                    WordPieceConfig config = {}) {
    absl::StatusOr<WordPiece> model = WordPiece::Create(&vocab_, config);
    EXPECT_TRUE(model.ok()) << model.status();
    std::vector<std::string> out;
    const std::u32string chars = *unicode::DecodeUtf8(text, "test");
    size_t start = 0;
    while (start <= chars.size()) {
      size_t end = chars.find(U' ', start);
      if (end == std::u32string::npos) end = chars.size();
      pieces_.clear();
      model->Tokenize(std::u32string_view(chars).substr(start, end - start),
                      &pieces_);
      for (const WordPieceToken& piece : pieces_) {
        out.push_back(vocab_.Token(piece.id));
      }
      start = end + 1;
    }
    return out;
  }

  Vocab vocab_;
  std::vector<WordPieceToken> pieces_;
};

TEST_F(WordPieceTest, UpstreamCases) {
  EXPECT_THAT(Tokenize(""), IsEmpty());
  EXPECT_THAT(Tokenize("unwanted running"),
              ElementsAre("un", "##want", "##ed", "runn", "##ing"));
  EXPECT_THAT(Tokenize("unwantedX running"),
              ElementsAre("[UNK]", "runn", "##ing"));
}

TEST_F(WordPieceTest, PiecesCoverTheWord) {
  Tokenize("unwanted");
  ASSERT_EQ(pieces_.size(), 3u);
  EXPECT_EQ(pieces_[0].begin, 0u);
  EXPECT_EQ(pieces_[0].end, 2u);
  EXPECT_EQ(pieces_[1].begin, 2u);
  EXPECT_EQ(pieces_[1].end, 6u);
  EXPECT_EQ(pieces_[2].begin, 6u);
  EXPECT_EQ(pieces_[2].end, 8u);
  // An unknown word is one [UNK] over all of it.
  Tokenize("unwantedX");
  ASSERT_EQ(pieces_.size(), 1u);
  EXPECT_EQ(pieces_[0].id, 0);
  EXPECT_EQ(pieces_[0].end, 9u);
}

TEST_F(WordPieceTest, LongWordsBecomeUnknown) {
  std::string hundred;
  for (int i = 0; i < 25; ++i) hundred += "want";  // 100 characters
  EXPECT_EQ(Tokenize(hundred).size(), 25u);
  EXPECT_THAT(Tokenize(hundred + "ed"), ElementsAre("[UNK]"));
  // The limit counts code points, not bytes.
  WordPieceConfig config;
  config.max_input_chars_per_word = 3;
  EXPECT_THAT(Tokenize("wa\u00E9 wa", config), ElementsAre("[UNK]", "wa"));
  EXPECT_THAT(Tokenize("unwa", config), ElementsAre("[UNK]"));
}

TEST_F(WordPieceTest, CustomContinuationPrefix) {
  vocab_ = *Vocab::FromTokens({"[UNK]", "un", "@@want"});
  WordPieceConfig config;
  config.continuing_subword_prefix = "@@";
  EXPECT_THAT(Tokenize("unwant", config), ElementsAre("un", "@@want"));
}

TEST_F(WordPieceTest, CreateChecksConfig) {
  WordPieceConfig config;
  config.unk_token = "<unk>";
  absl::StatusOr<WordPiece> model = WordPiece::Create(&vocab_, config);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("<unk>"));
  config = {};
  config.max_input_chars_per_word = 0;
  EXPECT_FALSE(WordPiece::Create(&vocab_, config).ok());
}

}  // namespace
}  // namespace bertserve::tokenizer
