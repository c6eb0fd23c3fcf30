#ifndef BERTSERVE_SERVER_GRPC_STATUS_UTIL_H_
#define BERTSERVE_SERVER_GRPC_STATUS_UTIL_H_

#include "absl/strings/string_view.h"

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace bertserve::grpcsvc {

// The one place absl::Status becomes grpc::Status. The canonical codes are
// numerically the same; the message is kept.
grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "NOT_FOUND", ... for metrics labels and logs.
absl::string_view CodeName(grpc::StatusCode code);

// Parses a request ourselves instead of letting gRPC do it, so a string field
// that is not UTF-8 comes back as InvalidArgument naming the field
// ("inputs[1].text is not valid UTF-8") rather than gRPC's bare INTERNAL.
absl::Status ParseRequest(const grpc::ByteBuffer& buffer, google::protobuf::Message* message);

// Serializes a response into `buffer`.
absl::Status SerializeResponse(const google::protobuf::Message& message,
                               grpc::ByteBuffer* buffer);

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_STATUS_UTIL_H_
