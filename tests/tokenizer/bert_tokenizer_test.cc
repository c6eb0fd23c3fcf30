#include "server/tokenizer/bert_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/tokenizer_test_data.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Offsets = std::pair<int32_t, int32_t>;

std::unique_ptr<BertTokenizer> Small(NormalizerOptions options = {}) {
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      BertTokenizer::FromVocab(testing::SmallVocab(), options);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

Encoding EncodeOk(const BertTokenizer& tokenizer, std::string_view text,
                  std::optional<std::string_view> pair, int max_length,
                  bool truncate = true) {
  absl::StatusOr<Encoding> encoding =
      tokenizer.Encode(text, pair, max_length, truncate);
  EXPECT_TRUE(encoding.ok()) << encoding.status();
  return encoding.ok() ? *std::move(encoding) : Encoding();
}

// transformers test_full_tokenizer.
TEST(BertTokenizerTest, FullTokenizer) {
  auto tokenizer = Small();
  EXPECT_THAT(*tokenizer->Tokenize("UNwant\u00E9d,running"),
              ElementsAre("un", "##want", "##ed", ",", "runn", "##ing"));
  const Encoding encoding =
      EncodeOk(*tokenizer, "UNwant\u00E9d,running", std::nullopt, 512);
  EXPECT_THAT(encoding.ids, ElementsAre(1, 9, 6, 7, 12, 10, 11, 2));
}

// transformers test_clean_text (tokenizers issue #340).
TEST(BertTokenizerTest, CleanText) {
  auto tokenizer = Small();
  EXPECT_THAT(*tokenizer->Tokenize("Test"), ElementsAre("[UNK]"));
  EXPECT_THAT(*tokenizer->Tokenize("\xC2\xAD"), IsEmpty());
  EXPECT_THAT(*tokenizer->Tokenize("test"), ElementsAre("[UNK]"));
}

TEST(BertTokenizerTest, PairLayout) {
  auto tokenizer = Small();
  const Encoding e = EncodeOk(*tokenizer, "want,", "lowest  low", 512);
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "want", ",", "[SEP]", "lowest",
                                    "low", "[SEP]"));
  EXPECT_THAT(e.ids, ElementsAre(1, 5, 12, 2, 14, 13, 2));
  EXPECT_THAT(e.type_ids, ElementsAre(0, 0, 0, 0, 1, 1, 1));
  EXPECT_THAT(e.sequence, ElementsAre(-1, 0, 0, -1, 1, 1, -1));
  EXPECT_THAT(
      e.offsets,
      ElementsAre(Offsets(0, 0), Offsets(0, 4), Offsets(4, 5), Offsets(0, 0),
                  Offsets(0, 6), Offsets(8, 11), Offsets(0, 0)));
  EXPECT_FALSE(e.truncated);
}

TEST(BertTokenizerTest, LiteralSpecialTokensStayWhole) {
  auto tokenizer = Small();
  const Encoding e =
      EncodeOk(*tokenizer, "want[MASK] [SEP]wa", std::nullopt, 512);
  EXPECT_THAT(e.tokens,
              ElementsAre("[CLS]", "want", "[MASK]", "[SEP]", "wa", "[SEP]"));
  // Written in the text, they belong to it: real offsets and sequence 0.
  EXPECT_EQ(e.offsets[2], Offsets(4, 10));
  EXPECT_EQ(e.offsets[3], Offsets(11, 16));
  EXPECT_EQ(e.sequence[2], 0);
  // Lowercase is not special.
  EXPECT_THAT(*tokenizer->Tokenize("[mask]"),
              ElementsAre("[UNK]", "[UNK]", "[UNK]"));
}

TEST(BertTokenizerTest, TruncatesSingleText) {
  auto tokenizer = Small();
  const Encoding e =
      EncodeOk(*tokenizer, "want want want want", std::nullopt, 4);
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "want", "want", "[SEP]"));
  EXPECT_TRUE(e.truncated);
  EXPECT_THAT(EncodeOk(*tokenizer, "want", std::nullopt, 2).tokens,
              ElementsAre("[CLS]", "[SEP]"));
}

TEST(BertTokenizerTest, TruncatesPairLongestFirstBothLong) {
  auto tokenizer = Small();
  // 6 and 5 tokens into 11 - 3 = 8: both over half, 4 each.
  const Encoding e =
      EncodeOk(*tokenizer, "low low low low low low", "wa wa wa wa wa", 11);
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "low", "low", "low", "low",
                                    "[SEP]", "wa", "wa", "wa", "wa", "[SEP]"));
  EXPECT_TRUE(e.truncated);
  // Odd budget (7): the longer first one gets the extra token.
  const Encoding odd =
      EncodeOk(*tokenizer, "low low low low low low", "wa wa wa wa wa", 10);
  EXPECT_THAT(odd.type_ids, ElementsAre(0, 0, 0, 0, 0, 0, 1, 1, 1, 1));
}

TEST(BertTokenizerTest, TruncatesPairLongestFirstOneLong) {
  auto tokenizer = Small();
  // 1 and 6 tokens into 8 - 3 = 5: the short one is kept whole.
  const Encoding e = EncodeOk(*tokenizer, "wa", "low low low low low low", 8);
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "wa", "[SEP]", "low", "low", "low",
                                    "low", "[SEP]"));
  const Encoding swapped =
      EncodeOk(*tokenizer, "low low low low low low", "wa", 8);
  EXPECT_THAT(swapped.tokens, ElementsAre("[CLS]", "low", "low", "low", "low",
                                          "[SEP]", "wa", "[SEP]"));
}

TEST(BertTokenizerTest, TooLongWithoutTruncationIsAnError) {
  auto tokenizer = Small();
  absl::StatusOr<Encoding> e =
      tokenizer->Encode("want want want", "low", 6, /*truncate=*/false);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.status().message(),
              AllOf(HasSubstr("7 tokens"), HasSubstr("max_length is 6")));
  // Exactly fitting is fine.
  EXPECT_TRUE(tokenizer->Encode("want want want", "low", 7, false).ok());
}

TEST(BertTokenizerTest, MaxLengthBelowSpecialTokensIsAnError) {
  auto tokenizer = Small();
  EXPECT_EQ(tokenizer->Encode("want", std::nullopt, 1, true).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokenizer->Encode("want", "wa", 2, true).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokenizer->Encode("", std::nullopt, -5, true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BertTokenizerTest, InvalidUtf8NamesSequenceAndOffset) {
  auto tokenizer = Small();
  absl::StatusOr<Encoding> e =
      tokenizer->Encode("want \xC3(", std::nullopt, 16, true);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.status().message(), AllOf(HasSubstr("text is not valid UTF-8"),
                                          HasSubstr("byte offset 5")));
  e = tokenizer->Encode("want", "ok\xFF", 16, true);
  EXPECT_THAT(e.status().message(), AllOf(HasSubstr("pair is not valid UTF-8"),
                                          HasSubstr("byte offset 2")));
  EXPECT_FALSE(tokenizer->Tokenize("\xED\xA0\x80").ok());
}

TEST(BertTokenizerTest, WordsOverHundredCharsAreUnknown) {
  auto tokenizer = Small();
  std::string word;
  for (int i = 0; i < 25; ++i) word += "want";
  EXPECT_EQ(tokenizer->Tokenize(word)->size(), 25u);  // 100 characters
  const Encoding e = EncodeOk(*tokenizer, word + "ed low", std::nullopt, 512);
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "[UNK]", "low", "[SEP]"));
  EXPECT_EQ(e.offsets[1], Offsets(0, 102));
}

TEST(BertTokenizerTest, ControlCjkAndAccents) {
  auto tokenizer = Small();
  // Controls vanish; the offsets still index the original text.
  Encoding e = EncodeOk(*tokenizer, "wa\xC2\xAD\xE2\x80\x8Bnt\x01 low",
                        std::nullopt, 64);
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "want", "low", "[SEP]"));
  EXPECT_EQ(e.offsets[1], Offsets(0, 6));  // the \x01 after "t" is gone
  EXPECT_EQ(e.offsets[2], Offsets(8, 11));
  // CJK ideographs become words of their own, here unknown.
  e = EncodeOk(*tokenizer, "low\xE5\x8D\x9Awa", std::nullopt, 64);
  EXPECT_THAT(e.tokens, ElementsAre("[CLS]", "low", "[UNK]", "wa", "[SEP]"));
  EXPECT_EQ(e.offsets[2], Offsets(3, 4));
  // Accents are stripped when lowercasing, kept when asked.
  EXPECT_THAT(*tokenizer->Tokenize("W\xC3\xA0nt"), ElementsAre("want"));
  NormalizerOptions keep;
  keep.strip_accents = false;
  EXPECT_THAT(*Small(keep)->Tokenize("W\xC3\xA0nt"), ElementsAre("[UNK]"));
}

TEST(BertTokenizerTest, FromVocabNeedsBertSpecials) {
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      BertTokenizer::FromVocab({"[UNK]", "[CLS]", "a"}, {});
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokenizer.status().message(),
              AllOf(HasSubstr("[SEP]"), HasSubstr("[PAD]")));
}

TEST(BertTokenizerTest, FromVocabFile) {
  const std::string path =
      (std::filesystem::path(::testing::TempDir()) / "small_vocab.txt")
          .string();
  {
    std::ofstream out(path, std::ios::binary);
    for (const std::string& token : testing::SmallVocab())
      out << token << "\r\n";
  }
  NormalizerOptions options;
  options.lowercase = false;
  absl::StatusOr<std::unique_ptr<BertTokenizer>> tokenizer =
      BertTokenizer::FromVocabFile(path, options);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 15);
  EXPECT_EQ((*tokenizer)->pad_id(), 3);
  EXPECT_FALSE((*tokenizer)->options().lowercase);
  EXPECT_THAT(*(*tokenizer)->Tokenize("Want want"),
              ElementsAre("[UNK]", "want"));

  const std::string missing = ::testing::TempDir() + "/missing_vocab.txt";
  tokenizer = BertTokenizer::FromVocabFile(missing, {});
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(missing));
}

TEST(BertTokenizerTest, EncodeIsThreadSafe) {
  auto tokenizer = Small();
  const Encoding want =
      EncodeOk(*tokenizer, "UNwant\u00E9d,running [MASK]", "lowest", 512);
  for (int threads : {2, 8}) {
    std::vector<std::thread> workers;
    std::vector<int> mismatches(threads, 0);
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          absl::StatusOr<Encoding> got = tokenizer->Encode(
              "UNwant\u00E9d,running [MASK]", "lowest", 512, true);
          if (!got.ok() || got->ids != want.ids ||
              got->offsets != want.offsets) {
            ++mismatches[t];
          }
        }
      });
    }
    for (std::thread& worker : workers) worker.join();
    for (int t = 0; t < threads; ++t) EXPECT_EQ(mismatches[t], 0);
  }
}

}  // namespace
}  // namespace bertserve::tokenizer
