// Tests against the real bert-base-uncased vocabulary, read from
// $BERTSERVE_TEST_DATA/vocab.txt. A missing file fails every test, with the
// command that makes it.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer/bert_tokenizer.h"
#include "tests/tokenizer/tokenizer_test_data.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::ElementsAre;
using Offsets = std::pair<int32_t, int32_t>;

class RealVocabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string problem = testing::RealVocabProblem();
    ASSERT_TRUE(problem.empty()) << problem;
    absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
        BertTokenizer::FromVocabFile(testing::RealVocabPath(), options_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
  }

  Encoding Encode(std::string_view text,
                  std::optional<std::string_view> pair = std::nullopt) {
    absl::StatusOr<Encoding> encoding =
        tokenizer_->Encode(text, pair, 512, true);
    EXPECT_TRUE(encoding.ok()) << encoding.status();
    return encoding.ok() ? *std::move(encoding) : Encoding();
  }

  NormalizerOptions options_;
  std::unique_ptr<BertTokenizer> tokenizer_;
};

TEST_F(RealVocabTest, KnownIds) {
  EXPECT_EQ(tokenizer_->vocab_size(), 30522);
  EXPECT_EQ(tokenizer_->pad_id(), 0);
  EXPECT_THAT(Encode("hello").ids, ElementsAre(101, 7592, 102));
}

// tokenizers bindings/python/tests/implementations/test_bert_wordpiece.py,
// test_basic_encode.
TEST_F(RealVocabTest, BertWordPieceBasicEncode) {
  const Encoding e = Encode("My name is John", "pair");
  EXPECT_THAT(e.ids, ElementsAre(101, 2026, 2171, 2003, 2198, 102, 3940, 102));
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "my", "name", "is", "john",
                                    "[SEP]", "pair", "[SEP]"));
  EXPECT_THAT(e.offsets,
              ElementsAre(Offsets(0, 0), Offsets(0, 2), Offsets(3, 7),
                          Offsets(8, 10), Offsets(11, 15), Offsets(0, 0),
                          Offsets(0, 4), Offsets(0, 0)));
  EXPECT_THAT(e.type_ids, ElementsAre(0, 0, 0, 0, 0, 0, 1, 1));
}

// transformers test_offsets_with_special_characters, lowercase branch.
TEST_F(RealVocabTest, OffsetsWithSpecialCharacters) {
  const Encoding e = Encode("A, na\u00EFve [MASK] AllenNLP sentence.");
  EXPECT_THAT(e.tokens,
              ElementsAre("[CLS]", "a", ",", "naive", "[MASK]", "allen", "##nl",
                          "##p", "sentence", ".", "[SEP]"));
  EXPECT_THAT(e.offsets,
              ElementsAre(Offsets(0, 0), Offsets(0, 1), Offsets(1, 2),
                          Offsets(3, 8), Offsets(9, 15), Offsets(16, 21),
                          Offsets(21, 23), Offsets(23, 24), Offsets(25, 33),
                          Offsets(33, 34), Offsets(0, 0)));
}

// transformers test_change_tokenize_chinese_chars.
TEST_F(RealVocabTest, ChineseCharsAreSeparateWords) {
  EXPECT_THAT(*tokenizer_->Tokenize("\u7684\u4EBA\u6709"),
              ElementsAre("\u7684", "\u4EBA", "\u6709"));
}

class RealVocabNoChineseTest : public RealVocabTest {
 protected:
  RealVocabNoChineseTest() { options_.handle_chinese_chars = false; }
};

TEST_F(RealVocabNoChineseTest, ChineseCharsFormOneWord) {
  EXPECT_THAT(*tokenizer_->Tokenize("\u7684\u4EBA\u6709"),
              ElementsAre("\u7684", "##\u4EBA", "##\u6709"));
}

TEST_F(RealVocabTest, AccentsAndOtherScripts) {
  EXPECT_THAT(*tokenizer_->Tokenize("H\u00E9llo na\u00EFve caf\u00E9"),
              ElementsAre("hello", "naive", "cafe"));
  EXPECT_THAT(*tokenizer_->Tokenize("\u00BFQu\u00E9?"),
              ElementsAre("\u00BF", "que", "?"));
  const Encoding e = Encode("\xF0\x9F\x98\x80 hello");  // emoji, one code point
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "[UNK]", "hello", "[SEP]"));
  EXPECT_THAT(e.offsets[2], Offsets(2, 7));
}

class RealVocabCasedTest : public RealVocabTest {
 protected:
  RealVocabCasedTest() { options_.lowercase = false; }
};

// The uncased vocab has no capitals: "Hello" is cut to pieces, not lowered.
TEST_F(RealVocabCasedTest, KeepsCase) {
  EXPECT_NE(Encode("Hello").ids[1], 7592);
  EXPECT_THAT(Encode("hello").ids, ElementsAre(101, 7592, 102));
}

}  // namespace
}  // namespace bertserve::tokenizer
