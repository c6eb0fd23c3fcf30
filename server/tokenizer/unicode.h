#ifndef BERTSERVE_SERVER_TOKENIZER_UNICODE_H_
#define BERTSERVE_SERVER_TOKENIZER_UNICODE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

// Character classes and conversions used by the BERT tokenizer, defined the
// way Hugging Face `tokenizers` (Rust) defines them. Character data comes from
// utf8proc, corrected where Hugging Face's crates disagree with it
// (unicode_overrides.h); this is the only file of the tokenizer that includes
// utf8proc.
// All functions are pure and thread-safe.
namespace bertserve::tokenizer::unicode {

// Decodes strict UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF). On failure: InvalidArgument naming `what` ("text", "pair", ...)
// and the byte offset of the first bad sequence.
absl::StatusOr<std::u32string> DecodeUtf8(std::string_view bytes,
                                          std::string_view what);

// The checks of DecodeUtf8 without decoding: OK, or the same error.
absl::Status ValidateUtf8(std::string_view bytes, std::string_view what);

// The code point that starts at byte `*pos` of `bytes`; advances `*pos` past
// it. REQUIRES: `bytes` is valid UTF-8 (ValidateUtf8) and *pos < size at the
// start of a code point.
inline char32_t NextCodePoint(std::string_view bytes, size_t* pos) {
  const auto byte = [&](size_t k) {
    return static_cast<char32_t>(static_cast<unsigned char>(bytes[*pos + k]));
  };
  const char32_t b0 = byte(0);
  if (b0 < 0x80) {
    *pos += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    const char32_t cp = ((b0 & 0x1F) << 6) | (byte(1) & 0x3F);
    *pos += 2;
    return cp;
  }
  if (b0 < 0xF0) {
    const char32_t cp =
        ((b0 & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    *pos += 3;
    return cp;
  }
  const char32_t cp = ((b0 & 0x07) << 18) | ((byte(1) & 0x3F) << 12) |
                      ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
  *pos += 4;
  return cp;
}

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

// The answers of the functions above for one code point, in one lookup (a
// table for the Basic Multilingual Plane, built on first use). The
// tokenizer's per-character path asks this; the functions above are what it
// is made of.
enum CharFlag : uint16_t {
  kDroppedByClean = 1 << 0,    // U+0000, U+FFFD or IsBertControl
  kBertWhitespace = 1 << 1,    // IsBertWhitespace
  kWhiteSpace = 1 << 2,        // IsWhiteSpace
  kPunctuation = 1 << 3,       // IsBertPunctuation
  kChinese = 1 << 4,           // IsChineseChar
  kNonspacingMark = 1 << 5,    // IsNonspacingMark
  kDecomposes = 1 << 6,        // AppendCanonicalDecomposition changes it
  kCombining = 1 << 7,         // CombiningClass != 0
  kLowercaseChanges = 1 << 8,  // AppendLowercase changes it
};
uint16_t CharFlags(char32_t cp);

}  // namespace bertserve::tokenizer::unicode

#endif  // BERTSERVE_SERVER_TOKENIZER_UNICODE_H_
