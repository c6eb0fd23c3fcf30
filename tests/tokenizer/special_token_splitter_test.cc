#include "server/tokenizer/special_token_splitter.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Segments rendered as "text" or "<id>".
std::vector<std::string> Split(const SpecialTokenSplitter& splitter,
                               const std::string& utf8) {
  const std::u32string text = *unicode::DecodeUtf8(utf8, "test");
  std::vector<std::string> out;
  for (const TextSegment& s : splitter.Split(text)) {
    if (s.special_id >= 0) {
      out.push_back("<" + std::to_string(s.special_id) + ">");
    } else {
      out.push_back(unicode::EncodeUtf8(
          std::u32string_view(text).substr(s.begin, s.end - s.begin)));
    }
  }
  return out;
}

const SpecialTokenSplitter& Bert() {
  static const auto* splitter = new SpecialTokenSplitter({{"[PAD]", 0},
                                                          {"[UNK]", 100},
                                                          {"[CLS]", 101},
                                                          {"[SEP]", 102},
                                                          {"[MASK]", 103}});
  return *splitter;
}

TEST(SpecialTokenSplitterTest, FindsTokensAnywhere) {
  EXPECT_THAT(Split(Bert(), "[CLS] hi [SEP]"),
              ElementsAre("<101>", " hi ", "<102>"));
  EXPECT_THAT(Split(Bert(), "foo[SEP]bar"), ElementsAre("foo", "<102>", "bar"));
  EXPECT_THAT(Split(Bert(), "[MASK][MASK]"), ElementsAre("<103>", "<103>"));
  EXPECT_THAT(Split(Bert(), "\u00E9[UNK]\u00E9"),
              ElementsAre("\u00E9", "<100>", "\u00E9"));
}

TEST(SpecialTokenSplitterTest, IsCaseSensitiveAndExact) {
  EXPECT_THAT(Split(Bert(), "[sep] [ SEP ] [SEP"),
              ElementsAre("[sep] [ SEP ] [SEP"));
  EXPECT_THAT(Split(Bert(), ""), IsEmpty());
}

TEST(SpecialTokenSplitterTest, PrefersTheLongestMatch) {
  SpecialTokenSplitter splitter({{"<s>", 1}, {"<s>x", 2}, {"", 3}});
  EXPECT_THAT(Split(splitter, "a<s>xb<s>"),
              ElementsAre("a", "<2>", "b", "<1>"));
}

TEST(SpecialTokenSplitterTest, SegmentsCoverTheText) {
  const std::u32string text = U"ab[SEP]c";
  const std::vector<TextSegment> segments = Bert().Split(text);
  ASSERT_EQ(segments.size(), 3u);
  EXPECT_EQ(segments[0].begin, 0u);
  EXPECT_EQ(segments[1].begin, 2u);
  EXPECT_EQ(segments[1].end, 7u);
  EXPECT_EQ(segments[2].end, 8u);
}

}  // namespace
}  // namespace bertserve::tokenizer
