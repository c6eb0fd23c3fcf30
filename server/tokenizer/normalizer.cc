#include "server/tokenizer/normalizer.h"

#include <utility>

#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

void Push(char32_t c, int32_t origin, NormalizedText* out) {
  out->chars.push_back(c);
  out->origins.push_back(origin);
}

// Steps 1 and 2 look at one character at a time, so they share a pass.
NormalizedText CleanAndSpaceCjk(std::u32string_view text, int32_t first_index,
                                bool clean_text, bool handle_chinese_chars) {
  NormalizedText out;
  out.chars.reserve(text.size());
  out.origins.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char32_t c = text[i];
    const int32_t origin = first_index + static_cast<int32_t>(i);
    if (clean_text) {
      // Removal comes before the whitespace mapping, as in Rust, so a
      // control that is also White_Space (U+000B, U+000C, U+0085) is dropped
      // rather than turned into a space.
      if (c == 0 || c == 0xFFFD || unicode::IsBertControl(c)) continue;
      if (unicode::IsBertWhitespace(c)) c = U' ';
    }
    if (handle_chinese_chars && unicode::IsChineseChar(c)) {
      // The inserted spaces only separate words and never end up inside a
      // token, so which character they are attributed to does not matter.
      Push(U' ', origin, &out);
      Push(c, origin, &out);
      Push(U' ', origin, &out);
    } else {
      Push(c, origin, &out);
    }
  }
  return out;
}

// NFD of the whole text, then drop nonspacing marks. Reordering has to see
// the whole text (marks of adjacent original characters can swap) and has to
// happen before marks are dropped, because dropping a mark of class 0 would
// join two reorderable runs.
NormalizedText StripAccents(const NormalizedText& in) {
  NormalizedText nfd;
  std::vector<int> classes;
  nfd.chars.reserve(in.chars.size());
  std::u32string parts;
  for (size_t i = 0; i < in.chars.size(); ++i) {
    parts.clear();
    unicode::AppendCanonicalDecomposition(in.chars[i], &parts);
    for (char32_t c : parts) {
      Push(c, in.origins[i], &nfd);
      classes.push_back(unicode::CombiningClass(c));
    }
  }
  // Canonical ordering: a stable sort by combining class of each run of
  // non-starters. Runs are short, so insertion sort.
  const size_t n = nfd.chars.size();
  for (size_t i = 1; i < n; ++i) {
    for (size_t j = i; j > 0 && classes[j] != 0 && classes[j - 1] > classes[j];
         --j) {
      std::swap(classes[j], classes[j - 1]);
      std::swap(nfd.chars[j], nfd.chars[j - 1]);
      std::swap(nfd.origins[j], nfd.origins[j - 1]);
    }
  }
  NormalizedText out;
  out.chars.reserve(n);
  out.origins.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!unicode::IsNonspacingMark(nfd.chars[i])) {
      Push(nfd.chars[i], nfd.origins[i], &out);
    }
  }
  return out;
}

NormalizedText Lowercase(const NormalizedText& in) {
  NormalizedText out;
  out.chars.reserve(in.chars.size());
  out.origins.reserve(in.chars.size());
  std::u32string lower;
  for (size_t i = 0; i < in.chars.size(); ++i) {
    lower.clear();
    unicode::AppendLowercase(in.chars[i], &lower);
    for (char32_t c : lower) Push(c, in.origins[i], &out);
  }
  return out;
}

}  // namespace

BertNormalizer::BertNormalizer(const NormalizerOptions& options)
    : clean_text_(options.clean_text),
      handle_chinese_chars_(options.handle_chinese_chars),
      strip_accents_(options.strip_accents.value_or(options.lowercase)),
      lowercase_(options.lowercase) {}

NormalizedText BertNormalizer::Normalize(std::u32string_view text,
                                         int32_t first_index) const {
  NormalizedText out =
      CleanAndSpaceCjk(text, first_index, clean_text_, handle_chinese_chars_);
  if (strip_accents_) out = StripAccents(out);
  if (lowercase_) out = Lowercase(out);
  return out;
}

}  // namespace bertserve::tokenizer
