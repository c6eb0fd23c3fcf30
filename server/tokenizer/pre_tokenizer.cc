#include "server/tokenizer/pre_tokenizer.h"

#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {

std::vector<WordSpan> PreTokenize(std::u32string_view text) {
  std::vector<WordSpan> words;
  size_t start = 0;  // start of the word being collected
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    // Splitting on whitespace then on punctuation, as Rust does in two
    // passes, is the same as one pass that ends the current word at either.
    const bool space = unicode::IsWhiteSpace(c);
    const bool punct = !space && unicode::IsBertPunctuation(c);
    if (!space && !punct) continue;
    if (i > start) words.push_back({start, i});
    if (punct) words.push_back({i, i + 1});
    start = i + 1;
  }
  if (text.size() > start) words.push_back({start, text.size()});
  return words;
}

}  // namespace bertserve::tokenizer
