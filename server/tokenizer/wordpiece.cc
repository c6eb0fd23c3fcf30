#include "server/tokenizer/wordpiece.h"

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {

absl::StatusOr<WordPiece> WordPiece::Create(const Vocab* vocab,
                                            const WordPieceConfig& config) {
  std::optional<int32_t> unk_id = vocab->Find(config.unk_token);
  if (!unk_id.has_value()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown token \"%s\" is not in the vocabulary", config.unk_token));
  }
  if (config.max_input_chars_per_word <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_input_chars_per_word must be positive, got %d",
                        config.max_input_chars_per_word));
  }
  return WordPiece(vocab, config, *unk_id);
}

void WordPiece::Tokenize(std::u32string_view word,
                         std::vector<WordPieceToken>* out) const {
  const size_t n = word.size();
  if (n == 0) return;
  if (n > static_cast<size_t>(config_.max_input_chars_per_word)) {
    out->push_back({unk_id_, 0, n});
    return;
  }
  // Lookups are by UTF-8 bytes; byte_at[i] is where code point i starts.
  std::string bytes;
  std::vector<size_t> byte_at;
  byte_at.reserve(n + 1);
  for (char32_t c : word) {
    byte_at.push_back(bytes.size());
    unicode::AppendUtf8(c, &bytes);
  }
  byte_at.push_back(bytes.size());

  const std::string& prefix = config_.continuing_subword_prefix;
  const size_t first_piece = out->size();
  std::string key;  // prefix + candidate, reused to avoid allocations
  size_t start = 0;
  while (start < n) {
    std::string_view rest = std::string_view(bytes).substr(byte_at[start]);
    if (start > 0) {
      key.assign(prefix);
      key.append(rest);
    }
    bool found = false;
    // Longest match first: shrink the candidate one code point at a time.
    for (size_t end = n; end > start; --end) {
      const size_t length = byte_at[end] - byte_at[start];
      std::optional<int32_t> id;
      if (start == 0) {
        id = vocab_->Find(rest.substr(0, length));
      } else {
        id = vocab_->Find(
            std::string_view(key).substr(0, prefix.size() + length));
      }
      if (id.has_value()) {
        out->push_back({*id, start, end});
        start = end;
        found = true;
        break;
      }
    }
    if (!found) {
      out->resize(first_piece);
      out->push_back({unk_id_, 0, n});
      return;
    }
  }
}

}  // namespace bertserve::tokenizer
