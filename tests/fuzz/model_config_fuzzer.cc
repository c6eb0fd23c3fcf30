// config.pbtxt of any bytes: ParseModelConfig accepts it with every default
// filled in and every range of model_config.h holding, or refuses it with
// InvalidArgument; what it accepts, printed back as text, parses to the same
// config (defaults are a fixed point).
#include <cstdint>
#include <string>

#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/core/model_config.h"
#include "tests/fuzz/fuzz_check.h"

// protobuf logs each string field that is not UTF-8; refusing it is the
// behaviour under test, the log line only slows the run down.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bertserve::core;  // NOLINT
  const std::string text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<bertserve::v1::ModelConfig> config =
      ParseModelConfig(text, "models/fuzz/config.pbtxt");
  if (!config.ok()) {
    BERTSERVE_FUZZ_CHECK(absl::IsInvalidArgument(config.status()), "%s",
                         config.status().ToString().c_str());
    BERTSERVE_FUZZ_CHECK(config.status().message().find("models/fuzz/config.pbtxt") !=
                             absl::string_view::npos,
                         "the error does not name the file: %s",
                         std::string(config.status().message()).c_str());
    return 0;
  }
  const bertserve::v1::ModelConfig& c = *config;
  BERTSERVE_FUZZ_CHECK(c.max_sequence_length() >= 3 &&
                           c.max_sequence_length() <= kMaxSequenceLengthLimit,
                       "max_sequence_length %d", c.max_sequence_length());
  BERTSERVE_FUZZ_CHECK(c.batch().max_client_batch_size() > 0, "max_client_batch_size %d",
                       c.batch().max_client_batch_size());
  BERTSERVE_FUZZ_CHECK(c.batch().max_batch_tokens() >= c.max_sequence_length(),
                       "max_batch_tokens %lld", static_cast<long long>(c.batch().max_batch_tokens()));
  // 0 is the default (work-conserving: no wait); never negative.
  BERTSERVE_FUZZ_CHECK(c.batch().max_queue_delay_us() >= 0, "max_queue_delay_us %lld",
                       static_cast<long long>(c.batch().max_queue_delay_us()));
  for (const std::string& label : c.labels()) BERTSERVE_FUZZ_CHECK(!label.empty(), "empty label");
  BERTSERVE_FUZZ_CHECK(!c.model_file().empty() && c.model_file().find('/') == std::string::npos &&
                           c.model_file() != "." && c.model_file() != "..",
                       "model_file \"%s\"", c.model_file().c_str());

  std::string printed;
  BERTSERVE_FUZZ_CHECK(google::protobuf::TextFormat::PrintToString(c, &printed), "print failed");
  const absl::StatusOr<bertserve::v1::ModelConfig> again =
      ParseModelConfig(printed, "models/fuzz/config.pbtxt");
  BERTSERVE_FUZZ_CHECK(again.ok(), "the printed config is refused: %s\n%s",
                       again.status().ToString().c_str(), printed.c_str());
  BERTSERVE_FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(c, *again),
                       "parsing the printed config changes it:\n%s", printed.c_str());
  return 0;
}
