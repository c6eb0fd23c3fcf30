#ifndef BERTSERVE_SERVER_TOKENIZER_PRE_TOKENIZER_H_
#define BERTSERVE_SERVER_TOKENIZER_PRE_TOKENIZER_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace bertserve::tokenizer {

// A word of normalized text: code points [begin, end). Never empty.
struct WordSpan {
  size_t begin;
  size_t end;
};

// Hugging Face tokenizers' BertPreTokenizer: splits on White_Space (the
// whitespace is dropped), then isolates every punctuation character
// (unicode::IsBertPunctuation) as a word of its own. Words are returned in
// text order. Pure; thread-safe.
std::vector<WordSpan> PreTokenize(std::u32string_view text);

// What BertPreTokenizer does at one code point.
enum class WordBreak : uint8_t {
  kNone,         // part of a word
  kWhitespace,   // ends the word and is dropped
  kPunctuation,  // ends the word and is a word of its own
};
WordBreak WordBreakAt(char32_t c);

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_PRE_TOKENIZER_H_
