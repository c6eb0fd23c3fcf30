#ifndef BERTSERVE_SERVER_GRPC_UNARY_CALL_H_
#define BERTSERVE_SERVER_GRPC_UNARY_CALL_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
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

// Runs a raw-bytes unary RPC on `pool`: parse the request (UTF-8 errors are
// INVALID_ARGUMENT naming the field), refuse it if its deadline has passed,
// call `handler`, which must call its `respond` argument exactly once, from
// any thread; then serialize, finish, and tell `observer`. `model_label`
// picks the metrics label from the parsed request, `request_id` (optional)
// the client's request id.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* RunUnaryAsync(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes, core::WorkerPool* pool, absl::string_view method,
    const CallObserver* observer, std::function<std::string(const Request&)> model_label,
    std::function<void(const Request&, absl::Time received,
                       std::function<void(absl::StatusOr<Response>)> respond)>
        handler,
    std::function<std::string(const Request&)> request_id = nullptr) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time received = absl::Now();
  pool->Submit([=, method = std::string(method)] {
    auto request = std::make_shared<Request>();
    auto finish = [=](const std::string& model, absl::Status status) {
      grpc::Status result = ToGrpcStatus(status);
      if (observer != nullptr && *observer) {
        (*observer)(model, method, result, absl::ToDoubleSeconds(absl::Now() - received),
                    request_id ? request_id(*request) : std::string());
      }
      reactor->Finish(result);
    };
    absl::Status status = ParseRequest(*request_bytes, request.get());
    if (!status.ok()) return finish("", status);
    const std::string model = model_label(*request);
    if (context->deadline() < std::chrono::system_clock::now()) {
      return finish(model, absl::DeadlineExceededError(
                               "deadline passed before the request was started"));
    }
    if (context->IsCancelled()) return finish(model, absl::CancelledError("client cancelled"));
    handler(*request, received, [=](absl::StatusOr<Response> response) {
      finish(model, response.ok() ? SerializeResponse(*response, response_bytes)
                                  : response.status());
    });
  });
  return reactor;
}

// RunUnaryAsync for handlers that answer on the pool thread they run on.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* RunUnary(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes, core::WorkerPool* pool, absl::string_view method,
    const CallObserver* observer, std::function<std::string(const Request&)> model_label,
    std::function<absl::StatusOr<Response>(const Request&, absl::Time received)> handler) {
  return RunUnaryAsync<Request, Response>(
      context, request_bytes, response_bytes, pool, method, observer, std::move(model_label),
      [handler = std::move(handler)](const Request& request, absl::Time received,
                                     std::function<void(absl::StatusOr<Response>)> respond) {
        respond(handler(request, received));
      });
}

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_UNARY_CALL_H_
