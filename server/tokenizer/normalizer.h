#ifndef BERTSERVE_SERVER_TOKENIZER_NORMALIZER_H_
#define BERTSERVE_SERVER_TOKENIZER_NORMALIZER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/tokenizer/bert_tokenizer.h"

namespace bertserve::tokenizer {

// Normalized text that remembers where each code point came from.
// chars.size() == origins.size().
struct NormalizedText {
  std::u32string chars;
  // For chars[i], the index (in code points) of the original character it
  // was derived from. Every normalized code point comes from exactly one
  // original one (the BERT steps only drop, replace, insert around, or expand
  // characters), so a token spanning chars [b, e) covers the original
  // characters [origins[b], origins[e - 1] + 1).
  std::vector<int32_t> origins;
};

// Normalized text as UTF-8, for the tokenizer's fast path. Both vectors grow
// together; bytes.size() == origins.size().
struct NormalizedUtf8 {
  std::string bytes;
  // For each byte, the index (in code points) of the original character its
  // code point was derived from (see NormalizedText::origins).
  std::vector<int32_t> origins;

  void clear() {
    bytes.clear();
    origins.clear();
  }
};

// Hugging Face tokenizers' BertNormalizer, in its order:
//   1. clean_text: drop U+0000, U+FFFD and controls (Cc, Cf, Co except
//      \t \n \r), then map whitespace to ' ';
//   2. handle_chinese_chars: ' ' before and after each CJK ideograph;
//   3. strip_accents (unset: follows lowercase): NFD, then drop category Mn;
//   4. lowercase: per-character full lowercase mapping.
// Where NFD reorders marks, each reordered character takes the origin of the
// character at its position, as Hugging Face's alignments do.
// Immutable; thread-safe (each thread reuses its own scratch buffers).
class BertNormalizer {
 public:
  explicit BertNormalizer(const NormalizerOptions& options);

  // Normalizes `text`, whose first code point is at index `first_index` of
  // the original text (origins are reported in that frame).
  NormalizedText Normalize(std::u32string_view text, int32_t first_index) const;

  // Appends the normalization of `text` to `out`, as Normalize does; returns
  // the number of code points of `text`. A text may be normalized in pieces,
  // each ending where the text ends or before a code point at which
  // IsPieceBoundary holds: the pieces then give what the whole gives.
  // REQUIRES: `text` is valid UTF-8 (unicode::ValidateUtf8).
  int32_t AppendUtf8(std::string_view text, int32_t first_index,
                     NormalizedUtf8* out) const;

  // True for code points that no normalization step combines with, or
  // reorders across (ASCII, CJK unified ideographs, Hangul syllables).
  static bool IsPieceBoundary(char32_t c) {
    return c < 0x80 || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xAC00 && c <= 0xD7A3);
  }

 private:
  bool clean_text_;
  bool handle_chinese_chars_;
  bool strip_accents_;
  bool lowercase_;
};

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_NORMALIZER_H_
