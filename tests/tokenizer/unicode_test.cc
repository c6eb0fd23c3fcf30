#include "server/tokenizer/unicode.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::tokenizer::unicode {
namespace {

using ::testing::HasSubstr;

// transformers test_is_whitespace, plus Rust char::is_whitespace members
// that Python's category check does not have.
TEST(UnicodeTest, Whitespace) {
  for (char32_t c :
       {U' ', U'\t', U'\r', U'\n', char32_t{0xA0}, char32_t{0x3000},
        char32_t{0x2028}, char32_t{0x85}, char32_t{0x0B}}) {
    EXPECT_TRUE(IsBertWhitespace(c)) << std::hex << static_cast<int>(c);
  }
  EXPECT_FALSE(IsBertWhitespace(U'A'));
  EXPECT_FALSE(IsBertWhitespace(U'-'));
  // Not White_Space: Python's str.isspace() says yes to U+001F, Rust no.
  EXPECT_FALSE(IsBertWhitespace(0x1F));
  EXPECT_FALSE(IsBertWhitespace(0x180E));
  EXPECT_FALSE(IsBertWhitespace(0x200B));
}

// transformers test_is_control.
TEST(UnicodeTest, Control) {
  EXPECT_TRUE(IsBertControl(0x05));
  EXPECT_FALSE(IsBertControl(U'A'));
  EXPECT_FALSE(IsBertControl(U' '));
  EXPECT_FALSE(IsBertControl(U'\t'));
  EXPECT_FALSE(IsBertControl(U'\r'));
  EXPECT_FALSE(IsBertControl(U'\n'));
  EXPECT_TRUE(IsBertControl(0xAD));    // soft hyphen, Cf
  EXPECT_TRUE(IsBertControl(0x200E));  // left-to-right mark, Cf
  EXPECT_TRUE(IsBertControl(0xE000));  // private use, Co
  // Unassigned (Cn) is not a control for Hugging Face's Rust tokenizer.
  EXPECT_FALSE(IsBertControl(0x0378));
}

// transformers test_is_punctuation, plus other scripts.
TEST(UnicodeTest, Punctuation) {
  for (char32_t c : {U'-', U'$', U'`', U'.', U'^', U'~', U'|', U'+', U'<'}) {
    EXPECT_TRUE(IsBertPunctuation(c)) << static_cast<char>(c);
  }
  EXPECT_FALSE(IsBertPunctuation(U'A'));
  EXPECT_FALSE(IsBertPunctuation(U' '));
  for (char32_t c : {char32_t{0xBF} /* ¿ */, char32_t{0x300C} /* 「 */,
                     char32_t{0x0964} /* । */, char32_t{0x060C} /* ، */,
                     char32_t{0x2014} /* — */, char32_t{0x2026} /* … */}) {
    EXPECT_TRUE(IsBertPunctuation(c)) << std::hex << static_cast<int>(c);
  }
  EXPECT_FALSE(IsBertPunctuation(0x20AC));  // €, Sc and not ASCII
}

TEST(UnicodeTest, ChineseCharsFollowRustRanges) {
  EXPECT_TRUE(IsChineseChar(0x535A));
  EXPECT_TRUE(IsChineseChar(0x3400));
  EXPECT_TRUE(IsChineseChar(0x20000));
  EXPECT_TRUE(IsChineseChar(0xF900));
  EXPECT_TRUE(IsChineseChar(0x2B920));
  // tokenizers' bert.rs starts Extension E at 0x2B920, not 0x2B820.
  EXPECT_FALSE(IsChineseChar(0x2B820));
  EXPECT_FALSE(IsChineseChar(0x3042));  // Hiragana
  EXPECT_FALSE(IsChineseChar(0xD55C));  // Hangul
}

TEST(UnicodeTest, DecodeValidUtf8) {
  absl::StatusOr<std::u32string> text =
      DecodeUtf8("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80", "text");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, (std::u32string{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(EncodeUtf8(*text), "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
}

TEST(UnicodeTest, DecodeRejectsInvalidUtf8WithOffset) {
  struct Case {
    std::string bytes;
    int offset;
  };
  const Case cases[] = {
      {"ab\xFF", 2},            // never valid
      {"a\xC3", 1},             // truncated
      {"a\xC3x", 1},            // missing continuation
      {"\x80", 0},              // stray continuation
      {"xy\xC0\x80", 2},        // overlong NUL
      {"\xE0\x80\xAF", 0},      // overlong 3-byte
      {"ok \xED\xA0\x80", 3},   // surrogate U+D800
      {"\xF4\x90\x80\x80", 0},  // past U+10FFFF
      {"\xF0\x9F\x98", 0},      // truncated 4-byte
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::u32string> text = DecodeUtf8(c.bytes, "pair");
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(text.status().message(), HasSubstr("pair is not valid UTF-8"));
    EXPECT_THAT(text.status().message(),
                HasSubstr("byte offset " + std::to_string(c.offset)));
  }
}

TEST(UnicodeTest, CaseMappingAndDecomposition) {
  std::u32string out;
  AppendLowercase(U'A', &out);
  AppendLowercase(0x130, &out);  // İ -> i + combining dot above
  AppendLowercase(0x3A3, &out);  // Σ -> σ (no final-sigma rule per char)
  EXPECT_EQ(out, (std::u32string{U'a', U'i', 0x307, 0x3C3}));

  out.clear();
  AppendCanonicalDecomposition(0x1EC7, &out);  // ệ
  EXPECT_EQ(out, (std::u32string{U'e', 0x323, 0x302}));
  out.clear();
  AppendCanonicalDecomposition(0xFB01, &out);  // ﬁ: compatibility only
  EXPECT_EQ(out, std::u32string{0xFB01});
  EXPECT_TRUE(IsNonspacingMark(0x301));
  EXPECT_FALSE(IsNonspacingMark(U'e'));
  EXPECT_EQ(CombiningClass(0x323), 220);
  EXPECT_EQ(CombiningClass(U'a'), 0);
}

}  // namespace
}  // namespace bertserve::tokenizer::unicode
