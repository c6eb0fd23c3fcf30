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

// Hugging Face tokenizers' BertNormalizer, in its order:
//   1. clean_text: drop U+0000, U+FFFD and controls (Cc, Cf, Co except
//      \t \n \r), then map whitespace to ' ';
//   2. handle_chinese_chars: ' ' before and after each CJK ideograph;
//   3. strip_accents (unset: follows lowercase): NFD, then drop category Mn;
//   4. lowercase: per-character full lowercase mapping.
// Immutable; Normalize is thread-safe.
class BertNormalizer {
 public:
  explicit BertNormalizer(const NormalizerOptions& options);

  // Normalizes `text`, whose first code point is at index `first_index` of
  // the original text (origins are reported in that frame).
  NormalizedText Normalize(std::u32string_view text, int32_t first_index) const;

 private:
  bool clean_text_;
  bool handle_chinese_chars_;
  bool strip_accents_;
  bool lowercase_;
};

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_NORMALIZER_H_
