#ifndef BERTSERVE_SERVER_GRPC_UNARY_CALL_H_
#define BERTSERVE_SERVER_GRPC_UNARY_CALL_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/core/worker_pool.h"
#include "server/grpc/status_util.h"

namespace bertserve::grpcsvc {

// Told about every finished RPC: the model label (a known model or ""), the
// method, the final status, the seconds it took and the client's request id
// ("" where the method has none).
using CallObserver =
    std::function<void(const std::string& model, absl::string_view method,
                       const grpc::Status& status, double seconds,
                       const std::string& request_id)>;

// The call's deadline; InfiniteFuture when the client set none.
inline absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

// The server side of one unary call. It finishes exactly once, with whatever
// comes first: the handler's answer, or the call's cancellation (the client
// cancelled, its deadline passed, or the server is shutting down), so that a
// call whose work is stuck (a model read hanging on its storage, say) never
// holds the call, its client or the server's shutdown. An answer that comes
// after cancellation is dropped. Deletes itself when gRPC is done with it.
class UnaryCall;

// What a UnaryCall shares with the work answering it.
struct UnaryCallState {
  absl::Mutex mu;
  bool finished ABSL_GUARDED_BY(mu) = false;
  UnaryCall* call = nullptr;  // set once at construction
};

class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  // `observe` is told the final status and the seconds since `received`.
  UnaryCall(absl::Time deadline, std::function<void(const grpc::Status&)> observe)
      : state_(std::make_shared<State>()), deadline_(deadline), observe_(std::move(observe)) {
    state_->call = this;
  }

  // Finishes with `answer()` (which may write the response) unless the call
  // already finished; true if it finished now. Safe from any thread, before
  // or after the call is gone: it holds only the shared state.
  class Finisher {
   public:
    bool operator()(const std::function<grpc::Status()>& answer) const {
      UnaryCall* call;
      {
        absl::MutexLock lock(&state_->mu);
        if (state_->finished) return false;
        state_->finished = true;
        call = state_->call;
      }
      // The call lives until Finish has been called and OnDone has run, and
      // only the one that set `finished` gets here.
      const grpc::Status status = answer();
      if (call->observe_) call->observe_(status);
      call->Finish(status);
      return true;
    }
    bool finished() const {
      absl::MutexLock lock(&state_->mu);
      return state_->finished;
    }

   private:
    friend class UnaryCall;
    explicit Finisher(std::shared_ptr<UnaryCallState> state) : state_(std::move(state)) {}
    std::shared_ptr<UnaryCallState> state_;
  };

  Finisher finisher() const { return Finisher(state_); }

  void OnCancel() override {
    // gRPC's timer and ours may disagree by a little about when the deadline
    // is; a cancellation that close to it is the deadline's.
    const bool late = absl::Now() >= deadline_ - absl::Milliseconds(100);
    finisher()([late] {
      return late ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                 "the deadline passed before the answer was ready")
                  : grpc::Status(grpc::StatusCode::CANCELLED,
                                 "the call was cancelled (by the client, or a server shutdown)");
    });
  }
  void OnDone() override { delete this; }

 private:
  using State = UnaryCallState;
  std::shared_ptr<State> state_;
  const absl::Time deadline_;
  const std::function<void(const grpc::Status&)> observe_;
};

// What a unary method adds to the common path; every part is optional.
template <typename Request>
struct CallOptions {
  // The client's request id, for the observer.
  std::function<std::string(const Request&)> request_id;
  // Not OK: the call is refused with this status (access control decided it
  // on the gRPC thread). It is applied once the request is parsed, so that
  // the audit names the model the call was for, and it wins over any parse
  // error: an unauthenticated caller learns nothing about its request.
  absl::Status refusal;
  // Told once how the call ended, with the request when it was parsed (else
  // null); for the audit trail of management calls.
  std::function<void(const Request*, const grpc::Status&)> audit;
};

// Runs a raw-bytes unary RPC on `pool`: parse the request (UTF-8 errors are
// INVALID_ARGUMENT naming the field), apply `options.refusal`, refuse it if
// its deadline has passed, call `handler` with the request, when it arrived,
// its deadline and a `respond` function it must call once, from any thread
// (or never, if the call is cancelled first); then serialize, finish, and
// tell `observer` (and `options.audit`). `model_label` picks the metrics
// label from the parsed request.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* RunUnaryAsync(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes, core::WorkerPool* pool, absl::string_view method,
    const CallObserver* observer, std::function<std::string(const Request&)> model_label,
    std::function<void(const Request&, absl::Time received, absl::Time deadline,
                       std::function<void(absl::StatusOr<Response>)> respond)>
        handler,
    CallOptions<Request> options = {}) {
  const absl::Time received = absl::Now();
  const absl::Time deadline = DeadlineOf(context);
  auto request = std::make_shared<Request>();
  // What the observer is told: set once the request is parsed.
  struct Labels {
    std::string model;
    std::string request_id;
    bool parsed = false;
  };
  auto labels = std::make_shared<Labels>();
  auto* call = new UnaryCall(deadline, [=, method = std::string(method),
                                        audit = options.audit](const grpc::Status& status) {
    if (observer != nullptr && *observer) {
      (*observer)(labels->model, method, status, absl::ToDoubleSeconds(absl::Now() - received),
                  labels->request_id);
    }
    if (audit) audit(labels->parsed ? request.get() : nullptr, status);
  });
  UnaryCall::Finisher finish = call->finisher();
  // The request's bytes belong to the call, which may be gone (cancelled)
  // before the pool runs this: work on a copy (it shares the slices).
  auto bytes = std::make_shared<grpc::ByteBuffer>(*request_bytes);
  pool->Submit([=, request_id = options.request_id, refusal = options.refusal] {
    if (finish.finished()) return;  // cancelled while queued
    auto fail = [&](absl::Status status) { finish([&] { return ToGrpcStatus(status); }); };
    // gRPC runs the method with no request when the client cancels before
    // sending it.
    if (!bytes->Valid()) return fail(absl::CancelledError("cancelled before the request arrived"));
    if (absl::Status status = ParseRequest(*bytes, request.get()); !status.ok()) {
      return fail(refusal.ok() ? status : refusal);
    }
    // Written before any finish can read them: the finisher runs only after this.
    labels->model = model_label(*request);
    if (request_id) labels->request_id = request_id(*request);
    labels->parsed = true;
    if (!refusal.ok()) return fail(refusal);
    if (absl::Now() >= deadline) {
      return fail(absl::DeadlineExceededError("deadline passed before the request was started"));
    }
    handler(*request, received, deadline, [=](absl::StatusOr<Response> response) {
      finish([&] {
        return ToGrpcStatus(response.ok() ? SerializeResponse(*response, response_bytes)
                                          : response.status());
      });
    });
  });
  return call;
}

// RunUnaryAsync for handlers that answer on the pool thread they run on.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* RunUnary(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes, core::WorkerPool* pool, absl::string_view method,
    const CallObserver* observer, std::function<std::string(const Request&)> model_label,
    std::function<absl::StatusOr<Response>(const Request&, absl::Time received)> handler,
    CallOptions<Request> options = {}) {
  return RunUnaryAsync<Request, Response>(
      context, request_bytes, response_bytes, pool, method, observer, std::move(model_label),
      [handler = std::move(handler)](const Request& request, absl::Time received, absl::Time,
                                     std::function<void(absl::StatusOr<Response>)> respond) {
        respond(handler(request, received));
      },
      std::move(options));
}

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_UNARY_CALL_H_
