#include "server/core/byte_size.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

TEST(ByteSizeTest, UnitsAndShares) {
  struct Case {
    const char* text;
    int64_t bytes;
  } cases[] = {{"4096", 4096},          {"12GiB", 12LL << 30}, {"512MiB", 512LL << 20},
               {"1.5GB", 1500000000LL}, {"2kb", 2000},         {"3 KiB", 3072},
               {"7B", 7},               {"1TiB", 1LL << 40}};
  for (const Case& c : cases) {
    absl::StatusOr<ByteSize> s = ParseByteSize(c.text, "--x");
    ASSERT_TRUE(s.ok()) << c.text << ": " << s.status();
    EXPECT_FALSE(s->is_fraction);
    EXPECT_EQ(s->bytes, c.bytes) << c.text;
  }
  absl::StatusOr<ByteSize> share = ParseByteSize("80%", "--x");
  ASSERT_TRUE(share.ok());
  EXPECT_TRUE(share->is_fraction);
  EXPECT_EQ(share->Resolve(1000), 800);
}

TEST(ByteSizeTest, RefusalsNameTheFlag) {
  for (const char* bad : {"", "abc", "12XB", "-5GiB", "0%", "150%", "%", "1e30TB"}) {
    absl::StatusOr<ByteSize> s = ParseByteSize(bad, "--vram-budget");
    ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("--vram-budget"));
  }
}

TEST(ByteSizeTest, Formats) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(3 << 20), "3.00 MiB");
  EXPECT_EQ(FormatBytes(3LL << 30), "3.00 GiB");
}

}  // namespace
}  // namespace bertserve::core
