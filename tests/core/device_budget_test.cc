#include "server/core/device_budget.h"

#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

TEST(DeviceBudgetTest, WeightsAddUpReservesDoNot) {
  DeviceBudget budget(1000);
  EXPECT_EQ(budget.ResidentCost(), 0);
  budget.Admit("a", 300, 50);
  budget.Admit("b", 200, 120);
  // One batch per device at a time: only the largest reserve counts.
  EXPECT_EQ(budget.ResidentCost(), 300 + 200 + 120);
  EXPECT_EQ(budget.CostWith(100, 10), 600 + 120);
  EXPECT_EQ(budget.CostWith(100, 400), 600 + 400);
  budget.SetReserve("b", 20);
  EXPECT_EQ(budget.ResidentCost(), 500 + 50);
  budget.Release("a");
  EXPECT_EQ(budget.ResidentCost(), 200 + 20);
  EXPECT_FALSE(budget.Contains("a"));
  budget.Admit("b", 250, 20);  // re-admitting replaces
  EXPECT_EQ(budget.ResidentCost(), 270);
}

}  // namespace
}  // namespace bertserve::core
