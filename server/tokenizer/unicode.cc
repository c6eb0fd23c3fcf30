#include "server/tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstdint>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/tokenizer/unicode_overrides.h"

namespace bertserve::tokenizer::unicode {
namespace {

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

absl::Status BadUtf8(std::string_view what, std::string_view bytes,
                     size_t offset) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s is not valid UTF-8: bad sequence at byte offset %d (byte 0x%02X)",
      what, offset, static_cast<uint8_t>(bytes[offset])));
}

utf8proc_category_t Category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

}  // namespace

absl::Status ValidateUtf8(std::string_view bytes, std::string_view what) {
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    // Most text is ASCII: skip it eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, bytes.data() + i, sizeof(word));
      if ((word & 0x8080808080808080ULL) != 0) break;
      i += 8;
    }
    if (i >= n) break;
    const uint8_t b0 = static_cast<uint8_t>(bytes[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    // The allowed range of the second byte depends on the lead byte; these
    // limits are what exclude overlong forms, surrogates and > U+10FFFF
    // (Unicode 15, table 3-7).
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      return BadUtf8(what, bytes, i);
    }
    if (i + 1 >= n) return BadUtf8(what, bytes, i);
    const uint8_t b1 = static_cast<uint8_t>(bytes[i + 1]);
    if (b1 < lo || b1 > hi) return BadUtf8(what, bytes, i);
    for (size_t k = 2; k < len; ++k) {
      if (i + k >= n || !IsContinuation(static_cast<uint8_t>(bytes[i + k]))) {
        return BadUtf8(what, bytes, i);
      }
    }
    i += len;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::u32string> DecodeUtf8(std::string_view bytes,
                                          std::string_view what) {
  if (absl::Status s = ValidateUtf8(bytes, what); !s.ok()) return s;
  std::u32string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) out.push_back(NextCodePoint(bytes, &i));
  return out;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string EncodeUtf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) AppendUtf8(cp, &out);
  return out;
}

bool IsWhiteSpace(char32_t cp) {
  // The White_Space property is not in utf8proc's data; it is small and has
  // not changed since Unicode 6.3 (U+180E left it then).
  switch (cp) {
    case 0x0020:
    case 0x0085:
    case 0x00A0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return (cp >= 0x0009 && cp <= 0x000D) || (cp >= 0x2000 && cp <= 0x200A);
  }
}

bool IsBertWhitespace(char32_t cp) {
  return cp == '\t' || cp == '\n' || cp == '\r' || IsWhiteSpace(cp);
}

bool IsBertControl(char32_t cp) {
  if (cp < 0x80) return cp < 0x20 ? cp != '\t' && cp != '\n' && cp != '\r'
                                 : cp == 0x7F;
  if (std::optional<bool> hf = overrides::IsControl(cp)) return *hf;
  // Hugging Face calls `is_other()` of the unicode_categories crate, which
  // despite its comment covers Cc, Cf and Co only: unassigned (Cn) code
  // points are kept, so we keep them too.
  switch (Category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
      return true;
    default:
      return false;
  }
}

bool IsBertPunctuation(char32_t cp) {
  // ASCII punctuation includes symbols such as $ + < = > ^ ` | ~ that are
  // not category P*; Rust's char::is_ascii_punctuation counts them.
  if ((cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
      (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E)) {
    return true;
  }
  if (cp < 0x80) return false;
  if (std::optional<bool> hf = overrides::IsPunctuation(cp)) return *hf;
  switch (Category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool IsChineseChar(char32_t cp) {
  // The ranges of tokenizers' bert.rs, including its 0x2B920 lower bound of
  // Extension E (Google's BERT and the Python tokenizer use 0x2B820); we
  // follow the Rust tokenizer.
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool IsNonspacingMark(char32_t cp) {
  if (cp < 0x80) return false;
  if (std::optional<bool> hf = overrides::IsNonspacingMark(cp)) return *hf;
  return Category(cp) == UTF8PROC_CATEGORY_MN;
}

namespace {

// Canonical decomposition from utf8proc; `cp` itself when it has none.
void DecomposeWithUtf8proc(char32_t cp, std::u32string* out) {
  // Canonical decompositions are at most 4 code points long; 32 is ample.
  utf8proc_int32_t buffer[32];
  int last_boundclass = 0;
  const utf8proc_ssize_t n =
      utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buffer, 32,
                              UTF8PROC_DECOMPOSE, &last_boundclass);
  if (n <= 0 || n > 32) {
    out->push_back(cp);
    return;
  }
  for (utf8proc_ssize_t i = 0; i < n; ++i) {
    out->push_back(static_cast<char32_t>(buffer[i]));
  }
}

// The decompositions of the BMP outside Hangul (about 2,000; accented Latin
// among them), so that text full of accents does not call utf8proc for each.
const absl::flat_hash_map<char32_t, std::u32string>& BmpDecompositions() {
  static const auto* const decompositions = [] {
    auto* map = new absl::flat_hash_map<char32_t, std::u32string>();
    std::u32string parts;
    for (char32_t c = 0xC0; c < 0x10000; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      parts.clear();
      DecomposeWithUtf8proc(c, &parts);
      if (parts != std::u32string(1, c)) map->emplace(c, parts);
    }
    return map;
  }();
  return *decompositions;
}

}  // namespace

void AppendCanonicalDecomposition(char32_t cp, std::u32string* out) {
  if (cp < 0xC0 || overrides::IsNotDecomposed(cp)) {
    out->push_back(cp);
    return;
  }
  // Hangul syllables decompose by arithmetic (Unicode 15, section 3.12).
  constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161,
                     kTBase = 0x11A7, kTCount = 28, kNCount = 21 * 28;
  if (cp >= kSBase && cp < kSBase + 19 * kNCount) {
    const char32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  if (cp < 0x10000) {
    const auto& decompositions = BmpDecompositions();
    auto it = decompositions.find(cp);
    if (it == decompositions.end()) {
      out->push_back(cp);
    } else {
      out->append(it->second);
    }
    return;
  }
  DecomposeWithUtf8proc(cp, out);
}

int CombiningClass(char32_t cp) {
  if (cp < 0x300 || overrides::HasCombiningClassZero(cp)) return 0;
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))
      ->combining_class;
}

void AppendLowercase(char32_t cp, std::u32string* out) {
  // U+0130 is the only unconditional multi-character lowercase mapping in
  // SpecialCasing.txt; utf8proc only has the simple mapping ("i").
  if (cp == 0x0130) {
    out->push_back(U'i');
    out->push_back(0x0307);
    return;
  }
  if (cp < 0x80) {
    out->push_back(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
    return;
  }
  if (std::optional<char32_t> hf = overrides::Lowercase(cp)) {
    out->push_back(*hf);
    return;
  }
  out->push_back(static_cast<char32_t>(
      utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
}

namespace {

uint16_t ComputeCharFlags(char32_t cp) {
  uint16_t flags = 0;
  if (cp == 0 || cp == 0xFFFD || IsBertControl(cp)) flags |= kDroppedByClean;
  if (IsBertWhitespace(cp)) flags |= kBertWhitespace;
  if (IsWhiteSpace(cp)) flags |= kWhiteSpace;
  if (IsBertPunctuation(cp)) flags |= kPunctuation;
  if (IsChineseChar(cp)) flags |= kChinese;
  if (IsNonspacingMark(cp)) flags |= kNonspacingMark;
  std::u32string out;
  AppendCanonicalDecomposition(cp, &out);
  if (out != std::u32string(1, cp)) flags |= kDecomposes;
  if (CombiningClass(cp) != 0) flags |= kCombining;
  out.clear();
  AppendLowercase(cp, &out);
  if (out != std::u32string(1, cp)) flags |= kLowercaseChanges;
  return flags;
}

}  // namespace

uint16_t CharFlags(char32_t cp) {
  // Never freed: shared by every tokenizer for the life of the process.
  // Planes 0 to 2 (all scripts in use, emoji, CJK extensions): 384 KiB,
  // filled once on first use. Past them the flags are computed each time.
  constexpr char32_t kTableSize = 0x30000;
  static const uint16_t* const table = [] {
    auto* flags = new uint16_t[kTableSize];
    for (char32_t c = 0; c < kTableSize; ++c) flags[c] = ComputeCharFlags(c);
    return flags;
  }();
  return cp < kTableSize ? table[cp] : ComputeCharFlags(cp);
}

}  // namespace bertserve::tokenizer::unicode
