#include "server/tokenizer/pre_tokenizer.h"

#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

// WordBreakAt for ASCII, which most text is.
struct AsciiBreaks {
  WordBreak at[128];
  constexpr AsciiBreaks() : at() {
    for (int c = 0; c < 128; ++c) {
      const bool space = c == ' ' || (c >= 0x09 && c <= 0x0D);
      const bool punct = (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
                         (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
      at[c] = space   ? WordBreak::kWhitespace
              : punct ? WordBreak::kPunctuation
                      : WordBreak::kNone;
    }
  }
};
constexpr AsciiBreaks kAsciiBreaks;

}  // namespace

WordBreak WordBreakAt(char32_t c) {
  if (c < 0x80) return kAsciiBreaks.at[c];
  const uint16_t flags = unicode::CharFlags(c);
  if (flags & unicode::kWhiteSpace) return WordBreak::kWhitespace;
  if (flags & unicode::kPunctuation) return WordBreak::kPunctuation;
  return WordBreak::kNone;
}

std::vector<WordSpan> PreTokenize(std::u32string_view text) {
  std::vector<WordSpan> words;
  size_t start = 0;  // start of the word being collected
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    // Splitting on whitespace then on punctuation, as Rust does in two
    // passes, is the same as one pass that ends the current word at either.
    const WordBreak at = WordBreakAt(c);
    const bool space = at == WordBreak::kWhitespace;
    const bool punct = at == WordBreak::kPunctuation;
    if (!space && !punct) continue;
    if (i > start) words.push_back({start, i});
    if (punct) words.push_back({i, i + 1});
    start = i + 1;
  }
  if (text.size() > start) words.push_back({start, text.size()});
  return words;
}

}  // namespace bertserve::tokenizer
