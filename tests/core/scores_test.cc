#include "server/core/scores.h"

#include <cmath>

#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

const std::vector<std::string> kLabels = {"a", "b", "c"};

TEST(ScoresTest, SoftmaxBestFirst) {
  const float logits[] = {1.0f, 3.0f, 2.0f};
  std::vector<v1::LabelScore> s = ScoreRow(logits, 3, false, 0, kLabels);
  ASSERT_EQ(s.size(), 3u);
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0);
  EXPECT_EQ(s[0].label(), "b");
  EXPECT_EQ(s[0].index(), 1);
  EXPECT_NEAR(s[0].score(), std::exp(3.0) / z, 1e-7);
  EXPECT_EQ(s[1].label(), "c");
  EXPECT_EQ(s[2].label(), "a");
  EXPECT_NEAR(s[2].score(), std::exp(1.0) / z, 1e-7);
}

TEST(ScoresTest, StableForHugeLogits) {
  const float logits[] = {1000.0f, 1001.0f, -1000.0f};
  std::vector<v1::LabelScore> s = ScoreRow(logits, 3, false, 0, kLabels);
  EXPECT_NEAR(s[0].score(), 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_FALSE(std::isnan(s[2].score()));
}

TEST(ScoresTest, SingleLogitIsSigmoid) {
  const float logits[] = {0.5f};
  std::vector<v1::LabelScore> s = ScoreRow(logits, 1, false, 0, {"yes"});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_NEAR(s[0].score(), 1.0 / (1.0 + std::exp(-0.5)), 1e-7);
}

TEST(ScoresTest, RawReturnsLogitsAndTopKCuts) {
  const float logits[] = {-1.0f, 4.0f, 2.5f};
  std::vector<v1::LabelScore> s = ScoreRow(logits, 3, true, 2, kLabels);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_FLOAT_EQ(s[0].score(), 4.0f);
  EXPECT_FLOAT_EQ(s[1].score(), 2.5f);
  EXPECT_EQ(ScoreRow(logits, 3, true, 99, kLabels).size(), 3u);
}

TEST(ScoresTest, TiesKeepLabelOrder) {
  const float logits[] = {1.0f, 1.0f, 1.0f};
  std::vector<v1::LabelScore> s = ScoreRow(logits, 3, false, 0, kLabels);
  EXPECT_EQ(s[0].index(), 0);
  EXPECT_EQ(s[1].index(), 1);
  EXPECT_EQ(s[2].index(), 2);
}

}  // namespace
}  // namespace bertserve::core
