#include "server/tokenizer/special_token_splitter.h"

#include <utility>

#include "absl/status/statusor.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {

SpecialTokenSplitter::SpecialTokenSplitter(
    const std::vector<std::pair<std::string, int32_t>>& tokens) {
  for (const auto& [token, id] : tokens) {
    // Tokens come from a vocabulary that was validated as UTF-8 when read.
    absl::StatusOr<std::u32string> chars = unicode::DecodeUtf8(token, "token");
    if (!chars.ok() || chars->empty()) continue;
    utf8_tokens_.push_back({token, chars->size(), id});
    starts_token_[static_cast<unsigned char>(token[0])] = true;
    tokens_.emplace_back(*std::move(chars), id);
  }
}

std::optional<SpecialTokenSplitter::Match> SpecialTokenSplitter::FindUtf8(
    std::string_view text, size_t from) const {
  if (utf8_tokens_.empty()) return std::nullopt;
  // A token's first byte never continues a code point, so byte positions
  // where a token matches are code point starts: matching bytes is matching
  // code points.
  for (size_t i = from; i < text.size(); ++i) {
    if (!starts_token_[static_cast<unsigned char>(text[i])]) continue;
    const Token* best = nullptr;
    for (const Token& token : utf8_tokens_) {
      if ((best == nullptr || token.utf8.size() > best->utf8.size()) &&
          text.compare(i, token.utf8.size(), token.utf8) == 0) {
        best = &token;
      }
    }
    if (best != nullptr) {
      return Match{i, i + best->utf8.size(), best->length, best->id};
    }
  }
  return std::nullopt;
}

std::vector<TextSegment> SpecialTokenSplitter::Split(
    std::u32string_view text) const {
  std::vector<TextSegment> segments;
  size_t plain_start = 0;
  size_t i = 0;
  // A handful of special tokens: comparing each at every position is
  // cheaper than building an automaton, and the first-character test makes
  // most positions a few compares.
  while (i < text.size()) {
    size_t best_length = 0;
    int32_t best_id = -1;
    for (const auto& [token, id] : tokens_) {
      if (token.size() > best_length && text[i] == token[0] &&
          text.substr(i, token.size()) == token) {
        best_length = token.size();
        best_id = id;
      }
    }
    if (best_length == 0) {
      ++i;
      continue;
    }
    if (i > plain_start) segments.push_back({plain_start, i, -1});
    segments.push_back({i, i + best_length, best_id});
    i += best_length;
    plain_start = i;
  }
  if (text.size() > plain_start) {
    segments.push_back({plain_start, text.size(), -1});
  }
  return segments;
}

}  // namespace bertserve::tokenizer
