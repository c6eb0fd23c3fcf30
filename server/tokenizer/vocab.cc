#include "server/tokenizer/vocab.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/tokenizer/text_file.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {

absl::StatusOr<Vocab> Vocab::FromTokens(std::vector<std::string> tokens) {
  if (tokens.empty()) {
    return absl::InvalidArgumentError("vocabulary is empty");
  }
  Vocab vocab;
  vocab.ids_.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    // insert_or_assign: a later duplicate wins, like Rust's HashMap::insert
    // in WordPiece::read_file and the Python load_vocab.
    vocab.ids_.insert_or_assign(tokens[id], static_cast<int32_t>(id));
  }
  vocab.tokens_ = std::move(tokens);
  return vocab;
}

absl::StatusOr<Vocab> Vocab::FromTokenIds(
    const std::vector<std::pair<std::string, int32_t>>& token_ids) {
  if (token_ids.empty()) {
    return absl::InvalidArgumentError("vocabulary is empty");
  }
  int32_t max_id = -1;
  for (const auto& [token, id] : token_ids) {
    if (id < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token \"%s\" has negative id %d", token, id));
    }
    if (id >= kTokenIdLimit) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token \"%s\" has id %d; ids must be below %d",
                          token, id, kTokenIdLimit));
    }
    max_id = std::max(max_id, id);
  }
  Vocab vocab;
  vocab.tokens_.resize(static_cast<size_t>(max_id) + 1);
  std::vector<bool> used(vocab.tokens_.size(), false);
  vocab.ids_.reserve(token_ids.size());
  for (const auto& [token, id] : token_ids) {
    if (used[id]) {
      return absl::InvalidArgumentError(
          absl::StrFormat("id %d is given to both \"%s\" and \"%s\"", id,
                          vocab.tokens_[id], token));
    }
    if (!vocab.ids_.emplace(token, id).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token \"%s\" is listed twice", token));
    }
    used[id] = true;
    vocab.tokens_[id] = token;
  }
  return vocab;
}

std::optional<int32_t> Vocab::Find(std::string_view token) const {
  // absl::string_view is not std::string_view in this Abseil build.
  auto it = ids_.find(absl::string_view(token.data(), token.size()));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<std::string>> ReadVocabFile(
    const std::string& path) {
  absl::StatusOr<std::string> contents = ReadTextFile(path, "vocab file");
  if (!contents.ok()) return contents.status();
  if (contents->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab file is empty: ", path));
  }
  std::vector<std::string> tokens;
  std::string_view rest = *contents;
  while (!rest.empty()) {
    const size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view()
                                             : rest.substr(newline + 1);
    const std::string what =
        absl::StrCat("line ", tokens.size() + 1, " of vocab file ", path);
    absl::StatusOr<std::u32string> chars = unicode::DecodeUtf8(line, what);
    if (!chars.ok()) return chars.status();
    size_t keep = chars->size();
    while (keep > 0 && unicode::IsWhiteSpace((*chars)[keep - 1])) --keep;
    tokens.push_back(
        unicode::EncodeUtf8(std::u32string_view(*chars).substr(0, keep)));
  }
  return tokens;
}

}  // namespace bertserve::tokenizer
