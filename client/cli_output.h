#ifndef BERTSERVE_CLIENT_CLI_OUTPUT_H_
#define BERTSERVE_CLIENT_CLI_OUTPUT_H_

#include <string>

#include "bertserve/v1/inference.pb.h"
#include "bertserve/v1/models.pb.h"

namespace bertserve::cli {

// One JSON document: proto field names, defaults printed.
std::string ToJson(const google::protobuf::Message& message);

// Human-readable renderings.
std::string FormatClassify(const v1::ClassifyRequest& request,
                           const v1::ClassifyResponse& response);
std::string FormatTokenize(const v1::TokenizeResponse& response);
std::string FormatModels(const v1::ListModelsResponse& response);
std::string FormatModel(const v1::ModelStatus& status);

}  // namespace bertserve::cli

#endif  // BERTSERVE_CLIENT_CLI_OUTPUT_H_
