#ifndef BERTSERVE_SERVER_TOKENIZER_VOCAB_H_
#define BERTSERVE_SERVER_TOKENIZER_VOCAB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace bertserve::tokenizer {

// FromTokenIds accepts ids below this: above every BERT-class
// vocabulary (multilingual ones have a few hundred thousand tokens), and
// small enough that a short file naming a huge id cannot make a vocabulary
// allocate gigabytes.
inline constexpr int32_t kTokenIdLimit = 1 << 21;

// A WordPiece vocabulary: tokens and their ids. Immutable once built;
// thread-safe to read. Copyable and movable.
class Vocab {
 public:
  // tokens[i] gets id i. A token listed more than once maps to its last id,
  // as both Hugging Face loaders of vocab.txt do; its earlier ids still name
  // it in Token(). InvalidArgument when `tokens` is empty.
  static absl::StatusOr<Vocab> FromTokens(std::vector<std::string> tokens);

  // From (token, id) pairs, e.g. tokenizer.json's model.vocab. Ids must be
  // non-negative and distinct and tokens distinct; ids may leave gaps (a gap
  // has the empty token), but must be below kTokenIdLimit, as ids are stored
  // densely.
  static absl::StatusOr<Vocab> FromTokenIds(
      const std::vector<std::pair<std::string, int32_t>>& token_ids);

  // The id of `token`, if it is in the vocabulary.
  std::optional<int32_t> Find(std::string_view token) const;

  // The token of `id`. REQUIRES: 0 <= id < size().
  const std::string& Token(int32_t id) const { return tokens_[id]; }

  // One past the largest id (the number of lines of a vocab.txt). With
  // duplicate lines this is more than the number of distinct tokens, which is
  // what Hugging Face's get_vocab_size reports; an embedding table is sized
  // by this number.
  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  Vocab() = default;
  std::vector<std::string> tokens_;                // by id
  absl::flat_hash_map<std::string, int32_t> ids_;  // by token
};

// Reads a vocab.txt: one token per line, the id is the line number (from 0).
// Line ends (\n or \r\n) and other trailing White_Space are removed, as
// Hugging Face's Rust WordPiece::read_file does (`trim_end`). Errors:
// NotFound / InvalidArgument naming the path; InvalidArgument for an empty
// file or a line that is not UTF-8 (naming the line).
absl::StatusOr<std::vector<std::string>> ReadVocabFile(const std::string& path);

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_VOCAB_H_
