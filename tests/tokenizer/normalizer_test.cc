#include "server/tokenizer/normalizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer/pre_tokenizer.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::u32string Decode(const std::string& utf8) {
  return *unicode::DecodeUtf8(utf8, "test");
}

NormalizedText Normalize(const NormalizerOptions& options,
                         const std::string& text) {
  return BertNormalizer(options).Normalize(Decode(text), 0);
}

// transformers' BasicTokenizer is BertNormalizer + BertPreTokenizer.
std::vector<std::string> BasicTokenize(const NormalizerOptions& options,
                                       const std::string& text) {
  const NormalizedText normalized = Normalize(options, text);
  std::vector<std::string> words;
  for (const WordSpan& word : PreTokenize(normalized.chars)) {
    words.push_back(
        unicode::EncodeUtf8(std::u32string_view(normalized.chars)
                                .substr(word.begin, word.end - word.begin)));
  }
  return words;
}

NormalizerOptions Lower(std::optional<bool> strip = std::nullopt) {
  NormalizerOptions options;
  options.strip_accents = strip;
  return options;
}

NormalizerOptions NoLower(std::optional<bool> strip = std::nullopt) {
  NormalizerOptions options = Lower(strip);
  options.lowercase = false;
  return options;
}

// Expectations from transformers test_tokenization_bert.py.
TEST(BasicTokenizerTest, Chinese) {
  EXPECT_THAT(BasicTokenize(Lower(), "ah\u535A\u63A8zz"),
              ElementsAre("ah", "\u535A", "\u63A8", "zz"));
}

TEST(BasicTokenizerTest, Lower) {
  EXPECT_THAT(BasicTokenize(Lower(), " \tHeLLo!how  \n Are yoU?  "),
              ElementsAre("hello", "!", "how", "are", "you", "?"));
  EXPECT_THAT(BasicTokenize(Lower(), "H\u00E9llo"), ElementsAre("hello"));
}

TEST(BasicTokenizerTest, LowerStripAccentsFalse) {
  EXPECT_THAT(BasicTokenize(Lower(false), " \tHäLLo!how  \n Are yoU?  "),
              ElementsAre("hällo", "!", "how", "are", "you", "?"));
  EXPECT_THAT(BasicTokenize(Lower(false), "H\u00E9llo"),
              ElementsAre("h\u00E9llo"));
}

TEST(BasicTokenizerTest, LowerStripAccentsTrue) {
  EXPECT_THAT(BasicTokenize(Lower(true), " \tHäLLo!how  \n Are yoU?  "),
              ElementsAre("hallo", "!", "how", "are", "you", "?"));
  EXPECT_THAT(BasicTokenize(Lower(true), "H\u00E9llo"), ElementsAre("hello"));
}

TEST(BasicTokenizerTest, LowerStripAccentsDefault) {
  EXPECT_THAT(BasicTokenize(Lower(), " \tHäLLo!how  \n Are yoU?  "),
              ElementsAre("hallo", "!", "how", "are", "you", "?"));
}

TEST(BasicTokenizerTest, NoLower) {
  EXPECT_THAT(BasicTokenize(NoLower(), " \tHeLLo!how  \n Are yoU?  "),
              ElementsAre("HeLLo", "!", "how", "Are", "yoU", "?"));
}

TEST(BasicTokenizerTest, NoLowerStripAccentsFalse) {
  EXPECT_THAT(BasicTokenize(NoLower(false), " \tHäLLo!how  \n Are yoU?  "),
              ElementsAre("HäLLo", "!", "how", "Are", "yoU", "?"));
}

TEST(BasicTokenizerTest, NoLowerStripAccentsTrue) {
  EXPECT_THAT(BasicTokenize(NoLower(true), " \tHäLLo!how  \n Are yoU?  "),
              ElementsAre("HaLLo", "!", "how", "Are", "yoU", "?"));
}

TEST(BasicTokenizerTest, SplitsOnPunctuation) {
  EXPECT_THAT(BasicTokenize(Lower(), "a\n'll !!to?'d of, can't."),
              ElementsAre("a", "'", "ll", "!", "!", "to", "?", "'", "d", "of",
                          ",", "can", "'", "t", "."));
}

TEST(BasicTokenizerTest, RemoveControlChars) {
  EXPECT_THAT(BasicTokenize(Lower(), "\u200E\u200F"), IsEmpty());
  NormalizerOptions keep = Lower();
  keep.clean_text = false;
  EXPECT_THAT(BasicTokenize(keep, "\u200E\u200F"), ElementsAre("\u200E\u200F"));
}

TEST(BertNormalizerTest, CleanTextDropsControlsBeforeMappingWhitespace) {
  // U+000B, U+000C and U+0085 are both Cc and White_Space; Rust drops them.
  EXPECT_THAT(BasicTokenize(Lower(), "a\u000Bb c\u000Cd e\u0085f g\th"),
              ElementsAre("ab", "cd", "ef", "g", "h"));
  EXPECT_THAT(BasicTokenize(Lower(), std::string("a\0b\uFFFDc\u00ADd", 10)),
              ElementsAre("abcd"));
  // Unassigned code points are kept (only Cc, Cf, Co are controls).
  EXPECT_THAT(BasicTokenize(Lower(), "a\u0378b"), ElementsAre("a\u0378b"));
}

TEST(BertNormalizerTest, AlignsEveryCharToItsOrigin) {
  // "naïve" stripped: the i comes from original index 2 and the diaeresis
  // is dropped, so "naive" maps back to [0, 5).
  NormalizedText text = Normalize(Lower(), "Na\u00EFve");
  EXPECT_EQ(unicode::EncodeUtf8(text.chars), "naive");
  EXPECT_THAT(text.origins, ElementsAre(0, 1, 2, 3, 4));

  // Spaces around CJK and the removed control keep origins consistent.
  text = Normalize(Lower(), "a\u00AD\u535Ab");
  EXPECT_EQ(unicode::EncodeUtf8(text.chars), "a \u535A b");
  EXPECT_THAT(text.origins, ElementsAre(0, 2, 2, 2, 3));

  // İ lowercases to two code points that both come from it.
  text = Normalize(Lower(false), "\u0130x");
  EXPECT_EQ(unicode::EncodeUtf8(text.chars), "i\u0307x");
  EXPECT_THAT(text.origins, ElementsAre(0, 0, 1));
}

TEST(BertNormalizerTest, OriginsAreShiftedByFirstIndex) {
  const NormalizedText text =
      BertNormalizer(Lower()).Normalize(Decode("AB"), 7);
  EXPECT_THAT(text.origins, ElementsAre(7, 8));
}

TEST(BertNormalizerTest, NfdReordersMarksAcrossOriginalChars) {
  // U+1D16D (class 226) then U+1D165 (class 216) are spacing marks (Mc), so
  // they survive strip_accents; NFD swaps them. Hugging Face aligns NFD's
  // output by position, so the origins stay in place rather than travel with
  // their characters (hf_random_test finds texts where this shows in token
  // offsets, e.g. U+1DFB U+20EC "2023": the kept U+1DFB moves second and its
  // token starts at 1).
  NormalizedText text = Normalize(NoLower(true), "a\U0001D16D\U0001D165b");
  EXPECT_EQ(text.chars, (std::u32string{U'a', 0x1D165, 0x1D16D, U'b'}));
  EXPECT_THAT(text.origins, ElementsAre(0, 1, 2, 3));
  // Nonspacing marks are dropped whatever their order.
  text = Normalize(NoLower(true), "\u1E0B\u0323x");  // ḋ + dot below
  EXPECT_EQ(unicode::EncodeUtf8(text.chars), "dx");
  EXPECT_THAT(text.origins, ElementsAre(0, 2));
}

TEST(BertNormalizerTest, AllStepsOff) {
  const NormalizerOptions off{false, false, false, false};
  const NormalizedText text = Normalize(off, "\u00C9\t\u535A\u00AD");
  EXPECT_EQ(unicode::EncodeUtf8(text.chars), "\u00C9\t\u535A\u00AD");
}

}  // namespace
}  // namespace bertserve::tokenizer
