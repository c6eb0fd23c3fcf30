// A vocab.txt of any bytes, read as a model repository's vocabulary is:
// ReadVocabFile gives one token per line (trailing White_Space removed, UTF-8
// checked) or InvalidArgument; FromVocabFile agrees with it, and a tokenizer
// it builds encodes valid text, each id naming its line's token.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/tokenizer/bert_tokenizer.h"
#include "server/tokenizer/unicode.h"
#include "server/tokenizer/vocab.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_file.h"

namespace bertserve::tokenizer {
namespace {

void CheckEncodes(const BertTokenizer& tokenizer, const std::vector<std::string>& lines,
                  std::string_view text, std::string_view pair) {
  for (bool with_pair : {false, true}) {
    const absl::StatusOr<Encoding> e =
        tokenizer.Encode(text, with_pair ? std::optional<std::string_view>(pair) : std::nullopt,
                         /*max_length=*/24, /*truncate=*/true);
    BERTSERVE_FUZZ_CHECK(e.ok(), "Encode: %s", e.status().ToString().c_str());
    BERTSERVE_FUZZ_CHECK(e->ids.size() <= 24 && e->ids.size() == e->tokens.size(),
                         "%zu ids, %zu tokens", e->ids.size(), e->tokens.size());
    for (size_t i = 0; i < e->ids.size(); ++i) {
      const int32_t id = e->ids[i];
      BERTSERVE_FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < lines.size() &&
                               lines[id] == e->tokens[i],
                           "token %zu: id %d does not name \"%s\"", i, id, e->tokens[i].c_str());
    }
  }
}

}  // namespace
}  // namespace bertserve::tokenizer

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bertserve::tokenizer;  // NOLINT
  static bertserve::fuzz::FuzzFile* const file = new bertserve::fuzz::FuzzFile();
  const std::string& path = file->Write(data, size);

  const absl::StatusOr<std::vector<std::string>> lines = ReadVocabFile(path);
  const absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      BertTokenizer::FromVocabFile(path, NormalizerOptions());
  if (!lines.ok()) {
    BERTSERVE_FUZZ_CHECK(absl::IsInvalidArgument(lines.status()), "%s",
                         lines.status().ToString().c_str());
    BERTSERVE_FUZZ_CHECK(tokenizer.status() == lines.status(), "FromVocabFile: %s",
                         tokenizer.status().ToString().c_str());
    return 0;
  }

  // One token per line: a last line without '\n' counts, an empty file has none.
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  size_t expected = 0;
  for (char c : bytes) expected += c == '\n';
  if (!bytes.empty() && bytes.back() != '\n') ++expected;
  BERTSERVE_FUZZ_CHECK(lines->size() == expected, "%zu tokens from %zu lines", lines->size(),
                       expected);
  for (const std::string& token : *lines) {
    absl::StatusOr<std::u32string> chars = unicode::DecodeUtf8(token, "token");
    BERTSERVE_FUZZ_CHECK(chars.ok(), "a token is not UTF-8");
    BERTSERVE_FUZZ_CHECK(chars->empty() || !unicode::IsWhiteSpace(chars->back()),
                         "token \"%s\" ends in white space", token.c_str());
  }

  if (!tokenizer.ok()) {
    // Only a vocabulary without the required special tokens is refused.
    BERTSERVE_FUZZ_CHECK(absl::IsInvalidArgument(tokenizer.status()), "%s",
                         tokenizer.status().ToString().c_str());
    return 0;
  }
  BERTSERVE_FUZZ_CHECK((*tokenizer)->vocab_size() == static_cast<int32_t>(lines->size()),
                       "vocab_size %d for %zu lines", (*tokenizer)->vocab_size(), lines->size());
  CheckEncodes(**tokenizer, *lines, "Hello, [SEP] w\xc3\xb6rld! \xe4\xb8\xad\xe6\x96\x87 unaffable",
               "the pair");
  // The vocabulary's own tokens as text.
  std::string text;
  for (size_t i = 0; i < lines->size() && i < 16; ++i) text += (*lines)[i] + " ";
  CheckEncodes(**tokenizer, *lines, text, text);
  return 0;
}
