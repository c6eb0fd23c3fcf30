#ifndef BERTSERVE_CLIENT_CLI_OUTPUT_H_
#define BERTSERVE_CLIENT_CLI_OUTPUT_H_

#include <string>

#include "bertserve/v1/inference.pb.h"
#include "bertserve/v1/models.pb.h"

namespace bertserve::cli {

// One JSON document ending in a newline: proto field names, defaults printed.
std::string ToJson(const google::protobuf::Message& message);

// Human-readable renderings.
std::string FormatClassify(const v1::ClassifyRequest& request,
                           const v1::ClassifyResponse& response);
std::string FormatTokenize(const v1::TokenizeResponse& response);
std::string FormatModels(const v1::ListModelsResponse& response);
std::string FormatModel(const v1::ModelStatus& status);

// The two health statuses (grpc.health.v1 ServingStatus names, e.g. "SERVING"),
// as text lines and as one JSON document {"liveness": ..., "readiness": ...}.
std::string FormatHealth(const std::string& liveness, const std::string& readiness);
std::string HealthJson(const std::string& liveness, const std::string& readiness);

}  // namespace bertserve::cli

#endif  // BERTSERVE_CLIENT_CLI_OUTPUT_H_
