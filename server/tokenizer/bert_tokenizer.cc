#include "server/tokenizer/bert_tokenizer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/tokenizer/normalizer.h"
#include "server/tokenizer/pre_tokenizer.h"
#include "server/tokenizer/special_token_splitter.h"
#include "server/tokenizer/tokenizer_json.h"
#include "server/tokenizer/truncation.h"
#include "server/tokenizer/unicode.h"
#include "server/tokenizer/vocab.h"
#include "server/tokenizer/wordpiece.h"

namespace bertserve::tokenizer {
namespace {

using TokenIds = std::vector<std::pair<std::string, int32_t>>;

// The tokens of one sequence before post-processing.
struct SequenceTokens {
  std::vector<int32_t> ids;
  std::vector<std::pair<int32_t, int32_t>> offsets;  // code points, original
};

absl::Status WithPath(const absl::Status& status, const std::string& path) {
  return absl::Status(status.code(),
                      absl::StrCat(path, ": ", status.message()));
}

// BertWordPieceTokenizer registers these as special tokens when the vocab
// has them.
TokenIds DefaultSpecialTokens(const Vocab& vocab) {
  TokenIds specials;
  for (const char* token : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    if (std::optional<int32_t> id = vocab.Find(token)) {
      specials.emplace_back(token, *id);
    }
  }
  return specials;
}

}  // namespace

struct BertTokenizer::Impl {
  struct Settings {
    NormalizerOptions options;
    WordPieceConfig wordpiece;
    TokenIds special_tokens;  // matched literally in raw text
    std::pair<std::string, int32_t> cls;
    std::pair<std::string, int32_t> sep;
    int32_t pad_id;
  };

  Impl(Vocab vocab_in, Settings settings_in)
      : vocab(std::move(vocab_in)),
        settings(std::move(settings_in)),
        normalizer(settings.options),
        splitter(settings.special_tokens) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  static absl::StatusOr<std::unique_ptr<Impl>> Create(Vocab vocab,
                                                      Settings settings) {
    for (const auto* token : {&settings.cls, &settings.sep}) {
      if (token->second < 0 || token->second >= vocab.size()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "special token \"%s\" is not in the vocabulary", token->first));
      }
    }
    if (settings.pad_id < 0 || settings.pad_id >= vocab.size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "pad id %d is not in the vocabulary", settings.pad_id));
    }
    auto impl = std::make_unique<Impl>(std::move(vocab), std::move(settings));
    // WordPiece points at impl->vocab, so it is made once impl has its
    // final address.
    absl::StatusOr<WordPiece> wordpiece =
        WordPiece::Create(&impl->vocab, impl->settings.wordpiece);
    if (!wordpiece.ok()) return wordpiece.status();
    impl->wordpiece.emplace(*std::move(wordpiece));
    return impl;
  }

  // Special-token split, normalization, pre-tokenization and WordPiece of
  // one sequence. `what` names it in errors ("text", "pair").
  absl::Status Tokenize(std::string_view text, std::string_view what,
                        SequenceTokens* out) const {
    absl::StatusOr<std::u32string> chars = unicode::DecodeUtf8(text, what);
    if (!chars.ok()) return chars.status();
    const std::u32string_view all(*chars);
    std::vector<WordPieceToken> pieces;
    for (const TextSegment& segment : splitter.Split(all)) {
      if (segment.special_id >= 0) {
        out->ids.push_back(segment.special_id);
        out->offsets.emplace_back(segment.begin, segment.end);
        continue;
      }
      const NormalizedText normalized = normalizer.Normalize(
          all.substr(segment.begin, segment.end - segment.begin),
          static_cast<int32_t>(segment.begin));
      const std::u32string_view chars_view(normalized.chars);
      for (const WordSpan& word : PreTokenize(chars_view)) {
        pieces.clear();
        wordpiece->Tokenize(
            chars_view.substr(word.begin, word.end - word.begin), &pieces);
        for (const WordPieceToken& piece : pieces) {
          out->ids.push_back(piece.id);
          out->offsets.emplace_back(
              normalized.origins[word.begin + piece.begin],
              normalized.origins[word.begin + piece.end - 1] + 1);
        }
      }
    }
    return absl::OkStatus();
  }

  Vocab vocab;
  Settings settings;
  BertNormalizer normalizer;
  SpecialTokenSplitter splitter;
  std::optional<WordPiece> wordpiece;  // set by Create
};

BertTokenizer::BertTokenizer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
BertTokenizer::~BertTokenizer() = default;

absl::StatusOr<std::unique_ptr<BertTokenizer>> BertTokenizer::FromVocab(
    std::vector<std::string> tokens, const NormalizerOptions& options) {
  absl::StatusOr<Vocab> vocab = Vocab::FromTokens(std::move(tokens));
  if (!vocab.ok()) return vocab.status();
  std::vector<std::string> missing;
  for (const char* token : {"[UNK]", "[CLS]", "[SEP]", "[PAD]"}) {
    if (!vocab->Find(token).has_value()) missing.push_back(token);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vocabulary lacks required tokens: ", absl::StrJoin(missing, " ")));
  }
  Impl::Settings settings;
  settings.options = options;
  settings.special_tokens = DefaultSpecialTokens(*vocab);
  settings.cls = {"[CLS]", *vocab->Find("[CLS]")};
  settings.sep = {"[SEP]", *vocab->Find("[SEP]")};
  settings.pad_id = *vocab->Find("[PAD]");
  absl::StatusOr<std::unique_ptr<Impl>> impl =
      Impl::Create(*std::move(vocab), std::move(settings));
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<BertTokenizer>(new BertTokenizer(*std::move(impl)));
}

absl::StatusOr<std::unique_ptr<BertTokenizer>> BertTokenizer::FromVocabFile(
    const std::string& path, const NormalizerOptions& options) {
  absl::StatusOr<std::vector<std::string>> tokens = ReadVocabFile(path);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      FromVocab(*std::move(tokens), options);
  if (!tokenizer.ok()) return WithPath(tokenizer.status(), path);
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<BertTokenizer>> BertTokenizer::FromTokenizerJson(
    const std::string& path) {
  absl::StatusOr<TokenizerJson> json = ReadTokenizerJson(path);
  if (!json.ok()) return json.status();
  // Added tokens outside the model's vocabulary join it, so that every id
  // the tokenizer can produce has a token.
  TokenIds token_ids = json->vocab;
  {
    absl::StatusOr<Vocab> model_vocab = Vocab::FromTokenIds(token_ids);
    if (!model_vocab.ok()) return WithPath(model_vocab.status(), path);
    for (const auto& [token, id] : json->added_tokens.value_or(TokenIds())) {
      std::optional<int32_t> known = model_vocab->Find(token);
      if (known.has_value() && *known != id) {
        return WithPath(
            absl::InvalidArgumentError(absl::StrFormat(
                "added token \"%s\" has id %d but the vocabulary gives it %d",
                token, id, *known)),
            path);
      }
      if (!known.has_value()) token_ids.emplace_back(token, id);
    }
  }
  absl::StatusOr<Vocab> vocab = Vocab::FromTokenIds(token_ids);
  if (!vocab.ok()) return WithPath(vocab.status(), path);

  Impl::Settings settings;
  settings.options = json->normalizer;
  settings.wordpiece = json->wordpiece;
  settings.special_tokens =
      json->added_tokens.value_or(DefaultSpecialTokens(*vocab));
  settings.cls = json->cls;
  settings.sep = json->sep;
  for (auto* token : {&settings.cls, &settings.sep}) {
    if (token->second < 0)
      token->second = vocab->Find(token->first).value_or(-1);
  }
  settings.pad_id = json->pad_id.value_or(vocab->Find("[PAD]").value_or(-1));
  absl::StatusOr<std::unique_ptr<Impl>> impl =
      Impl::Create(*std::move(vocab), std::move(settings));
  if (!impl.ok()) return WithPath(impl.status(), path);
  return std::unique_ptr<BertTokenizer>(new BertTokenizer(*std::move(impl)));
}

absl::StatusOr<Encoding> BertTokenizer::Encode(
    std::string_view text, std::optional<std::string_view> pair, int max_length,
    bool truncate) const {
  const int num_special = pair.has_value() ? 3 : 2;
  if (max_length < num_special) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "max_length %d is less than the %d special tokens a %s needs",
        max_length, num_special, pair.has_value() ? "pair" : "single text"));
  }
  SequenceTokens first, second;
  if (absl::Status s = impl_->Tokenize(text, "text", &first); !s.ok()) return s;
  if (pair.has_value()) {
    if (absl::Status s = impl_->Tokenize(*pair, "pair", &second); !s.ok()) {
      return s;
    }
  }
  const size_t budget = static_cast<size_t>(max_length - num_special);
  const size_t total = first.ids.size() + second.ids.size();
  Encoding encoding;
  if (total > budget) {
    if (!truncate) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "input is %d tokens long (%d of them special) but max_length is %d; "
          "shorten it or allow truncation",
          total + num_special, num_special, max_length));
    }
    PairLengths keep =
        pair.has_value()
            ? TruncateLongestFirst(first.ids.size(), second.ids.size(), budget)
            : PairLengths{budget, 0};
    first.ids.resize(keep.first);
    first.offsets.resize(keep.first);
    second.ids.resize(keep.second);
    second.offsets.resize(keep.second);
    encoding.truncated = true;
  }

  const Impl::Settings& settings = impl_->settings;
  const size_t size = first.ids.size() + second.ids.size() + num_special;
  encoding.ids.reserve(size);
  encoding.tokens.reserve(size);
  encoding.type_ids.reserve(size);
  encoding.offsets.reserve(size);
  encoding.sequence.reserve(size);
  auto add = [&](int32_t id, const std::string& token, int32_t type_id,
                 std::pair<int32_t, int32_t> offsets, int32_t sequence) {
    encoding.ids.push_back(id);
    encoding.tokens.push_back(token);
    encoding.type_ids.push_back(type_id);
    encoding.offsets.push_back(offsets);
    encoding.sequence.push_back(sequence);
  };
  auto add_sequence = [&](const SequenceTokens& tokens, int32_t index) {
    for (size_t i = 0; i < tokens.ids.size(); ++i) {
      add(tokens.ids[i], impl_->vocab.Token(tokens.ids[i]), index,
          tokens.offsets[i], index);
    }
    add(settings.sep.second, settings.sep.first, index, {0, 0}, -1);
  };
  add(settings.cls.second, settings.cls.first, 0, {0, 0}, -1);
  add_sequence(first, 0);
  if (pair.has_value()) add_sequence(second, 1);
  return encoding;
}

absl::StatusOr<std::vector<std::string>> BertTokenizer::Tokenize(
    std::string_view text) const {
  SequenceTokens tokens;
  if (absl::Status s = impl_->Tokenize(text, "text", &tokens); !s.ok())
    return s;
  std::vector<std::string> out;
  out.reserve(tokens.ids.size());
  for (int32_t id : tokens.ids) out.push_back(impl_->vocab.Token(id));
  return out;
}

int32_t BertTokenizer::pad_id() const { return impl_->settings.pad_id; }
int32_t BertTokenizer::vocab_size() const { return impl_->vocab.size(); }
const NormalizerOptions& BertTokenizer::options() const {
  return impl_->settings.options;
}

}  // namespace bertserve::tokenizer
