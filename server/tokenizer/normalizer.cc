#include "server/tokenizer/normalizer.h"

#include <utility>

#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

// A code point of the NFD of a run of text, waiting for canonical ordering.
struct Decomposed {
  char32_t c;
  int combining_class;
  bool first;  // first code point of its character's decomposition
};

// Scratch of StripAccents, reused by each thread so that normalizing
// allocates nothing once warm.
struct StripScratch {
  std::vector<Decomposed> run;
  std::vector<int32_t> origins;  // of the characters decomposed into `run`
  std::u32string parts;
  std::u32string lower;
};

StripScratch& ThreadStripScratch() {
  thread_local StripScratch scratch;
  return scratch;
}

// The normalization steps for one character at a time; `emit(c, origin)`
// receives the normalized code points. The steps after clean_text and the CJK
// spaces (NFD, strip, lowercase) run on runs of text ended by Flush(): NFD
// has to see a whole run of marks to put it in canonical order.
template <typename Emit>
class Pipeline {
 public:
  Pipeline(bool clean_text, bool handle_chinese_chars, bool strip_accents,
           bool lowercase, Emit emit)
      : clean_text_(clean_text),
        handle_chinese_chars_(handle_chinese_chars),
        strip_accents_(strip_accents),
        lowercase_(lowercase),
        emit_(std::move(emit)),
        scratch_(ThreadStripScratch()) {
    scratch_.run.clear();
    scratch_.origins.clear();
  }

  // Steps 1 and 2 look at one character at a time.
  void Add(char32_t c, int32_t origin) {
    uint16_t flags = unicode::CharFlags(c);
    if (clean_text_) {
      // Removal comes before the whitespace mapping, as in Rust, so a
      // control that is also White_Space (U+000B, U+000C, U+0085) is dropped
      // rather than turned into a space.
      if (flags & unicode::kDroppedByClean) return;
      if (flags & unicode::kBertWhitespace) {
        c = U' ';
        flags = unicode::CharFlags(c);
      }
    }
    constexpr uint16_t kChanged = unicode::kDecomposes | unicode::kCombining |
                                  unicode::kNonspacingMark |
                                  unicode::kLowercaseChanges;
    if (!(flags & kChanged)) {
      // Most characters (CJK among them): a starter that the later steps
      // leave as it is, and that nothing pending reorders past.
      Flush();
      if (handle_chinese_chars_ && (flags & unicode::kChinese)) {
        emit_(U' ', origin);
        emit_(c, origin);
        emit_(U' ', origin);
      } else {
        emit_(c, origin);
      }
      return;
    }
    if (handle_chinese_chars_ && (flags & unicode::kChinese)) {
      // The inserted spaces only separate words and never end up inside a
      // token, so which character they are attributed to does not matter.
      Decompose(U' ', origin);
      Decompose(c, origin);
      Decompose(U' ', origin);
    } else {
      Decompose(c, origin);
    }
  }

  // Steps 3 and 4 for everything added since the last Flush.
  void Flush() {
    if (HasPending()) FlushRun();
  }
  bool HasPending() const { return !scratch_.run.empty(); }

 private:
  void FlushRun() {
    std::vector<Decomposed>& run = scratch_.run;
    // Canonical ordering: a stable sort by combining class of each run of
    // non-starters. Runs are short, so insertion sort.
    for (size_t i = 1; i < run.size(); ++i) {
      for (size_t j = i; j > 0 && run[j].combining_class != 0 &&
                         run[j - 1].combining_class > run[j].combining_class;
           --j) {
        std::swap(run[j], run[j - 1]);
      }
    }
    // Hugging Face aligns NFD's output by position, not by character: the
    // first code point of a decomposition takes the origin of the next
    // input character, the others that of the last one taken. With marks
    // reordered, a mark can so take its neighbour's origin.
    size_t next = 0;
    for (const Decomposed& d : run) {
      const int32_t origin = d.first ? scratch_.origins[next++]
                                     : scratch_.origins[next - 1];
      if (!(unicode::CharFlags(d.c) & unicode::kNonspacingMark)) {
        Lowercase(d.c, origin);
      }
    }
    run.clear();
    scratch_.origins.clear();
  }

  void Decompose(char32_t c, int32_t origin) {
    if (!strip_accents_) {
      Lowercase(c, origin);
      return;
    }
    const uint16_t flags = unicode::CharFlags(c);
    if (!(flags & (unicode::kDecomposes | unicode::kCombining))) {
      // A starter that stays as it is: nothing reorders past it.
      Flush();
      if (!(flags & unicode::kNonspacingMark)) Lowercase(c, origin);
      return;
    }
    std::u32string& parts = scratch_.parts;
    parts.clear();
    unicode::AppendCanonicalDecomposition(c, &parts);
    // What came before a starter is never reordered past it.
    if (!(unicode::CharFlags(parts[0]) & unicode::kCombining)) Flush();
    scratch_.origins.push_back(origin);
    for (size_t i = 0; i < parts.size(); ++i) {
      const bool combining = unicode::CharFlags(parts[i]) & unicode::kCombining;
      scratch_.run.push_back(
          {parts[i], combining ? unicode::CombiningClass(parts[i]) : 0, i == 0});
    }
  }

  void Lowercase(char32_t c, int32_t origin) {
    if (!lowercase_) {
      emit_(c, origin);
      return;
    }
    if (!(unicode::CharFlags(c) & unicode::kLowercaseChanges)) {
      emit_(c, origin);
      return;
    }
    std::u32string& lower = scratch_.lower;
    lower.clear();
    unicode::AppendLowercase(c, &lower);
    for (char32_t l : lower) emit_(l, origin);
  }

  const bool clean_text_;
  const bool handle_chinese_chars_;
  const bool strip_accents_;
  const bool lowercase_;
  Emit emit_;
  StripScratch& scratch_;
};

template <typename Emit>
Pipeline<Emit> MakePipeline(const NormalizerOptions& options, Emit emit) {
  return Pipeline<Emit>(options.clean_text, options.handle_chinese_chars,
                        options.strip_accents.value_or(options.lowercase),
                        options.lowercase, std::move(emit));
}

}  // namespace

BertNormalizer::BertNormalizer(const NormalizerOptions& options)
    : clean_text_(options.clean_text),
      handle_chinese_chars_(options.handle_chinese_chars),
      strip_accents_(options.strip_accents.value_or(options.lowercase)),
      lowercase_(options.lowercase) {}

NormalizedText BertNormalizer::Normalize(std::u32string_view text,
                                         int32_t first_index) const {
  NormalizedText out;
  out.chars.reserve(text.size());
  out.origins.reserve(text.size());
  Pipeline pipeline(clean_text_, handle_chinese_chars_, strip_accents_,
                    lowercase_, [&out](char32_t c, int32_t origin) {
                      out.chars.push_back(c);
                      out.origins.push_back(origin);
                    });
  for (size_t i = 0; i < text.size(); ++i) {
    pipeline.Add(text[i], first_index + static_cast<int32_t>(i));
  }
  pipeline.Flush();
  return out;
}

int32_t BertNormalizer::AppendUtf8(std::string_view text, int32_t first_index,
                                   NormalizedUtf8* out) const {
  Pipeline pipeline(clean_text_, handle_chinese_chars_, strip_accents_,
                    lowercase_, [out](char32_t c, int32_t origin) {
                      const size_t size = out->bytes.size();
                      unicode::AppendUtf8(c, &out->bytes);
                      for (size_t i = size; i < out->bytes.size(); ++i) {
                        out->origins.push_back(origin);
                      }
                    });
  int32_t index = first_index;
  size_t pos = 0;
  while (pos < text.size()) {
    const unsigned char byte = static_cast<unsigned char>(text[pos]);
    if (byte < 0x80) {
      // ASCII, most of most text: no decomposition, no marks, no CJK, and a
      // starter, so what is pending can be flushed.
      if (pipeline.HasPending()) pipeline.Flush();
      ++pos;
      char c = static_cast<char>(byte);
      if (clean_text_) {
        if (byte < 0x20 || byte == 0x7F) {
          if (byte != '\t' && byte != '\n' && byte != '\r') {
            ++index;
            continue;
          }
          c = ' ';
        }
      }
      if (lowercase_ && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      out->bytes.push_back(c);
      out->origins.push_back(index);
      ++index;
      continue;
    }
    pipeline.Add(unicode::NextCodePoint(text, &pos), index);
    ++index;
  }
  pipeline.Flush();
  return index - first_index;
}

}  // namespace bertserve::tokenizer
