#ifndef BERTSERVE_SERVER_TOKENIZER_UNICODE_OVERRIDES_H_
#define BERTSERVE_SERVER_TOKENIZER_UNICODE_OVERRIDES_H_

#include <optional>

// Where the Unicode data Hugging Face `tokenizers` uses differ from
// utf8proc's. Its BertNormalizer and BertPreTokenizer read general categories
// from the unicode_categories crate and NFD from unicode-normalization-
// alignments, both of an older Unicode version than utf8proc, and lowercase
// with Rust's char::to_lowercase, of a newer one. So for a few hundred code
// points (most assigned since Unicode 9) utf8proc answers differently.
// Each function gives Hugging Face's answer where it differs, else nullopt.
//
// The data were read from tokenizers 0.22.2 (Node binding
// @anush008/tokenizers 0.6.0) against utf8proc 2.8 (Debian 12);
// tests/tokenizer/hf_unicode_table_test checks every code point against
// Hugging Face and lists what to change here when a version moves.
// Pure; thread-safe. Used by unicode.cc only.
namespace bertserve::tokenizer::unicode::overrides {

// Whether clean_text drops it as a control (Cc, Cf, Co).
std::optional<bool> IsControl(char32_t cp);
// Whether it is punctuation (category P*) for BertPreTokenizer.
std::optional<bool> IsPunctuation(char32_t cp);
// Whether strip_accents drops it (category Mn).
std::optional<bool> IsNonspacingMark(char32_t cp);
// True when NFD leaves it as it is though utf8proc decomposes it.
bool IsNotDecomposed(char32_t cp);
// True when NFD gives it combining class 0 though utf8proc does not.
bool HasCombiningClassZero(char32_t cp);
// Its lowercase where utf8proc has none.
std::optional<char32_t> Lowercase(char32_t cp);

}  // namespace bertserve::tokenizer::unicode::overrides

#endif  // BERTSERVE_SERVER_TOKENIZER_UNICODE_OVERRIDES_H_
