#ifndef BERTSERVE_SERVER_TOKENIZER_TOKENIZER_JSON_H_
#define BERTSERVE_SERVER_TOKENIZER_TOKENIZER_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/tokenizer/bert_tokenizer.h"
#include "server/tokenizer/wordpiece.h"

namespace bertserve::tokenizer {

// What bertserve takes from a Hugging Face tokenizer.json.
struct TokenizerJson {
  std::vector<std::pair<std::string, int32_t>> vocab;  // model.vocab
  WordPieceConfig wordpiece;
  NormalizerOptions normalizer;
  // added_tokens, matched literally in raw text; unset when the file has no
  // "added_tokens" key (then the usual BERT specials in the vocab are used).
  std::optional<std::vector<std::pair<std::string, int32_t>>> added_tokens;
  // From the post-processor.
  std::pair<std::string, int32_t> cls = {"[CLS]", -1};  // -1: look up in vocab
  std::pair<std::string, int32_t> sep = {"[SEP]", -1};
  std::optional<int32_t> pad_id;  // padding.pad_id, if the file sets padding
};

// Parses the tokenizer.json at `path`. Accepted: model WordPiece; normalizer
// BertNormalizer or none; pre_tokenizer BertPreTokenizer; post_processor
// BertProcessing or a TemplateProcessing with the BERT template
// ([CLS] $A [SEP], [CLS] $A [SEP] $B:1 [SEP]:1); added tokens that are not
// normalized and have no lstrip/rstrip/single_word. Anything else is
// refused, naming the file and the offending part: another model type
// ("BPE", "Unigram", ...) is FailedPrecondition, a malformed file
// InvalidArgument, a missing file NotFound. "decoder", "truncation" and
// the rest of "padding" are ignored (Encode's arguments decide those).
absl::StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path);

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_TOKENIZER_JSON_H_
