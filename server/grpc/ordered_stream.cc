#include "server/grpc/ordered_stream.h"

#include <map>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/grpc/status_util.h"
#include "server/grpc/unary_call.h"

namespace bertserve::grpcsvc {
namespace {

// Reads requests as they come, runs up to kMaxStreamInFlight of them at once
// on the pool, and writes answers strictly in request order. The reactor
// deletes itself once gRPC is done with it and no pool work still refers to it.
class OrderedStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  OrderedStream(grpc::CallbackServerContext* context, core::WorkerPool* pool,
                StreamHandler handler)
      : pool_(pool), handler_(std::move(handler)), deadline_(DeadlineOf(context)) {
    StartRead(&read_buffer_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      reads_done_ = true;
      MaybeFinish();
      return;
    }
    const int64_t seq = next_read_seq_++;
    ++in_flight_;
    ++pool_refs_;
    auto bytes = std::make_shared<grpc::ByteBuffer>(read_buffer_);
    const absl::Time received = absl::Now();
    pool_->Submit([this, seq, bytes, received] {
      handler_(*bytes, received, deadline_,
               [this, seq](grpc::ByteBuffer answer) { Complete(seq, std::move(answer)); });
    });
    if (in_flight_ < kMaxStreamInFlight) {
      StartRead(&read_buffer_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    ready_.erase(next_write_seq_++);
    --in_flight_;
    if (!ok) {
      failed_ = true;
      MaybeFinish();
      return;
    }
    if (read_paused_ && !reads_done_) {
      read_paused_ = false;
      StartRead(&read_buffer_);
    }
    MaybeWrite();
    MaybeFinish();
  }

  // The client cancelled, the stream's deadline passed, or the server is
  // shutting down: no more reads or writes will succeed, so finish now
  // rather than wait for answers nobody can receive.
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    failed_ = true;
    MaybeFinish();
  }

  void OnDone() override {
    bool destroy;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      destroy = pool_refs_ == 0;
    }
    if (destroy) delete this;
  }

 private:
  // The answer to request `seq`, from whichever thread the handler answered on.
  void Complete(int64_t seq, grpc::ByteBuffer out) {
    bool destroy = false;
    {
      absl::MutexLock lock(&mu_);
      ready_.emplace(seq, std::move(out));
      --pool_refs_;
      if (!done_) {
        MaybeWrite();
        MaybeFinish();
      }
      destroy = done_ && pool_refs_ == 0;
    }
    if (destroy) delete this;
  }

  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || failed_ || finished_) return;
    auto it = ready_.find(next_write_seq_);
    if (it == ready_.end()) return;
    writing_ = true;
    StartWrite(&it->second);
  }

  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (failed_ || (reads_done_ && !writing_ && next_write_seq_ == next_read_seq_)) {
      finished_ = true;
      Finish(failed_ ? grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed")
                     : grpc::Status::OK);
    }
  }

  core::WorkerPool* const pool_;
  const StreamHandler handler_;
  const absl::Time deadline_;  // the stream's; per-message deadlines do not exist
  absl::Mutex mu_;
  grpc::ByteBuffer read_buffer_;
  std::map<int64_t, grpc::ByteBuffer> ready_ ABSL_GUARDED_BY(mu_);
  int64_t next_read_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_write_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int pool_refs_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

class RefusedStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedStream(const absl::Status& refusal) { Finish(ToGrpcStatus(refusal)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* OpenOrderedStream(
    grpc::CallbackServerContext* context, const absl::Status& refusal,
    const CallObserver* observer, absl::string_view method, core::WorkerPool* pool,
    StreamHandler handler) {
  if (!refusal.ok()) {
    if (observer != nullptr && *observer) (*observer)("", method, ToGrpcStatus(refusal), 0.0, "");
    return new RefusedStream(refusal);
  }
  return new OrderedStream(context, pool, std::move(handler));
}

}  // namespace bertserve::grpcsvc
