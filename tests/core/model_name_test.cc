#include "server/core/model_name.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

using ::testing::HasSubstr;

TEST(ModelNameTest, AcceptsLegalNames) {
  for (const char* name : {"bert", "bert-base_uncased.v2", "A", "x.y", "..a", "0"}) {
    EXPECT_TRUE(ValidateModelName(name).ok()) << name;
  }
}

TEST(ModelNameTest, RefusesPathsAndOddCharacters) {
  for (const char* name : {"", ".", "..", "../etc", "a/b", "/abs", "x y", "a\\b", "caf\xc3\xa9",
                           "a\nb", "name:1"}) {
    absl::Status s = ValidateModelName(name);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_THAT(std::string(ValidateModelName("a/b").message()), HasSubstr("[A-Za-z0-9_.-]"));
  EXPECT_THAT(std::string(ValidateModelName("").message()), HasSubstr("empty"));
}

TEST(ModelNameTest, RefusesOverlongNames) {
  EXPECT_TRUE(ValidateModelName(std::string(kMaxModelNameLength, 'a')).ok());
  EXPECT_EQ(ValidateModelName(std::string(kMaxModelNameLength + 1, 'a')).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bertserve::core
