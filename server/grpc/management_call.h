#ifndef BERTSERVE_SERVER_GRPC_MANAGEMENT_CALL_H_
#define BERTSERVE_SERVER_GRPC_MANAGEMENT_CALL_H_

#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/grpc/access_control.h"
#include "server/grpc/status_util.h"
#include "server/grpc/unary_call.h"
#include "server/logging/logging.h"

namespace bertserve::grpcsvc {

// Options of a call that reads only (bertserve.v1 Models.List and Get, the
// v2 metadata and repository index): the inference rule of `access`.
template <typename Request>
CallOptions<Request> ReadCall(grpc::CallbackServerContext* context, const AccessControl* access) {
  CallOptions<Request> options;
  options.refusal = access->Check(*context, CallKind::kInference);
  return options;
}

// Options of a call that loads or unloads a model, whichever protocol it
// came in: the management rule of `access`, and one audit event logged when
// the call ends (method, model as the client named it, listener, peer,
// client certificate subject, outcome), refused or not. `model_name` reads
// the model's name from the request.
template <typename Request>
CallOptions<Request> ManagementCall(grpc::CallbackServerContext* context,
                                    const AccessControl* access, const std::string& method,
                                    const std::string& listener,
                                    std::function<std::string(const Request&)> model_name) {
  CallOptions<Request> options;
  options.refusal = access->Check(*context, CallKind::kManagement);
  options.audit = [method, listener, model_name = std::move(model_name),
                   who = IdentityOf(*context)](const Request* request,
                                               const grpc::Status& status) {
    // The name as the client sent it (known or not), bounded: the log is not
    // a place for a client to write kilobytes.
    std::string model = request != nullptr ? model_name(*request).substr(0, 256) : std::string();
    logging::Log(status.ok() ? spdlog::level::info : spdlog::level::warn,
                 absl::StrCat("audit: ", method, " of model \"", model, "\" ",
                              status.ok() ? "succeeded" : "failed"),
                 {{"event", "audit"},
                  {"method", method},
                  {"model", model},
                  {"listener", listener},
                  {"peer", who.peer},
                  {"client_subject", who.certificate_subject},
                  {"code", std::string(CodeName(status.error_code()))},
                  {"error", status.error_message()}});
  };
  return options;
}

}  // namespace bertserve::grpcsvc

#endif  // BERTSERVE_SERVER_GRPC_MANAGEMENT_CALL_H_
