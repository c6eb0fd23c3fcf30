#include "server/tokenizer/wordpiece.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

bool IsContinuationByte(char byte) {
  return (static_cast<unsigned char>(byte) & 0xC0) == 0x80;
}

}  // namespace

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

WordPiece::WordPiece(const Vocab* vocab, const WordPieceConfig& config,
                     int32_t unk_id)
    : vocab_(vocab), config_(config), unk_id_(unk_id) {
  const std::string_view prefix = config_.continuing_subword_prefix;
  for (int32_t id = 0; id < vocab_->size(); ++id) {
    const std::string& token = vocab_->Token(id);
    longest_token_ = std::max(longest_token_, token.size());
    if (!token.empty() && token.size() <= 3 &&
        unicode::ValidateUtf8(token, "token").ok()) {
      size_t end = 0;
      const char32_t c = unicode::NextCodePoint(token, &end);
      std::optional<int32_t> token_id = vocab_->Find(token);
      if (end == token.size() && c < 0x10000 && token_id.has_value()) {
        if (single_char_ids_.empty()) single_char_ids_.assign(0x10000, -1);
        single_char_ids_[c] = *token_id;
      }
    }
    if (token.size() < prefix.size() || token.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    // A token listed twice has one id, the one Find gives; a gap in the ids
    // has the empty token, which Find does not know.
    std::optional<int32_t> token_id = vocab_->Find(token);
    if (!token_id.has_value()) continue;
    continuation_ids_.insert_or_assign(token.substr(prefix.size()), *token_id);
    longest_continuation_ =
        std::max(longest_continuation_, token.size() - prefix.size());
  }
}

void WordPiece::Tokenize(std::u32string_view word,
                         std::vector<WordPieceToken>* out) const {
  // Pieces come back in bytes; char_at maps them to code points.
  std::string bytes;
  std::vector<size_t> char_at;
  for (size_t i = 0; i < word.size(); ++i) {
    unicode::AppendUtf8(word[i], &bytes);
    char_at.resize(bytes.size(), i);
  }
  char_at.push_back(word.size());
  const size_t first_piece = out->size();
  TokenizeUtf8(bytes, out);
  for (size_t i = first_piece; i < out->size(); ++i) {
    (*out)[i].begin = char_at[(*out)[i].begin];
    (*out)[i].end = char_at[(*out)[i].end];
  }
}

void WordPiece::TokenizeUtf8(std::string_view word,
                             std::vector<WordPieceToken>* out) const {
  const size_t n = word.size();
  if (n == 0) return;
  const size_t limit = static_cast<size_t>(config_.max_input_chars_per_word);
  // A word of at most `limit` bytes has at most `limit` code points.
  if (n > limit) {
    size_t chars = 0;
    for (char byte : word) chars += IsContinuationByte(byte) ? 0 : 1;
    if (chars > limit) {
      out->push_back({unk_id_, 0, n});
      return;
    }
  }
  const unsigned char lead = static_cast<unsigned char>(word[0]);
  const size_t lead_length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  if (lead_length == n && n <= 3 && !single_char_ids_.empty()) {
    size_t end = 0;
    const int32_t id = single_char_ids_[unicode::NextCodePoint(word, &end)];
    out->push_back({id < 0 ? unk_id_ : id, 0, n});
    return;
  }
  const size_t first_piece = out->size();
  size_t start = 0;
  while (start < n) {
    const size_t longest = start == 0 ? longest_token_ : longest_continuation_;
    // Longest match first: the longest candidate that can be a token, then
    // shrink it one code point at a time.
    size_t end = std::min(n, start + longest);
    while (end < n && IsContinuationByte(word[end])) --end;
    bool found = false;
    while (end > start) {
      const std::string_view candidate = word.substr(start, end - start);
      std::optional<int32_t> id;
      if (start == 0) {
        id = vocab_->Find(candidate);
      } else {
        auto it = continuation_ids_.find(
            absl::string_view(candidate.data(), candidate.size()));
        if (it != continuation_ids_.end()) id = it->second;
      }
      if (id.has_value()) {
        out->push_back({*id, start, end});
        start = end;
        found = true;
        break;
      }
      do {
        --end;
      } while (end > start && IsContinuationByte(word[end]));
    }
    if (!found) {
      out->resize(first_piece);
      out->push_back({unk_id_, 0, n});
      return;
    }
  }
}

}  // namespace bertserve::tokenizer
