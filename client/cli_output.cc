#include "client/cli_output.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"

namespace bertserve::cli {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

std::string FormatClassify(const v1::ClassifyRequest& request,
                           const v1::ClassifyResponse& response) {
  std::string out;
  for (int i = 0; i < response.results_size(); ++i) {
    const v1::Classification& r = response.results(i);
    const v1::TextInput& input = request.inputs(i);
    absl::StrAppend(&out, "[", i, "] ", input.text());
    if (!input.text_pair().empty()) absl::StrAppend(&out, "  ||  ", input.text_pair());
    absl::StrAppend(&out, "  (", r.num_tokens(), " tokens", r.truncated() ? ", truncated" : "",
                    ")\n");
    for (const v1::LabelScore& s : r.scores()) {
      absl::StrAppend(&out, absl::StrFormat("    %-24s %10.6f\n", s.label(), s.score()));
    }
  }
  const v1::Timing& t = response.timing();
  absl::StrAppend(&out, absl::StrFormat(
                            "model %s: tokenize %.3f ms, queue %.3f ms, compute %.3f ms, "
                            "total %.3f ms\n",
                            response.model(), t.tokenize_seconds() * 1e3,
                            t.queue_seconds() * 1e3, t.compute_seconds() * 1e3,
                            t.total_seconds() * 1e3));
  return out;
}

std::string FormatTokenize(const v1::TokenizeResponse& response) {
  std::string out = absl::StrFormat("%-6s %-20s %-7s %-5s %s\n", "id", "token", "offsets",
                                    "type", "seq");
  for (const v1::Token& t : response.tokens()) {
    absl::StrAppend(&out, absl::StrFormat("%-6d %-20s %3d:%-3d %-5d %d\n", t.id(), t.token(),
                                          t.start(), t.end(), t.type_id(), t.sequence()));
  }
  if (response.truncated()) absl::StrAppend(&out, "(truncated)\n");
  return out;
}

std::string FormatModel(const v1::ModelStatus& m) {
  std::string out = absl::StrFormat("%-24s %-9s %-8s %12d bytes  %d labels", m.name(),
                                    v1::ModelState_Name(m.state()), m.device(),
                                    m.weight_bytes(), m.num_labels());
  if (!m.last_error().empty()) absl::StrAppend(&out, "\n    error: ", m.last_error());
  // With replicas: where each copy is and what waits for it.
  if (m.copies_size() > 1) {
    for (const v1::ModelCopy& c : m.copies()) {
      absl::StrAppend(&out, absl::StrFormat("\n    copy on %-8s %-7s %d in use, %d inputs (%d "
                                            "tokens) queued",
                                            c.device(), c.replica() ? "replica" : "primary",
                                            c.in_use(), c.queued_inputs(), c.queued_tokens()));
    }
  }
  absl::StrAppend(&out, "\n");
  return out;
}

std::string FormatModels(const v1::ListModelsResponse& response) {
  std::string out;
  for (const v1::ModelStatus& m : response.models()) absl::StrAppend(&out, FormatModel(m));
  if (response.models().empty()) out = "(no models in the repository)\n";
  // Every device's memory, so a several-GPU server shows where room is.
  for (const v1::DeviceStatus& d : response.devices()) {
    // The plain CPU has no budget (0): models there are only counted.
    const std::string budget =
        d.budget_bytes() > 0
            ? absl::StrFormat("budget %d bytes, admitted %d", d.budget_bytes(), d.reserved_bytes())
            : std::string("no budget");
    absl::StrAppend(&out, absl::StrFormat("device %-8s %s, %d models%s\n", d.name(), budget,
                                          d.resident_models(), d.lost() ? ", LOST" : ""));
  }
  return out;
}

std::string FormatHealth(const std::string& liveness, const std::string& readiness) {
  return absl::StrFormat("%-10s %s\n%-10s %s\n", "liveness", liveness, "readiness", readiness);
}

std::string HealthJson(const std::string& liveness, const std::string& readiness) {
  // Enum names need no escaping.
  return absl::StrFormat("{\n \"liveness\": \"%s\",\n \"readiness\": \"%s\"\n}\n", liveness,
                         readiness);
}

}  // namespace bertserve::cli
