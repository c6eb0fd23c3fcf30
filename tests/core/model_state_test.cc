#include "server/core/model_state.h"

#include <set>
#include <utility>

#include "gtest/gtest.h"

namespace bertserve::core {
namespace {

using S = ModelState;

TEST(ModelStateTest, ExactlyTheDesignedTransitionsAreLegal) {
  const std::set<std::pair<S, S>> legal = {
      {S::kUnloaded, S::kLoading}, {S::kLoading, S::kHost},     {S::kHost, S::kPlacing},
      {S::kPlacing, S::kReady},    {S::kPlacing, S::kHost},     {S::kReady, S::kEvicting},   {S::kEvicting, S::kHost},
      {S::kHost, S::kUnloaded},    {S::kReady, S::kUnloaded},   {S::kFailed, S::kLoading},
      {S::kFailed, S::kUnloaded}};
  for (S from : kAllModelStates) {
    for (S to : kAllModelStates) {
      const bool expected = to == S::kFailed || legal.count({from, to}) > 0;
      EXPECT_EQ(IsLegalTransition(from, to), expected)
          << ModelStateName(from) << " -> " << ModelStateName(to);
    }
  }
}

TEST(ModelStateTest, NamesAreDistinctLowercase) {
  std::set<absl::string_view> names;
  for (S s : kAllModelStates) names.insert(ModelStateName(s));
  EXPECT_EQ(names.size(), kAllModelStates.size());
  EXPECT_EQ(ModelStateName(S::kReady), "ready");
  EXPECT_EQ(static_cast<int>(S::kReady), 5);  // matches bertserve.v1.ModelState
}

}  // namespace
}  // namespace bertserve::core
