// BertTokenizer::Encode on any text, with and without a pair, at any
// max_length, truncating or not, under every normalizer setting, against
// what bert_tokenizer.h promises: the status follows from the inputs alone;
// an encoding is [CLS] A [SEP] (B [SEP]) with the tokens Tokenize gives for
// each sequence (cut longest-first to exactly max_length when truncated),
// aligned vectors, type ids 0 then 1, and offsets inside each text in order.
//
// Input: byte 0 picks the normalizer settings, byte 1 holds flags (bit 0: a
// pair follows, bit 1: truncate), byte 2 is max_length; the rest is the text,
// and with a pair, everything after its first 0xFF byte is the pair.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/tokenizer/bert_tokenizer.h"
#include "server/tokenizer/unicode.h"
#include "tests/fuzz/fuzz_check.h"

namespace bertserve::tokenizer {
namespace {

// Enough of a vocabulary that most words reach WordPiece's inner loop: every
// ASCII letter and digit alone and as a continuation, punctuation, some whole
// words and pieces, accented and CJK characters.
std::vector<std::string> FuzzVocab() {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (char c = 'a'; c <= 'z'; ++c) {
    vocab.push_back(std::string(1, c));
    vocab.push_back("##" + std::string(1, c));
  }
  for (char c = 'A'; c <= 'Z'; ++c) vocab.push_back(std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) {
    vocab.push_back(std::string(1, c));
    vocab.push_back("##" + std::string(1, c));
  }
  for (char c : std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) {
    vocab.push_back(std::string(1, c));
  }
  for (const char* token :
       {"the", "hello", "world", "un", "##aff", "##able", "##ing", "##ed", "##s", "na",
        "##ive", "\xc3\xa9", "##\xc3\xa9", "caf", "\xc3\xbc", "##\xc3\xbc", "\xc3\x9f",
        "\xe4\xb8\xad", "\xe5\x9b\xbd", "\xe6\x97\xa5", "\xe6\x9c\xac", "\xce\xb1",
        "##\xce\xb1", "\xd0\xb4", "##\xd0\xb4", "\xf0\x9f\x98\x80"}) {
    vocab.push_back(token);
  }
  return vocab;
}

// lowercase x strip_accents (unset, false, true) x clean_text x
// handle_chinese_chars.
constexpr int kSettings = 2 * 3 * 2 * 2;

struct Tokenizers {
  std::vector<std::string> vocab = FuzzVocab();
  std::unique_ptr<BertTokenizer> by_settings[kSettings];

  Tokenizers() {
    for (int i = 0; i < kSettings; ++i) {
      NormalizerOptions options;
      options.lowercase = (i & 1) != 0;
      const int strip = (i / 2) % 3;
      if (strip > 0) options.strip_accents = strip == 2;
      options.clean_text = (i / 6) % 2 != 0;
      options.handle_chinese_chars = (i / 12) % 2 != 0;
      absl::StatusOr<std::unique_ptr<BertTokenizer>> t = BertTokenizer::FromVocab(vocab, options);
      BERTSERVE_FUZZ_CHECK(t.ok(), "%s", std::string(t.status().message()).c_str());
      by_settings[i] = *std::move(t);
    }
  }
};

size_t CodePoints(std::string_view text) {
  absl::StatusOr<std::u32string> chars = unicode::DecodeUtf8(text, "text");
  return chars.ok() ? chars->size() : 0;
}

// Checks the tokens of sequence `index` (0 text, 1 pair) in `e` from
// position `*at` against `expected` cut to `keep`, then its [SEP].
void CheckSequence(const Encoding& e, size_t* at, int32_t index,
                   const std::vector<std::string>& expected, size_t keep, size_t length) {
  int32_t last_start = 0;
  for (size_t k = 0; k < keep; ++k, ++*at) {
    const size_t i = *at;
    BERTSERVE_FUZZ_CHECK(e.tokens[i] == expected[k], "token %zu: \"%s\" vs Tokenize's \"%s\"", i,
                         e.tokens[i].c_str(), expected[k].c_str());
    BERTSERVE_FUZZ_CHECK(e.sequence[i] == index && e.type_ids[i] == index,
                         "token %zu: sequence %d type %d", i, e.sequence[i], e.type_ids[i]);
    const auto [start, end] = e.offsets[i];
    BERTSERVE_FUZZ_CHECK(0 <= start && start < end && static_cast<size_t>(end) <= length,
                         "token %zu: offsets [%d, %d) in %zu code points", i, start, end, length);
    BERTSERVE_FUZZ_CHECK(start >= last_start, "token %zu starts at %d, before %d", i, start,
                         last_start);
    last_start = start;
  }
  const size_t sep = (*at)++;
  BERTSERVE_FUZZ_CHECK(e.tokens[sep] == "[SEP]" && e.ids[sep] == 3 && e.sequence[sep] == -1 &&
                           e.type_ids[sep] == index && e.offsets[sep] == std::make_pair(0, 0),
                       "token %zu is not the [SEP] of sequence %d", sep, index);
}

}  // namespace
}  // namespace bertserve::tokenizer

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bertserve::tokenizer;  // NOLINT
  static const Tokenizers* const tokenizers = new Tokenizers();
  if (size < 3) return 0;
  const BertTokenizer& tokenizer = *tokenizers->by_settings[data[0] % kSettings];
  const bool has_pair = (data[1] & 1) != 0;
  const bool truncate = (data[1] & 2) != 0;
  const int max_length = data[2];
  std::string_view text(reinterpret_cast<const char*>(data) + 3, size - 3);
  std::optional<std::string_view> pair;
  if (has_pair) {
    const size_t split = text.find('\xff');
    pair = split == std::string_view::npos ? std::string_view() : text.substr(split + 1);
    text = text.substr(0, std::min(split, text.size()));
  }

  const absl::StatusOr<std::vector<std::string>> first = tokenizer.Tokenize(text);
  std::optional<absl::StatusOr<std::vector<std::string>>> second;
  if (pair.has_value()) second = tokenizer.Tokenize(*pair);
  const absl::StatusOr<Encoding> encoding = tokenizer.Encode(text, pair, max_length, truncate);

  // The status, from the inputs alone.
  const size_t num_special = pair.has_value() ? 3 : 2;
  const bool valid = first.ok() && (!second.has_value() || second->ok());
  const size_t tokens = valid ? first->size() + (second.has_value() ? (*second)->size() : 0) : 0;
  const bool fits = static_cast<size_t>(max_length) >= num_special + tokens;
  const bool want_ok = static_cast<size_t>(max_length) >= num_special && valid &&
                       (fits || truncate);
  BERTSERVE_FUZZ_CHECK(encoding.ok() == want_ok, "Encode: %s, expected %s",
                       encoding.status().ToString().c_str(), want_ok ? "OK" : "an error");
  if (!encoding.ok()) {
    BERTSERVE_FUZZ_CHECK(absl::IsInvalidArgument(encoding.status()), "%s",
                         encoding.status().ToString().c_str());
    return 0;
  }

  const Encoding& e = *encoding;
  const size_t n = e.ids.size();
  BERTSERVE_FUZZ_CHECK(e.tokens.size() == n && e.type_ids.size() == n && e.offsets.size() == n &&
                           e.sequence.size() == n,
                       "vectors of %zu ids differ in length", n);
  BERTSERVE_FUZZ_CHECK(n <= static_cast<size_t>(max_length), "%zu tokens over max_length %d", n,
                       max_length);
  BERTSERVE_FUZZ_CHECK(e.truncated == !fits, "truncated is %d for %zu tokens, max_length %d",
                       e.truncated, tokens + num_special, max_length);
  for (size_t i = 0; i < n; ++i) {
    BERTSERVE_FUZZ_CHECK(e.ids[i] >= 0 && e.ids[i] < tokenizer.vocab_size() &&
                             tokenizers->vocab[e.ids[i]] == e.tokens[i],
                         "token %zu: id %d does not name \"%s\"", i, e.ids[i],
                         e.tokens[i].c_str());
  }

  // How many tokens of each sequence were kept: the text's end at the first
  // [SEP] that is not a literal one from the text.
  const size_t a = first->size();
  const size_t b = second.has_value() ? (*second)->size() : 0;
  size_t sep = 1;
  while (sep < n && e.sequence[sep] != -1) ++sep;
  BERTSERVE_FUZZ_CHECK(sep < n, "no [SEP] after the text");
  const size_t keep_a = sep - 1;
  const size_t keep_b = n - num_special - keep_a;
  BERTSERVE_FUZZ_CHECK(keep_a <= a && keep_b <= b, "kept %zu + %zu of %zu + %zu tokens", keep_a,
                       keep_b, a, b);
  if (!e.truncated) {
    BERTSERVE_FUZZ_CHECK(keep_a == a && keep_b == b, "not truncated, yet tokens were dropped");
  } else {
    const size_t budget = static_cast<size_t>(max_length) - num_special;
    BERTSERVE_FUZZ_CHECK(keep_a + keep_b == budget, "truncated to %zu tokens, not %d", n,
                         max_length);
    if (pair.has_value()) {
      // Longest first: the shorter sequence loses tokens only once both are
      // down to half the budget.
      const size_t shorter = std::min(a, b);
      if (shorter <= budget / 2) {
        BERTSERVE_FUZZ_CHECK((a <= b ? keep_a : keep_b) == shorter,
                             "kept %zu + %zu of %zu + %zu in %zu: the shorter was cut", keep_a,
                             keep_b, a, b, budget);
      } else {
        BERTSERVE_FUZZ_CHECK((keep_a > keep_b ? keep_a - keep_b : keep_b - keep_a) <= 1,
                             "kept %zu + %zu of %zu + %zu in %zu: not halves", keep_a, keep_b, a,
                             b, budget);
      }
    }
  }
  BERTSERVE_FUZZ_CHECK(e.tokens[0] == "[CLS]" && e.ids[0] == 2 && e.sequence[0] == -1 &&
                           e.type_ids[0] == 0 && e.offsets[0] == std::make_pair(0, 0),
                       "token 0 is not [CLS]");
  size_t at = 1;
  CheckSequence(e, &at, 0, *first, keep_a, CodePoints(text));
  if (pair.has_value()) CheckSequence(e, &at, 1, **second, keep_b, CodePoints(*pair));
  return 0;
}
