#include "server/logging/logging.h"

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::logging {
namespace {

using ::testing::HasSubstr;

TEST(LoggingTest, JsonLinesAreOneParsableObjectEach) {
  ASSERT_TRUE(Configure("json", "info").ok());
  ::testing::internal::CaptureStderr();
  spdlog::info("model {} failed: \"quoted\"\nsecond line\t{}", "m", "\x01");
  spdlog::debug("below the level");
  spdlog::default_logger()->flush();
  const std::string out = ::testing::internal::GetCapturedStderr();
  std::istringstream lines(out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["level"], "info");
    EXPECT_EQ(j["message"], "model m failed: \"quoted\"\nsecond line\t\x01");
    EXPECT_THAT(j["time"].get<std::string>(), HasSubstr("T"));
  }
  EXPECT_EQ(count, 1);
}

TEST(LoggingTest, JsonLinesCarryKeyValueTokensAsFields) {
  ASSERT_TRUE(Configure("json", "info").ok());
  ::testing::internal::CaptureStderr();
  spdlog::info("placement evict of m: 42 bytes (model=m, kind=evict, bytes=42, model=other, "
               "level=x, =skipped, empty=)");
  spdlog::default_logger()->flush();
  nlohmann::json j = nlohmann::json::parse(::testing::internal::GetCapturedStderr());
  EXPECT_EQ(j["model"], "m");  // the first of a key wins
  EXPECT_EQ(j["kind"], "evict");
  EXPECT_EQ(j["bytes"], "42");
  EXPECT_EQ(j["level"], "info");  // never overwritten by a token
  EXPECT_FALSE(j.contains("empty"));
  EXPECT_EQ(j.size(), 6u);  // time, level, message, model, kind, bytes
}

TEST(LoggingTest, TextFormatAndLevels) {
  ASSERT_TRUE(Configure("text", "warn").ok());
  ::testing::internal::CaptureStderr();
  spdlog::info("hidden");
  spdlog::warn("shown {}", 1);
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, HasSubstr("[warning] shown 1"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("hidden")));
}

TEST(LoggingTest, BadValuesAreRefused) {
  EXPECT_EQ(Configure("xml", "info").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Configure("text", "loud").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bertserve::logging
