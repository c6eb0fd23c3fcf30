#include "server/tokenizer/bert_tokenizer.h"

#include <limits>
#include <optional>
#include <string>
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

  // Buffers reused by each thread's calls, so that a warm tokenizer
  // allocates nothing per word or token beyond its output.
  struct Workspace {
    NormalizedUtf8 normalized;
    std::vector<WordPieceToken> pieces;
  };
  static Workspace& ThreadWorkspace() {
    thread_local Workspace workspace;
    return workspace;
  }

  // Special-token split, normalization, pre-tokenization and WordPiece of
  // one sequence. `what` names it in errors ("text", "pair"). Stops once
  // `out` holds more than `max_tokens` tokens: the tokens so far never change
  // when more text is read, so the first max_tokens are final, and the
  // sequence is known to be longer than that.
  absl::Status Tokenize(std::string_view text, std::string_view what,
                        size_t max_tokens, SequenceTokens* out) const {
    // All of the text is checked, so that an error does not depend on where
    // tokenizing stops.
    if (absl::Status s = unicode::ValidateUtf8(text, what); !s.ok()) return s;
    Workspace& workspace = ThreadWorkspace();
    TokenizeValid(text, max_tokens, &workspace, out);
    // The buffers stay for the thread's next text, unless an unusually long
    // one made them big.
    constexpr size_t kKeptBytes = 1 << 20;
    if (workspace.normalized.bytes.capacity() > kKeptBytes) {
      workspace.normalized = NormalizedUtf8();
    }
    return absl::OkStatus();
  }

  // Tokenize for valid UTF-8.
  void TokenizeValid(std::string_view text, size_t max_tokens,
                     Workspace* workspace, SequenceTokens* out) const {
    size_t pos = 0;        // in bytes
    int32_t index = 0;     // in code points
    while (pos < text.size()) {
      const std::optional<SpecialTokenSplitter::Match> special =
          splitter.FindUtf8(text, pos);
      const size_t plain_end = special.has_value() ? special->begin : text.size();
      if (plain_end > pos) {
        const std::optional<int32_t> length =
            TokenizePlain(text.substr(pos, plain_end - pos), index, max_tokens,
                          workspace, out);
        if (!length.has_value()) return;  // stopped early
        index += *length;
      }
      if (!special.has_value()) break;
      const int32_t length = static_cast<int32_t>(special->length);
      out->ids.push_back(special->id);
      out->offsets.emplace_back(index, index + length);
      if (out->ids.size() > max_tokens) return;
      index += length;
      pos = special->end;
    }
  }

  // Text between special tokens, whose first code point is at `first_index`
  // of the sequence. Returns its length in code points, or nullopt when it
  // stopped because `out` got past max_tokens.
  std::optional<int32_t> TokenizePlain(std::string_view text,
                                       int32_t first_index, size_t max_tokens,
                                       Workspace* workspace,
                                       SequenceTokens* out) const {
    // Normalized a piece at a time, so that a truncated text is only
    // normalized about as far as it is tokenized.
    constexpr size_t kPieceBytes = 256;
    NormalizedUtf8& normalized = workspace->normalized;
    normalized.clear();
    int32_t index = first_index;
    size_t pos = 0;          // in `text`
    size_t scan = 0;         // in normalized.bytes: first byte not looked at
    size_t word = std::string::npos;  // start of the current word, if any
    auto add_word = [&](size_t begin, size_t end) {
      std::vector<WordPieceToken>& pieces = workspace->pieces;
      pieces.clear();
      wordpiece->TokenizeUtf8(
          std::string_view(normalized.bytes).substr(begin, end - begin),
          &pieces);
      for (const WordPieceToken& piece : pieces) {
        out->ids.push_back(piece.id);
        out->offsets.emplace_back(normalized.origins[begin + piece.begin],
                                  normalized.origins[begin + piece.end - 1] + 1);
      }
      return out->ids.size() <= max_tokens;
    };
    while (pos < text.size()) {
      const size_t end = PieceEnd(text, pos + kPieceBytes);
      index += normalizer.AppendUtf8(text.substr(pos, end - pos), index,
                                     &normalized);
      pos = end;
      const std::string_view bytes = normalized.bytes;
      while (scan < bytes.size()) {
        const size_t at = scan;
        const WordBreak kind = WordBreakAt(unicode::NextCodePoint(bytes, &scan));
        if (kind == WordBreak::kNone) {
          if (word == std::string::npos) word = at;
          continue;
        }
        if (word != std::string::npos) {
          if (!add_word(word, at)) return std::nullopt;
          word = std::string::npos;
        }
        if (kind == WordBreak::kPunctuation && !add_word(at, scan)) {
          return std::nullopt;
        }
      }
    }
    if (word != std::string::npos &&
        !add_word(word, normalized.bytes.size())) {
      return std::nullopt;
    }
    return index - first_index;
  }

  // The first byte at or after `from` where `text` can be cut for
  // normalizing in pieces (BertNormalizer::IsPieceBoundary); text.size() if
  // none.
  static size_t PieceEnd(std::string_view text, size_t from) {
    for (size_t i = from; i < text.size(); ++i) {
      const unsigned char byte = static_cast<unsigned char>(text[i]);
      if (byte < 0x80) return i;
      if ((byte & 0xC0) == 0x80) continue;  // inside a code point
      size_t next = i;
      if (BertNormalizer::IsPieceBoundary(unicode::NextCodePoint(text, &next))) {
        return i;
      }
    }
    return text.size();
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
  const size_t budget = static_cast<size_t>(max_length - num_special);
  SequenceTokens first, second;
  auto tokenize = [&](size_t max_tokens) -> absl::Status {
    first = SequenceTokens();
    second = SequenceTokens();
    if (absl::Status s = impl_->Tokenize(text, "text", max_tokens, &first);
        !s.ok()) {
      return s;
    }
    if (!pair.has_value()) return absl::OkStatus();
    return impl_->Tokenize(*pair, "pair", max_tokens, &second);
  };
  // With truncation, a sequence is tokenized only until it is past the
  // budget; what TruncateLongestFirst keeps does not depend on how far past
  // it is, except when both of a pair are past an odd budget: then which
  // one is longer decides who gets the odd token, so both are tokenized
  // whole.
  const size_t unlimited = std::numeric_limits<size_t>::max();
  if (absl::Status s = tokenize(truncate ? budget : unlimited); !s.ok()) {
    return s;
  }
  if (truncate && pair.has_value() && first.ids.size() > budget &&
      second.ids.size() > budget && budget % 2 == 1) {
    if (absl::Status s = tokenize(unlimited); !s.ok()) return s;
  }
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
  if (absl::Status s = impl_->Tokenize(text, "text",
                                       std::numeric_limits<size_t>::max(),
                                       &tokens);
      !s.ok()) {
    return s;
  }
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
