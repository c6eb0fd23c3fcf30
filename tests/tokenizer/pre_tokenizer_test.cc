#include "server/tokenizer/pre_tokenizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> Words(const std::string& utf8) {
  const std::u32string text = *unicode::DecodeUtf8(utf8, "test");
  std::vector<std::string> words;
  for (const WordSpan& word : PreTokenize(text)) {
    EXPECT_LT(word.begin, word.end);
    words.push_back(unicode::EncodeUtf8(
        std::u32string_view(text).substr(word.begin, word.end - word.begin)));
  }
  return words;
}

TEST(PreTokenizerTest, SplitsOnWhitespaceAndDropsIt) {
  EXPECT_THAT(Words("  hello \t world\n"), ElementsAre("hello", "world"));
  EXPECT_THAT(Words("a\u00A0b\u3000c\u2028d\u0085e"),
              ElementsAre("a", "b", "c", "d", "e"));
  EXPECT_THAT(Words(""), IsEmpty());
  EXPECT_THAT(Words(" \t\n "), IsEmpty());
}

TEST(PreTokenizerTest, IsolatesEachPunctuationChar) {
  EXPECT_THAT(Words("can't!!"), ElementsAre("can", "'", "t", "!", "!"));
  // ASCII symbols count as punctuation, as in Rust's is_ascii_punctuation.
  EXPECT_THAT(Words("$5+3=8"), ElementsAre("$", "5", "+", "3", "=", "8"));
  EXPECT_THAT(Words("a~b|c`d^e"),
              ElementsAre("a", "~", "b", "|", "c", "`", "d", "^", "e"));
}

TEST(PreTokenizerTest, PunctuationOfOtherScripts) {
  EXPECT_THAT(Words("¿Qué?"), ElementsAre("¿", "Qué", "?"));
  EXPECT_THAT(Words("«x»"), ElementsAre("«", "x", "»"));
  EXPECT_THAT(Words("「日本」"), ElementsAre("「", "日本", "」"));
  EXPECT_THAT(Words("हिन्दी।"), ElementsAre("हिन्दी", "।"));
  EXPECT_THAT(Words("مرحبا،عالم"), ElementsAre("مرحبا", "،", "عالم"));
  EXPECT_THAT(Words("a—b‐c…"), ElementsAre("a", "—", "b", "‐", "c", "…"));
  // Currency and other symbols outside ASCII are not punctuation.
  EXPECT_THAT(Words("€100 ©x"), ElementsAre("€100", "©x"));
}

TEST(PreTokenizerTest, SpansIndexTheInput) {
  const std::u32string text = U"ab, c";
  const std::vector<WordSpan> words = PreTokenize(text);
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0].begin, 0u);
  EXPECT_EQ(words[0].end, 2u);
  EXPECT_EQ(words[1].begin, 2u);
  EXPECT_EQ(words[1].end, 3u);
  EXPECT_EQ(words[2].begin, 4u);
  EXPECT_EQ(words[2].end, 5u);
}

}  // namespace
}  // namespace bertserve::tokenizer
