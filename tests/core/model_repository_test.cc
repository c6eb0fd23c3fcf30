#include "server/core/model_repository.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
  // What it passed over, and why (hidden directories and files aside).
  auto unserved = r->UnservedDirectories();
  ASSERT_TRUE(unserved.ok()) << unserved.status();
  ASSERT_EQ(unserved->size(), 1u);
  EXPECT_EQ((*unserved)[0].first, "bad name");
  EXPECT_THAT((*unserved)[0].second, ::testing::HasSubstr("has character ' ' at position 3"));
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

namespace fs = std::filesystem;

TEST(ModelRepositoryTest, ADirectoryLinkedOutsideIsRefusedUnlessLinksMayBeFollowed) {
  testing::TempRepository repo;
  testing::TempRepository elsewhere;
  elsewhere.AddModel("outside");
  fs::create_directory_symlink(fs::path(elsewhere.root()) / "outside",
                               fs::path(repo.root()) / "linked");
  absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo.root());
  ASSERT_TRUE(r.ok());
  absl::StatusOr<std::string> dir = r->ModelDirectory("linked");
  ASSERT_EQ(dir.status().code(), absl::StatusCode::kPermissionDenied) << dir.status();
  EXPECT_THAT(std::string(dir.status().message()),
              ::testing::AllOf(::testing::HasSubstr("outside the model repository"),
                               ::testing::HasSubstr("--follow-symlinks")));
  absl::StatusOr<ModelRepository> follow = ModelRepository::Open(repo.root(), true);
  ASSERT_TRUE(follow.ok());
  EXPECT_TRUE(follow->ModelDirectory("linked").ok());
}

TEST(ModelRepositoryTest, AFileLinkedOutsideIsRefusedAndLinksInsideAreFine) {
  testing::TempRepository repo;
  repo.AddModel("m");
  testing::TempRepository elsewhere;
  elsewhere.WriteFile("secret.txt", "root:x:0:0");
  const fs::path model = fs::path(repo.root()) / "m";
  fs::remove(model / "vocab.txt");
  fs::create_symlink(fs::path(elsewhere.root()) / "secret.txt", model / "vocab.txt");
  // As a Kubernetes ConfigMap volume lays files out: links to links inside.
  repo.WriteFile("m/..2026_12_07/config.pbtxt", "");
  fs::create_directory_symlink("..2026_12_07", model / "..data");
  fs::remove(model / "config.pbtxt");
  fs::create_symlink("..data/config.pbtxt", model / "config.pbtxt");

  absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo.root());
  ASSERT_TRUE(r.ok());
  absl::StatusOr<std::string> dir = r->ModelDirectory("m");
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<std::optional<std::string>> vocab = r->FileIn(*dir, "vocab.txt");
  ASSERT_EQ(vocab.status().code(), absl::StatusCode::kPermissionDenied) << vocab.status();
  EXPECT_THAT(std::string(vocab.status().message()), ::testing::HasSubstr("secret.txt"));
  absl::StatusOr<std::optional<std::string>> config = r->FileIn(*dir, "config.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->has_value());
  absl::StatusOr<std::optional<std::string>> absent = r->FileIn(*dir, "tokenizer.json");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  // A dangling link is not "absent": it says why it cannot be used.
  fs::create_symlink("/nonexistent/model.pt", model / "model.pt");
  EXPECT_EQ(r->FileIn(*dir, "model.pt").status().code(), absl::StatusCode::kPermissionDenied);

  absl::StatusOr<ModelRepository> follow = ModelRepository::Open(repo.root(), true);
  ASSERT_TRUE(follow.ok());
  absl::StatusOr<std::optional<std::string>> followed = follow->FileIn(*dir, "vocab.txt");
  ASSERT_TRUE(followed.ok());
  EXPECT_TRUE(followed->has_value());
}

// The answer FileIn gives for vocab.txt in a model directory nobody may
// search, as an unprivileged user: root reads everything, so as root the
// check runs in a child that drops to uid/gid 65534 ("nobody").
absl::Status VocabStatusWithoutSearchPermission(const ModelRepository& r, const fs::path& model) {
  fs::permissions(model, fs::perms::none);
  absl::Status result;
  if (geteuid() != 0) {
    result = r.FileIn(model.string(), "vocab.txt").status();
  } else {
    int pipe_fds[2];
    EXPECT_EQ(pipe(pipe_fds), 0);
    const pid_t child = fork();
    if (child == 0) {
      close(pipe_fds[0]);
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
      const absl::Status s = r.FileIn(model.string(), "vocab.txt").status();
      const std::string out = absl::StrCat(static_cast<int>(s.code()), " ", s.message());
      (void)!write(pipe_fds[1], out.data(), out.size());
      _exit(0);
    }
    close(pipe_fds[1]);
    std::string out;
    char buffer[512];
    ssize_t n;
    while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) out.append(buffer, n);
    close(pipe_fds[0]);
    int wstatus = 0;
    waitpid(child, &wstatus, 0);
    EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child failed: " << wstatus;
    const size_t space = out.find(' ');
    int code = 0;
    if (space != std::string::npos && absl::SimpleAtoi(out.substr(0, space), &code)) {
      result = absl::Status(static_cast<absl::StatusCode>(code), out.substr(space + 1));
    } else {
      result = absl::InternalError("child said: " + out);
    }
  }
  fs::permissions(model, fs::perms::owner_all);
  return result;
}

TEST(ModelRepositoryTest, AnUnsearchableDirectoryIsPermissionDeniedNotAbsent) {
  testing::TempRepository repo;
  repo.AddModel("m");
  // The unprivileged child must reach the model directory itself.
  fs::permissions(repo.root(), fs::perms::owner_all | fs::perms::others_exec);
  const fs::path model = fs::path(repo.root()) / "m";
  absl::StatusOr<ModelRepository> r = ModelRepository::Open(repo.root());
  ASSERT_TRUE(r.ok());
  const absl::Status vocab = VocabStatusWithoutSearchPermission(*r, model);
  ASSERT_EQ(vocab.code(), absl::StatusCode::kPermissionDenied) << vocab;
  EXPECT_THAT(std::string(vocab.message()), ::testing::HasSubstr("permission denied"));
  EXPECT_THAT(std::string(vocab.message()), ::testing::HasSubstr(model.string()));
}

TEST(ModelRepositoryTest, MissingRootIsNotFound) {
  EXPECT_EQ(ModelRepository::Open("/nonexistent/repo").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace bertserve::core
