#include "server/logging/logging.h"

#include <algorithm>
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

TEST(LoggingTest, JsonLinesCarryGivenFieldsNeverOnesParsedFromTheMessage) {
  ASSERT_TRUE(Configure("json", "info").ok());
  ::testing::internal::CaptureStderr();
  // A message quoting someone else's text (a model's last error) that looks
  // like fields must not produce or shadow any.
  Log(spdlog::level::warn, "model m failed: bad (model=other, bytes=1)",
      {{"model", "m"}, {"bytes", int64_t{42}}, {"seconds", 0.25}, {"level", "x"},
       {"peer", "ipv4:127.0.0.1:5"}});
  spdlog::default_logger()->flush();
  nlohmann::json j = nlohmann::json::parse(::testing::internal::GetCapturedStderr());
  EXPECT_EQ(j["model"], "m");
  EXPECT_EQ(j["bytes"], 42);  // a JSON number
  EXPECT_DOUBLE_EQ(j["seconds"].get<double>(), 0.25);
  EXPECT_EQ(j["level"], "warning");  // never overwritten by a field
  EXPECT_EQ(j["field_level"], "x");
  EXPECT_EQ(j["peer"], "ipv4:127.0.0.1:5");
  EXPECT_EQ(j["message"], "model m failed: bad (model=other, bytes=1)");
  EXPECT_EQ(j.size(), 8u);
}

TEST(LoggingTest, PlainSpdlogCallsCarryNoFields) {
  ASSERT_TRUE(Configure("json", "info").ok());
  ::testing::internal::CaptureStderr();
  spdlog::info("placement of m (model=m, bytes=42)");
  spdlog::default_logger()->flush();
  nlohmann::json j = nlohmann::json::parse(::testing::internal::GetCapturedStderr());
  EXPECT_FALSE(j.contains("model"));
  EXPECT_EQ(j.size(), 3u);  // time, level, message
}

TEST(LoggingTest, TextFormatAppendsFieldsQuotingWhereNeeded) {
  ASSERT_TRUE(Configure("text", "info").ok());
  ::testing::internal::CaptureStderr();
  Log(spdlog::level::info, "audit", {{"model", "m"}, {"outcome", "bad \"x\", y"}, {"n", 3}});
  Log(spdlog::level::debug, "below the level", {{"model", "m"}});
  spdlog::default_logger()->flush();
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, HasSubstr("[info] audit (model=m, outcome=\"bad \\\"x\\\", y\", n=3)"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("below the level")));
}

// A client's text in a message or a field (a model name with a newline and
// a forged line after it) stays on its event's one line, escaped.
TEST(LoggingTest, TextLinesCannotBeSplitByWhatTheyQuote) {
  ASSERT_TRUE(Configure("text", "info").ok());
  const std::string forged =
      "x\n[2026-12-07 16:07:00.000] [info] audit: Models.Unload succeeded\r\x1b[2J\t";
  ::testing::internal::CaptureStderr();
  Log(spdlog::level::warn, "audit: Models.Load of model \"" + forged + "\" failed",
      {{"model", forged}});
  spdlog::info("plain {}", forged);
  spdlog::default_logger()->flush();
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_THAT(out, HasSubstr("model \"x\\n[2026-12-07 16:07:00.000] [info] audit: Models.Unload "
                             "succeeded\\r\\x1b[2J\\t\" failed (model=\"x\\n[2026"));
  EXPECT_THAT(out, HasSubstr("[info] plain x\\n[2026"));
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
