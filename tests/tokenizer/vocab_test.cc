#include "server/tokenizer/vocab.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path =
      (std::filesystem::path(::testing::TempDir()) / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(VocabTest, IdsAreLinePositions) {
  Vocab vocab = *Vocab::FromTokens({"[PAD]", "hello", "##lo"});
  EXPECT_EQ(vocab.size(), 3);
  EXPECT_EQ(vocab.Find("hello"), 1);
  EXPECT_EQ(vocab.Find("##lo"), 2);
  EXPECT_EQ(vocab.Find("missing"), std::nullopt);
  EXPECT_EQ(vocab.Token(0), "[PAD]");
}

TEST(VocabTest, DuplicateTokenKeepsItsLastId) {
  // Hugging Face (Rust read_file and Python load_vocab) overwrite earlier
  // ids of a repeated line.
  Vocab vocab = *Vocab::FromTokens({"a", "b", "a"});
  EXPECT_EQ(vocab.Find("a"), 2);
  EXPECT_EQ(vocab.size(), 3);
  EXPECT_EQ(vocab.Token(0), "a");
}

TEST(VocabTest, FromTokenIdsAllowsGapsAndRejectsClashes) {
  Vocab vocab = *Vocab::FromTokenIds({{"a", 0}, {"c", 2}});
  EXPECT_EQ(vocab.size(), 3);
  EXPECT_EQ(vocab.Token(1), "");
  EXPECT_EQ(vocab.Find("c"), 2);
  EXPECT_FALSE(Vocab::FromTokenIds({{"a", 0}, {"b", 0}}).ok());
  EXPECT_FALSE(Vocab::FromTokenIds({{"a", 0}, {"a", 1}}).ok());
  EXPECT_FALSE(Vocab::FromTokenIds({{"a", -1}}).ok());
  EXPECT_FALSE(Vocab::FromTokenIds({}).ok());
  EXPECT_FALSE(Vocab::FromTokens({}).ok());
}

// Ids are stored densely, so one huge id would allocate a slot for every id
// below it: a one-line tokenizer.json vocabulary could ask for 64 GiB.
TEST(VocabTest, FromTokenIdsRefusesIdsPastTheLimit) {
  EXPECT_EQ(Vocab::FromTokenIds({{"a", 0}, {"b", kTokenIdLimit - 1}})->size(),
            kTokenIdLimit);
  absl::StatusOr<Vocab> huge =
      Vocab::FromTokenIds({{"a", 0}, {"b", 2000000000}});
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(huge.status().message()), HasSubstr("\"b\""));
}

TEST(ReadVocabFileTest, StripsLineEndsAndTrailingWhitespace) {
  const std::string path =
      WriteFile("crlf_vocab.txt", "[PAD]\r\nhello \r\n\u00E9t\u00E9\t\nlast");
  absl::StatusOr<std::vector<std::string>> tokens = ReadVocabFile(path);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(*tokens, ElementsAre("[PAD]", "hello", "\u00E9t\u00E9", "last"));
}

TEST(ReadVocabFileTest, KeepsEmptyLinesAsTokens) {
  const std::string path = WriteFile("empty_line_vocab.txt", "a\n\nb\n");
  EXPECT_THAT(*ReadVocabFile(path), ElementsAre("a", "", "b"));
}

TEST(ReadVocabFileTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = ::testing::TempDir() + "/no/such/vocab.txt";
  absl::StatusOr<std::vector<std::string>> tokens = ReadVocabFile(path);
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokens.status().message(), HasSubstr(path));
}

TEST(ReadVocabFileTest, RejectsEmptyFileDirectoryAndBadUtf8) {
  const std::string empty = WriteFile("empty_vocab.txt", "");
  EXPECT_EQ(ReadVocabFile(empty).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadVocabFile(::testing::TempDir()).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string bad = WriteFile("bad_vocab.txt", "ok\nb\xFFz\n");
  absl::StatusOr<std::vector<std::string>> tokens = ReadVocabFile(bad);
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokens.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(tokens.status().message(), HasSubstr("byte offset 1"));
}

}  // namespace
}  // namespace bertserve::tokenizer
