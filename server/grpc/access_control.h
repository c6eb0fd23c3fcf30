#ifndef BERTSERVE_SERVER_GRPC_ACCESS_CONTROL_H_
#define BERTSERVE_SERVER_GRPC_ACCESS_CONTROL_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bertserve::grpcsvc {

// A bearer token kept in a file (a Kubernetes Secret mounted as a file, say),
// never on the command line where `ps` shows it. Surrounding whitespace is
// not part of the token. The file is read again when its identity (inode,
// size, modification time) changes, checked at most once a second, so a
// rotated Secret takes effect without a restart; a rotation that leaves the
// file unreadable or empty keeps the last good token and logs why.
// Thread-safe.
class TokenFile {
 public:
  // `flag` names the setting in messages (e.g. "--management-token-file").
  // InvalidArgument if the file cannot be read or holds no token.
  static absl::StatusOr<std::shared_ptr<TokenFile>> Open(std::string path, std::string flag);

  // Whether `presented` is the token, in time that depends only on the
  // token's length.
  bool Matches(absl::string_view presented) const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }

 private:
  struct Identity {
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const Identity& o) const {
      return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  // The file's identity now; all zero when it cannot be looked at.
  Identity Stat() const;
  TokenFile(std::string path, std::string flag) : path_(std::move(path)), flag_(std::move(flag)) {}
  // Reads the file; the token, or why not.
  absl::StatusOr<std::string> Read(Identity* identity) const;
  void RefreshIfChanged() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string path_;
  const std::string flag_;
  mutable absl::Mutex mu_;
  mutable std::string token_ ABSL_GUARDED_BY(mu_);
  mutable Identity identity_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time last_check_ ABSL_GUARDED_BY(mu_);
};

// What a call does, for access control. Models.List and Models.Get only
// read, so they are kInference; health is never checked.
enum class CallKind { kInference, kManagement };

// Who may call what on one gRPC listener:
//  - management (Models.Load and Unload; the Open Inference Protocol's
//    RepositoryModelLoad and Unload) needs the management token; with no
//    management token configured it is refused PERMISSION_DENIED, unless
//    the listener is the admin one (`open_management`), which serves it to
//    anyone who can reach it (meant for loopback or a pod-local sidecar);
//  - inference (and Models.List/Get) needs the inference token when one is
//    configured, else is open; the management token is accepted too.
// Tokens come as gRPC metadata `authorization: Bearer <token>`. A missing or
// wrong token is UNAUTHENTICATED. Thread-safe; immutable after construction.
struct AccessOptions {
  std::shared_ptr<TokenFile> management_token;  // null: no management token
  std::shared_ptr<TokenFile> inference_token;   // null: inference is open
  bool open_management = false;                 // the admin listener
};

class AccessControl {
 public:
  explicit AccessControl(AccessOptions options) : options_(std::move(options)) {}

  // OK, or the status the call is refused with.
  absl::Status Check(const grpc::ServerContextBase& context, CallKind kind) const;

 private:
  const AccessOptions options_;
};

// Who called, for the audit trail: the peer address ("ipv4:10.0.0.7:51234")
// and, over mutual TLS, the client certificate's subject ("" otherwise).
struct CallerIdentity {
  std::string peer;
  std::string certificate_subject;
};
CallerIdentity IdentityOf(const grpc::ServerContextBase& context);

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_ACCESS_CONTROL_H_
