#include "server/grpc/access_control.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <grpc/grpc_security_constants.h>
#include <spdlog/spdlog.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace bertserve::grpcsvc {

absl::StatusOr<std::shared_ptr<TokenFile>> TokenFile::Open(std::string path, std::string flag) {
  std::shared_ptr<TokenFile> file(new TokenFile(std::move(path), std::move(flag)));
  Identity identity;
  absl::StatusOr<std::string> token = file->Read(&identity);
  if (!token.ok()) return token.status();
  absl::MutexLock lock(&file->mu_);
  file->token_ = *std::move(token);
  file->identity_ = identity;
  file->last_check_ = absl::Now();
  return file;
}

TokenFile::Identity TokenFile::Stat() const {
  Identity identity;
  struct stat st {};
  if (stat(path_.c_str(), &st) == 0) {
    identity.inode = st.st_ino;
    identity.size = st.st_size;
    identity.mtime_ns =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  return identity;
}

absl::StatusOr<std::string> TokenFile::Read(Identity* identity) const {
  // The identity before the read: a change during it is seen next time.
  *identity = Stat();
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag_, " ", path_, ": ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(contents.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag_, " ", path_, " holds no token"));
  }
  if (token.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag_, " ", path_, ": a token is one word (no spaces or line breaks inside it)"));
  }
  return token;
}

void TokenFile::RefreshIfChanged() const {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (now - last_check_ < absl::Seconds(1)) return;
    last_check_ = now;
  }
  // Looked at outside the lock: a slow volume must not hold every call.
  const Identity seen = Stat();
  {
    absl::MutexLock lock(&mu_);
    if (seen == identity_) return;
  }
  Identity identity;
  absl::StatusOr<std::string> token = Read(&identity);
  absl::MutexLock lock(&mu_);
  if (!token.ok()) {
    // Keep the last good token: a half-written rotation must not lock
    // everyone out. The next change is tried again.
    identity_ = seen;
    spdlog::warn("{}; keeping the previous token", std::string(token.status().message()));
    return;
  }
  if (*token != token_) spdlog::info("{} {}: token changed", flag_, path_);
  token_ = *std::move(token);
  identity_ = identity;
}

bool TokenFile::Matches(absl::string_view presented) const {
  RefreshIfChanged();
  absl::MutexLock lock(&mu_);
  // Every byte of the token is compared whatever differs first, so the time
  // taken tells nothing about how much of a guess was right.
  unsigned char diff = presented.size() == token_.size() ? 0 : 1;
  for (size_t i = 0; i < token_.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(p ^ static_cast<unsigned char>(token_[i]));
  }
  return diff == 0;
}

namespace {

// Sets `token` from `authorization: Bearer <token>`; false when the header
// is absent or not a bearer token.
bool BearerToken(const grpc::ServerContextBase& context, absl::string_view* token) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return false;
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  *token = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  return true;
}

}  // namespace

absl::Status AccessControl::Check(const grpc::ServerContextBase& context, CallKind kind) const {
  absl::string_view token;
  const bool has_token = BearerToken(context, &token);
  if (kind == CallKind::kManagement) {
    if (options_.open_management) return absl::OkStatus();
    if (options_.management_token == nullptr) {
      return absl::PermissionDeniedError(
          "model management (Models.Load, Models.Unload, RepositoryModelLoad, "
          "RepositoryModelUnload) is disabled on this listener: start "
          "bertserve with --management-token-file FILE and send 'authorization: Bearer "
          "<token>', or call it on the --admin-listen address");
    }
    if (!has_token) {
      return absl::UnauthenticatedError(
          "model management needs a token: send metadata 'authorization: Bearer <token>' "
          "(the token in the server's --management-token-file)");
    }
    if (!options_.management_token->Matches(token)) {
      return absl::UnauthenticatedError("the management token is not valid");
    }
    return absl::OkStatus();
  }
  if (options_.inference_token == nullptr) return absl::OkStatus();
  if (!has_token) {
    return absl::UnauthenticatedError(
        "this server needs a token: send metadata 'authorization: Bearer <token>' (the token "
        "in the server's --inference-token-file)");
  }
  if (options_.inference_token->Matches(token)) return absl::OkStatus();
  if (options_.management_token != nullptr && options_.management_token->Matches(token)) {
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError("the token is not valid");
}

CallerIdentity IdentityOf(const grpc::ServerContextBase& context) {
  CallerIdentity who;
  who.peer = context.peer();
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr) {
    for (const grpc::string_ref& value :
         auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME)) {
      who.certificate_subject.assign(value.data(), value.size());
      break;
    }
  }
  return who;
}

}  // namespace bertserve::grpcsvc
