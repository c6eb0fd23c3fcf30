#ifndef BERTSERVE_SERVER_TOKENIZER_SPECIAL_TOKEN_SPLITTER_H_
#define BERTSERVE_SERVER_TOKENIZER_SPECIAL_TOKEN_SPLITTER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bertserve::tokenizer {

// A run of original text, [begin, end) in code points: a special token
// written literally (special_id >= 0) or plain text (special_id == -1).
struct TextSegment {
  size_t begin;
  size_t end;
  int32_t special_id;
};

// Finds special tokens ("[SEP]", "[MASK]", ...) written literally in raw,
// not yet normalized text, the way Hugging Face's AddedVocabulary does for
// special tokens (normalized = false, no lstrip/rstrip/single_word): exact,
// case-sensitive, anywhere (also inside a word), leftmost-longest.
// Immutable; Split is thread-safe.
class SpecialTokenSplitter {
 public:
  // (token, id) pairs; empty tokens are ignored.
  explicit SpecialTokenSplitter(
      const std::vector<std::pair<std::string, int32_t>>& tokens);

  // Covers `text` with segments in order, without gaps; plain segments are
  // never empty, and no two plain segments are adjacent.
  std::vector<TextSegment> Split(std::u32string_view text) const;

  // A special token found in UTF-8 text.
  struct Match {
    size_t begin;   // in bytes
    size_t end;     // in bytes
    size_t length;  // in code points
    int32_t id;
  };
  // The first special token in `text` at or after byte `from`, as Split
  // would find it; nullopt when there is none.
  // REQUIRES: `text` is valid UTF-8 and `from` starts a code point.
  std::optional<Match> FindUtf8(std::string_view text, size_t from) const;

 private:
  struct Token {
    std::string utf8;
    size_t length;  // in code points
    int32_t id;
  };
  std::vector<std::pair<std::u32string, int32_t>> tokens_;
  std::vector<Token> utf8_tokens_;
  bool starts_token_[256] = {};  // first bytes of the tokens
};

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_SPECIAL_TOKEN_SPLITTER_H_
