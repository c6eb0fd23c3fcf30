#include "server/core/model_repository.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/fake_model.h"

namespace bertserve::core {
namespace {

using ::testing::ElementsAre;

TEST(ModelRepositoryTest, ListsOnlyLegalModelDirectories) {
  testing::TempRepository repo;
  repo.AddModel("b-model");
  repo.AddModel("a.model");
  repo.WriteFile("not-a-dir.txt", "x");
  repo.WriteFile(".hidden/config.pbtxt", "");
  repo.WriteFile("bad name/config.pbtxt", "");
  absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo.root());
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<std::vector<std::string>> names = r->ListModels();
  ASSERT_TRUE(names.ok());
  EXPECT_THAT(*names, ElementsAre("a.model", "b-model"));
}

TEST(ModelRepositoryTest, DirectoryOnlyForListedNames) {
  testing::TempRepository repo;
  repo.AddModel("m");
  absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo.root());
  ASSERT_TRUE(r.ok());
  absl::StatusOr<std::string> dir = r->ModelDirectory("m");
  ASSERT_TRUE(dir.ok());
  EXPECT_TRUE(std::filesystem::is_directory(*dir));
  EXPECT_EQ(r->ModelDirectory("../m").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->ModelDirectory("..").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->ModelDirectory("absent").status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelRepositoryTest, MissingRootIsNotFound) {
  EXPECT_EQ(ModelRepository::Open("/nonexistent/repo").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace bertserve::core
