#include "server/tokenizer/truncation.h"

#include "gtest/gtest.h"

namespace bertserve::tokenizer {
namespace {

void ExpectLengths(size_t first, size_t second, size_t max_tokens,
                   size_t want_first, size_t want_second) {
  const PairLengths got = TruncateLongestFirst(first, second, max_tokens);
  EXPECT_EQ(got.first, want_first)
      << first << "+" << second << " into " << max_tokens;
  EXPECT_EQ(got.second, want_second)
      << first << "+" << second << " into " << max_tokens;
}

// The table of truncate_encodings_longest_first in Hugging Face tokenizers'
// src/utils/truncation.rs: empty = 0, short = 2, medium = 4, long = 8
// tokens, max_length 7.
TEST(TruncateLongestFirstTest, UpstreamTable) {
  constexpr size_t kEmpty = 0, kShort = 2, kMedium = 4, kLong = 8;
  ExpectLengths(kEmpty, kEmpty, 7, 0, 0);
  ExpectLengths(kEmpty, kShort, 7, 0, 2);
  ExpectLengths(kEmpty, kMedium, 7, 0, 4);
  ExpectLengths(kEmpty, kLong, 7, 0, 7);
  ExpectLengths(kShort, kEmpty, 7, 2, 0);
  ExpectLengths(kShort, kShort, 7, 2, 2);
  ExpectLengths(kShort, kMedium, 7, 2, 4);
  ExpectLengths(kShort, kLong, 7, 2, 5);
  ExpectLengths(kMedium, kEmpty, 7, 4, 0);
  ExpectLengths(kMedium, kShort, 7, 4, 2);
  ExpectLengths(kMedium, kMedium, 7, 3, 4);
  ExpectLengths(kMedium, kLong, 7, 3, 4);
  ExpectLengths(kLong, kEmpty, 7, 7, 0);
  ExpectLengths(kLong, kShort, 7, 5, 2);
  ExpectLengths(kLong, kMedium, 7, 4, 3);
  ExpectLengths(kLong, kLong, 7, 3, 4);
}

// truncate_encodings_empty in the same file.
TEST(TruncateLongestFirstTest, ZeroBudget) {
  ExpectLengths(0, 2, 0, 0, 0);
  ExpectLengths(4, 4, 0, 0, 0);
  ExpectLengths(8, 8, 0, 0, 0);
}

TEST(TruncateLongestFirstTest, BothLongSplitEvenly) {
  ExpectLengths(100, 100, 10, 5, 5);
  ExpectLengths(100, 50, 11, 6, 5);  // the odd token goes to the longer one
  ExpectLengths(50, 100, 11, 5, 6);
  ExpectLengths(100, 100, 11, 5, 6);  // a tie gives it to the second
}

TEST(TruncateLongestFirstTest, ShortOneIsKeptWhole) {
  ExpectLengths(3, 100, 10, 3, 7);
  ExpectLengths(100, 3, 10, 7, 3);
  ExpectLengths(5, 100, 10, 5, 5);
}

}  // namespace
}  // namespace bertserve::tokenizer
