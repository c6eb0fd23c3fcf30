// A tokenizer.json of any bytes, loaded as a model repository's tokenizer is:
// ReadTokenizerJson and BertTokenizer::FromTokenizerJson never throw or crash
// and refuse with InvalidArgument (malformed) or FailedPrecondition
// (unsupported) only; a tokenizer they build encodes valid text, with and
// without a pair, truncating to max_length, every id inside the vocabulary.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/tokenizer/bert_tokenizer.h"
#include "server/tokenizer/tokenizer_json.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_file.h"

namespace {

bool Refusal(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsFailedPrecondition(status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bertserve::tokenizer;  // NOLINT
  static bertserve::fuzz::FuzzFile* const file = new bertserve::fuzz::FuzzFile();
  const std::string& path = file->Write(data, size);

  const absl::StatusOr<TokenizerJson> json = ReadTokenizerJson(path);
  BERTSERVE_FUZZ_CHECK(json.ok() || Refusal(json.status()), "ReadTokenizerJson: %s",
                       json.status().ToString().c_str());
  const absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      BertTokenizer::FromTokenizerJson(path);
  if (!json.ok()) {
    BERTSERVE_FUZZ_CHECK(tokenizer.status() == json.status(), "FromTokenizerJson: %s",
                         tokenizer.status().ToString().c_str());
    return 0;
  }
  if (!tokenizer.ok()) {
    BERTSERVE_FUZZ_CHECK(Refusal(tokenizer.status()), "FromTokenizerJson: %s",
                         tokenizer.status().ToString().c_str());
    return 0;
  }
  const BertTokenizer& t = **tokenizer;
  BERTSERVE_FUZZ_CHECK(t.pad_id() >= 0 && t.pad_id() < t.vocab_size(), "pad id %d of %d",
                       t.pad_id(), t.vocab_size());
  for (const char* text : {"Hello, [SEP] w\xc3\xb6rld! \xe4\xb8\xad\xe6\x96\x87 unaffable [CLS]",
                           "a", "\xe2\x80\x8b \t"}) {
    for (std::optional<std::string_view> pair :
         {std::optional<std::string_view>(), std::optional<std::string_view>("the pair")}) {
      const absl::StatusOr<Encoding> e = t.Encode(text, pair, /*max_length=*/16, /*truncate=*/true);
      BERTSERVE_FUZZ_CHECK(e.ok(), "Encode: %s", e.status().ToString().c_str());
      BERTSERVE_FUZZ_CHECK(e->ids.size() <= 16 && e->ids.size() == e->tokens.size() &&
                               e->ids.size() == e->type_ids.size(),
                           "%zu ids", e->ids.size());
      for (int32_t id : e->ids) {
        BERTSERVE_FUZZ_CHECK(id >= 0 && id < t.vocab_size(), "id %d of %d", id, t.vocab_size());
      }
    }
  }
  return 0;
}
