#ifndef BERTSERVE_SERVER_TOKENIZER_UNICODE_H_
#define BERTSERVE_SERVER_TOKENIZER_UNICODE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

// Character classes and conversions used by the BERT tokenizer, defined the
// way Hugging Face `tokenizers` (Rust) defines them. Character data comes from
// utf8proc; this is the only file of the tokenizer that includes it.
// All functions are pure and thread-safe.
namespace bertserve::tokenizer::unicode {

// Decodes strict UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF). On failure: InvalidArgument naming `what` ("text", "pair", ...)
// and the byte offset of the first bad sequence.
absl::StatusOr<std::u32string> DecodeUtf8(std::string_view bytes,
                                          std::string_view what);

// Appends the UTF-8 encoding of `cp`. REQUIRES: cp is a Unicode scalar value.
void AppendUtf8(char32_t cp, std::string* out);
std::string EncodeUtf8(std::u32string_view text);

// Rust char::is_whitespace, i.e. the Unicode White_Space property.
bool IsWhiteSpace(char32_t cp);

// BertNormalizer's whitespace: \t \n \r and IsWhiteSpace.
bool IsBertWhitespace(char32_t cp);

// BertNormalizer's control: general category Cc, Cf or Co, except \t \n \r.
bool IsBertControl(char32_t cp);

// BertPreTokenizer's punctuation: ASCII punctuation or any category P*.
bool IsBertPunctuation(char32_t cp);

// BertNormalizer's "Chinese character": the CJK ideograph blocks it lists.
bool IsChineseChar(char32_t cp);

// General category Mn (what strip_accents drops after NFD).
bool IsNonspacingMark(char32_t cp);

// Appends the canonical decomposition (NFD, recursive, not yet reordered)
// of `cp`; `cp` itself when it has none.
void AppendCanonicalDecomposition(char32_t cp, std::u32string* out);

// Canonical combining class (0 for starters).
int CombiningClass(char32_t cp);

// Appends the full lowercase mapping of one character, as Rust's
// char::to_lowercase: the simple mapping, plus U+0130 -> "i\u0307".
void AppendLowercase(char32_t cp, std::u32string* out);

}  // namespace bertserve::tokenizer::unicode

#endif  // BERTSERVE_SERVER_TOKENIZER_UNICODE_H_
