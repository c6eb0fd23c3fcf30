#ifndef BERTSERVE_SERVER_TOKENIZER_BERT_TOKENIZER_H_
#define BERTSERVE_SERVER_TOKENIZER_BERT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace bertserve::tokenizer {

// Settings of the BERT normalizer (Hugging Face tokenizers' BertNormalizer).
struct NormalizerOptions {
  bool clean_text = true;            // drop controls, map whitespace to ' '
  bool handle_chinese_chars = true;  // spaces around CJK ideographs
  std::optional<bool> strip_accents;  // unset: follows lowercase
  bool lowercase = true;
};

// The result of encoding one text or text pair, special tokens included.
// All vectors have the same length.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
  std::vector<int32_t> type_ids;  // 0 first segment (with [CLS] and its [SEP]), 1 pair
  // [start, end) in Unicode code points of the original text of `sequence`;
  // {0, 0} for special tokens.
  std::vector<std::pair<int32_t, int32_t>> offsets;
  std::vector<int32_t> sequence;  // 0 text, 1 pair, -1 special token
  bool truncated = false;         // tokens were dropped to fit max_length
};

// A BERT WordPiece tokenizer that produces what Hugging Face's `tokenizers`
// BertWordPieceTokenizer produces: BertNormalizer, BertPreTokenizer, WordPiece
// ("##" continuation, words over 100 characters to [UNK]) and the BERT
// post-processor ([CLS] A [SEP] B [SEP]) with longest-first truncation.
// Special tokens written literally in the text ("[SEP]") are kept whole, as
// Hugging Face does.
//
// Immutable after creation; Encode is thread-safe.
class BertTokenizer {
 public:
  // vocab.txt: one token per line, the id is the line number.
  static absl::StatusOr<std::unique_ptr<BertTokenizer>> FromVocabFile(
      const std::string& path, const NormalizerOptions& options);
  // tokenizer.json of a WordPiece model; its normalizer settings are used.
  // A tokenizer.json of another model type is refused.
  static absl::StatusOr<std::unique_ptr<BertTokenizer>> FromTokenizerJson(
      const std::string& path);
  // Tokens by id. Must contain [UNK], [CLS], [SEP] and [PAD].
  static absl::StatusOr<std::unique_ptr<BertTokenizer>> FromVocab(
      std::vector<std::string> vocab, const NormalizerOptions& options);

  // Encodes `text` (and `pair` if set). max_length counts special tokens;
  // longer inputs are truncated longest-first when `truncate`, otherwise
  // InvalidArgument. Invalid UTF-8 is InvalidArgument.
  absl::StatusOr<Encoding> Encode(std::string_view text,
                                  std::optional<std::string_view> pair,
                                  int max_length, bool truncate) const;

  // Tokens without special tokens or truncation (the pre-model pipeline).
  absl::StatusOr<std::vector<std::string>> Tokenize(std::string_view text) const;

  int32_t pad_id() const;
  int32_t vocab_size() const;
  const NormalizerOptions& options() const;

  ~BertTokenizer();

 private:
  struct Impl;
  explicit BertTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_BERT_TOKENIZER_H_
