#ifndef BERTSERVE_SERVER_TOKENIZER_WORDPIECE_H_
#define BERTSERVE_SERVER_TOKENIZER_WORDPIECE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "server/tokenizer/vocab.h"

namespace bertserve::tokenizer {

// Settings of the WordPiece model (tokenizer.json's "model" section).
struct WordPieceConfig {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  int max_input_chars_per_word = 100;  // in code points
};

// One piece of a word: its vocabulary id and the part [begin, end) of the
// word it covers, in code points (Tokenize) or bytes (TokenizeUtf8).
struct WordPieceToken {
  int32_t id;
  size_t begin;
  size_t end;
};

// Hugging Face tokenizers' WordPiece model: greedy longest-match-first;
// every piece after the first is looked up with the continuation prefix.
// A word longer than max_input_chars_per_word, or with any part that matches
// nothing, becomes one unk token spanning the whole word.
//
// Lookups never copy: pieces after the first are looked up, without the
// prefix, in a table of the continuation tokens, and candidates longer than
// the longest token are not looked up at all.
//
// Holds a pointer to the vocabulary, which must outlive it. Immutable;
// Tokenize is thread-safe.
class WordPiece {
 public:
  // InvalidArgument when the unk token is not in `vocab` or
  // max_input_chars_per_word is not positive.
  static absl::StatusOr<WordPiece> Create(const Vocab* vocab,
                                          const WordPieceConfig& config);

  // Appends the pieces of `word` (normalized code points) to `out`.
  // An empty word gives no pieces.
  void Tokenize(std::u32string_view word,
                std::vector<WordPieceToken>* out) const;

  // The same for a word in UTF-8; pieces are in bytes of `word`.
  // REQUIRES: `word` is valid UTF-8.
  void TokenizeUtf8(std::string_view word,
                    std::vector<WordPieceToken>* out) const;

  int32_t unk_id() const { return unk_id_; }

 private:
  WordPiece(const Vocab* vocab, const WordPieceConfig& config, int32_t unk_id);

  const Vocab* vocab_;
  WordPieceConfig config_;
  int32_t unk_id_;
  // Ids of the tokens that start with the continuation prefix, by the rest
  // of the token: the id of prefix + key.
  absl::flat_hash_map<std::string, int32_t> continuation_ids_;
  size_t longest_token_ = 0;         // in bytes
  size_t longest_continuation_ = 0;  // in bytes, without the prefix
  // By code point below 0x10000: the id of the token that is that one code
  // point, or -1. A word of one character (every CJK ideograph is one) is
  // looked up here.
  std::vector<int32_t> single_char_ids_;
};

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_WORDPIECE_H_
