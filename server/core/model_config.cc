#include "server/core/model_config.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace bertserve::core {
namespace {

// Collects every parser complaint with its position so the error names the
// line and field rather than only "parse failed".
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit ErrorCollector(std::string path) : path_(std::move(path)) {}
  void AddError(int line, int column, const std::string& message) override {
    // The parser counts from zero; editors count from one.
    errors_.push_back(absl::StrCat(path_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, int column, const std::string& message) override {
    AddError(line, column, message);
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::string path_;
  std::vector<std::string> errors_;
};

template <typename Message>
absl::Status ParseText(const std::string& text, const std::string& display_path,
                       Message* message) {
  ErrorCollector errors(display_path);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, message)) {
    std::string joined = errors.Joined();
    if (joined.empty()) joined = absl::StrCat(display_path, ": not a valid text proto");
    return absl::InvalidArgumentError(joined);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return contents.str();
}

absl::Status FieldError(const std::string& path, absl::string_view field,
                        absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": field ", field, ": ", problem));
}

}  // namespace

absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                                 const std::string& display_path,
                                                 ServerDevices devices) {
  v1::ModelConfig config;
  if (absl::Status s = ParseText(text, display_path, &config); !s.ok()) return s;

  if (config.max_sequence_length() < 0 ||
      config.max_sequence_length() > kMaxSequenceLengthLimit) {
    return FieldError(display_path, "max_sequence_length",
                      absl::StrCat(config.max_sequence_length(), " is outside 0..",
                                   kMaxSequenceLengthLimit));
  }
  if (config.max_sequence_length() == 0) {
    config.set_max_sequence_length(kDefaultMaxSequenceLength);
  }
  if (config.max_sequence_length() < 3) {
    return FieldError(display_path, "max_sequence_length",
                      "must be at least 3 ([CLS] x [SEP])");
  }
  v1::BatchLimits* batch = config.mutable_batch();
  if (batch->max_client_batch_size() < 0) {
    return FieldError(display_path, "batch.max_client_batch_size", "must not be negative");
  }
  if (batch->max_client_batch_size() == 0) {
    batch->set_max_client_batch_size(kDefaultMaxClientBatchSize);
  }
  if (batch->max_batch_tokens() < 0) {
    return FieldError(display_path, "batch.max_batch_tokens", "must not be negative");
  }
  if (batch->max_batch_tokens() == 0) {
    const bool on_cpu =
        devices == ServerDevices::kCpu || config.device() == v1::ModelConfig::DEVICE_CPU;
    batch->set_max_batch_tokens(
        on_cpu ? std::max<int64_t>(kDefaultCpuMaxBatchTokens, config.max_sequence_length())
               : kDefaultMaxBatchTokens);
  }
  if (batch->max_batch_tokens() < config.max_sequence_length()) {
    return FieldError(
        display_path, "batch.max_batch_tokens",
        absl::StrCat(batch->max_batch_tokens(),
                     " is below max_sequence_length ", config.max_sequence_length(),
                     ": a single full-length input could never run"));
  }
  if (batch->max_queue_delay_us() < 0) {
    return FieldError(display_path, "batch.max_queue_delay_us", "must not be negative");
  }
  for (int i = 0; i < config.labels_size(); ++i) {
    if (config.labels(i).empty()) {
      return FieldError(display_path, absl::StrCat("labels[", i, "]"), "is empty");
    }
  }
  if (config.max_replicas() < 0) {
    return FieldError(display_path, "max_replicas", "must not be negative");
  }
  if (config.max_replicas() == 0) config.set_max_replicas(1);
  for (int i = 0; i < config.devices_size(); ++i) {
    if (config.devices(i) < 0) {
      return FieldError(display_path, absl::StrCat("devices[", i, "]"),
                        absl::StrCat(config.devices(i), " is not a device index"));
    }
  }
  if (config.model_file().empty()) config.set_model_file("model.pt");
  if (config.model_file().find('/') != std::string::npos ||
      config.model_file() == "." || config.model_file() == "..") {
    return FieldError(display_path, "model_file",
                      "must be a file name inside the model directory");
  }
  return config;
}

absl::StatusOr<v1::ModelConfig> ReadModelConfig(const std::string& path, ServerDevices devices) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseModelConfig(*text, path, devices);
}

absl::StatusOr<v1::ServerConfig> ReadServerConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  v1::ServerConfig config;
  if (absl::Status s = ParseText(*text, path, &config); !s.ok()) return s;
  return config;
}

}  // namespace bertserve::core
