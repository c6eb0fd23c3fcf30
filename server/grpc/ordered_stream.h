#ifndef BERTSERVE_SERVER_GRPC_ORDERED_STREAM_H_
#define BERTSERVE_SERVER_GRPC_ORDERED_STREAM_H_

#include <functional>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/worker_pool.h"
#include "server/grpc/unary_call.h"

namespace bertserve::grpcsvc {

// Most requests of one stream being worked on at once; further reads wait,
// so a fast writer cannot queue unbounded work.
inline constexpr int kMaxStreamInFlight = 32;

// One message of a bidirectional stream where every request gets exactly
// one answer, in request order, and an error answers only the request that
// caused it (inside the answer message; the stream goes on): bertserve.v1
// ClassifyStream and the Open Inference Protocol's ModelStreamInfer.
//
// The handler runs on `pool` with the request's bytes, when it was read and
// the stream's deadline (per-message deadlines do not exist), and must call
// `answer` exactly once, from any thread, with the serialized answer.
using StreamHandler =
    std::function<void(const grpc::ByteBuffer& request, absl::Time received, absl::Time deadline,
                       std::function<void(grpc::ByteBuffer answer)> answer)>;

// Starts the reactor of one stream of `method`, unless `refusal` (access
// control's decision) is not OK: then the stream finishes at once with it,
// and `observer` (may be null) is told. The reactor reads requests as they
// come, runs up to kMaxStreamInFlight of them at once, writes answers
// strictly in request order, and deletes itself once gRPC is done with it and
// no handler still holds it. `pool` must outlive every stream; `handler` is
// kept per stream.
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* OpenOrderedStream(
    grpc::CallbackServerContext* context, const absl::Status& refusal,
    const CallObserver* observer, absl::string_view method, core::WorkerPool* pool,
    StreamHandler handler);

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_ORDERED_STREAM_H_
