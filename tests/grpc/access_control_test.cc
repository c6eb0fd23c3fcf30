#include "server/grpc/access_control.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <grpcpp/test/server_context_test_spouse.h>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace bertserve::grpcsvc {
namespace {

class TempFile {
 public:
  TempFile() {
    char name[] = "/tmp/bertserve-token-XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  // Replaces the file as a Secret rotation does: a new file renamed over it.
  void Write(const std::string& contents) const {
    const std::string next = path_ + ".next";
    std::ofstream(next, std::ios::binary | std::ios::trunc) << contents;
    ASSERT_EQ(std::rename(next.c_str(), path_.c_str()), 0);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A server context carrying `authorization` metadata, as a call would.
class Call {
 public:
  explicit Call(const std::string& authorization = "") : spouse_(&context_) {
    if (!authorization.empty()) spouse_.AddClientMetadata("authorization", authorization);
  }
  const grpc::ServerContext& context() const { return context_; }

 private:
  grpc::ServerContext context_;
  grpc::testing::ServerContextTestSpouse spouse_;
};

std::shared_ptr<TokenFile> Token(const TempFile& file, const std::string& flag) {
  absl::StatusOr<std::shared_ptr<TokenFile>> token = TokenFile::Open(file.path(), flag);
  EXPECT_TRUE(token.ok()) << token.status();
  return token.ok() ? *token : nullptr;
}

TEST(TokenFileTest, TrimsWhitespaceAndComparesExactly) {
  TempFile file;
  file.Write("  s3cret-token\n");
  std::shared_ptr<TokenFile> token = Token(file, "--management-token-file");
  ASSERT_NE(token, nullptr);
  EXPECT_TRUE(token->Matches("s3cret-token"));
  EXPECT_FALSE(token->Matches("s3cret-toke"));
  EXPECT_FALSE(token->Matches("s3cret-token2"));
  EXPECT_FALSE(token->Matches(""));
  EXPECT_FALSE(token->Matches("S3cret-token"));
}

TEST(TokenFileTest, RefusesMissingEmptyAndMultiWordFiles) {
  absl::StatusOr<std::shared_ptr<TokenFile>> missing =
      TokenFile::Open("/nonexistent/bertserve-token", "--management-token-file");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--management-token-file /nonexistent"),
            std::string::npos)
      << missing.status();
  TempFile file;
  file.Write(" \n\t");
  absl::StatusOr<std::shared_ptr<TokenFile>> empty = TokenFile::Open(file.path(), "--x");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("holds no token"), std::string::npos);
  file.Write("two words\n");
  EXPECT_FALSE(TokenFile::Open(file.path(), "--x").ok());
}

TEST(TokenFileTest, ARotatedFileTakesEffectAndABrokenOneKeepsTheLastToken) {
  TempFile file;
  file.Write("old-token");
  std::shared_ptr<TokenFile> token = Token(file, "--management-token-file");
  ASSERT_NE(token, nullptr);
  file.Write("new-token");
  // The file is looked at again at most once a second: wait for the change
  // to be seen, however long the machine takes (the test's timeout bounds it).
  while (!token->Matches("new-token")) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(token->Matches("old-token"));
  file.Write("");
  // Past the next check the empty file has been read and refused.
  absl::SleepFor(absl::Milliseconds(1100));
  EXPECT_TRUE(token->Matches("new-token"));
}

TEST(AccessControlTest, ManagementIsClosedWithoutATokenFile) {
  AccessControl access(AccessOptions{});
  absl::Status s = access.Check(Call("Bearer anything").context(), CallKind::kManagement);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("--management-token-file"), std::string::npos) << s;
  EXPECT_NE(s.message().find("--admin-listen"), std::string::npos) << s;
  // Inference stays open.
  EXPECT_TRUE(access.Check(Call().context(), CallKind::kInference).ok());
}

TEST(AccessControlTest, ManagementNeedsTheRightBearerToken) {
  TempFile file;
  file.Write("m-token");
  AccessOptions options;
  options.management_token = Token(file, "--management-token-file");
  AccessControl access(options);
  EXPECT_EQ(access.Check(Call().context(), CallKind::kManagement).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(access.Check(Call("Bearer wrong").context(), CallKind::kManagement).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(access.Check(Call("Basic m-token").context(), CallKind::kManagement).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(access.Check(Call("m-token").context(), CallKind::kManagement).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(access.Check(Call("Bearer m-token").context(), CallKind::kManagement).ok());
  EXPECT_TRUE(access.Check(Call("bearer m-token").context(), CallKind::kManagement).ok());
  EXPECT_TRUE(access.Check(Call().context(), CallKind::kInference).ok());
}

TEST(AccessControlTest, TheAdminListenerServesManagementWithoutAToken) {
  AccessOptions options;
  options.open_management = true;
  AccessControl access(options);
  EXPECT_TRUE(access.Check(Call().context(), CallKind::kManagement).ok());
}

TEST(AccessControlTest, InferenceTokenGuardsInferenceAndTheManagementTokenAlsoServes) {
  TempFile management, inference;
  management.Write("m-token");
  inference.Write("i-token");
  AccessOptions options;
  options.management_token = Token(management, "--management-token-file");
  options.inference_token = Token(inference, "--inference-token-file");
  AccessControl access(options);
  absl::Status none = access.Check(Call().context(), CallKind::kInference);
  EXPECT_EQ(none.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(none.message().find("--inference-token-file"), std::string::npos) << none;
  EXPECT_EQ(access.Check(Call("Bearer wrong").context(), CallKind::kInference).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(access.Check(Call("Bearer i-token").context(), CallKind::kInference).ok());
  EXPECT_TRUE(access.Check(Call("Bearer m-token").context(), CallKind::kInference).ok());
  // The inference token is not a management token.
  EXPECT_EQ(access.Check(Call("Bearer i-token").context(), CallKind::kManagement).code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace bertserve::grpcsvc
