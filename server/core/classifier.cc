#include "server/core/classifier.h"

#include <algorithm>
#include <optional>
#include <string_view>

#include "absl/strings/string_view.h"
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/scores.h"

namespace bertserve::core {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

absl::StatusOr<tokenizer::Encoding> EncodeInput(const LoadedModel& model,
                                                const v1::TextInput& input, bool truncate,
                                                absl::string_view field) {
  if (input.text().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".text is empty"));
  }
  std::optional<std::string_view> pair;
  if (!input.text_pair().empty()) pair = std::string_view(input.text_pair());
  absl::StatusOr<tokenizer::Encoding> encoding = model.tokenizer->Encode(
      input.text(), pair, model.config.max_sequence_length(), truncate);
  if (!encoding.ok()) return Prefixed(absl::StrCat(field, ": "), encoding.status());
  return encoding;
}

// Pads encodings [begin, end) into one batch.
InputBatch PadBatch(const std::vector<tokenizer::Encoding>& encodings, size_t begin,
                    size_t end, int32_t pad_id) {
  InputBatch batch;
  batch.batch_size = static_cast<int64_t>(end - begin);
  for (size_t i = begin; i < end; ++i) {
    batch.sequence_length =
        std::max<int64_t>(batch.sequence_length, encodings[i].ids.size());
  }
  const size_t cells = batch.batch_size * batch.sequence_length;
  batch.input_ids.assign(cells, pad_id);
  batch.attention_mask.assign(cells, 0);
  batch.token_type_ids.assign(cells, 0);
  for (size_t i = begin; i < end; ++i) {
    const tokenizer::Encoding& e = encodings[i];
    const size_t row = (i - begin) * batch.sequence_length;
    for (size_t t = 0; t < e.ids.size(); ++t) {
      batch.input_ids[row + t] = e.ids[t];
      batch.attention_mask[row + t] = 1;
      batch.token_type_ids[row + t] = e.type_ids[t];
    }
  }
  return batch;
}

}  // namespace

absl::StatusOr<v1::ClassifyResponse> Classifier::Classify(const v1::ClassifyRequest& request,
                                                          absl::Time received,
                                                          absl::Time deadline) const {
  absl::StatusOr<ModelHandle> handle = registry_->Acquire(request.model(), deadline);
  if (!handle.ok()) return handle.status();
  const LoadedModel& model = **handle;
  // Queue time includes waiting for the model to be placed.
  const absl::Time start = absl::Now();

  const int num_inputs = request.inputs_size();
  if (num_inputs == 0) {
    return absl::InvalidArgumentError("inputs is empty: send at least one text");
  }
  const int max_inputs = model.config.batch().max_client_batch_size();
  if (num_inputs > max_inputs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request has ", num_inputs, " inputs; model \"", model.name,
        "\" accepts at most ", max_inputs, " (batch.max_client_batch_size)"));
  }
  if (request.top_k() < 0 || request.top_k() > kMaxTopK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "top_k is ", request.top_k(), "; it must be between 0 (all labels) and ", kMaxTopK));
  }
  const bool truncate = !request.has_truncate() || request.truncate();

  std::vector<tokenizer::Encoding> encodings;
  encodings.reserve(num_inputs);
  for (int i = 0; i < num_inputs; ++i) {
    absl::StatusOr<tokenizer::Encoding> e =
        EncodeInput(model, request.inputs(i), truncate, absl::StrCat("inputs[", i, "]"));
    if (!e.ok()) return e.status();
    encodings.push_back(*std::move(e));
  }
  const absl::Time tokenized = absl::Now();

  // Inputs run in order, in forwards whose padded cost (longest x count)
  // stays within the model's token budget.
  const int64_t max_tokens = model.config.batch().max_batch_tokens();
  const int32_t pad_id = model.tokenizer->pad_id();
  v1::ClassifyResponse response;
  response.set_model(model.name);
  response.set_request_id(request.request_id());
  size_t begin = 0;
  while (begin < encodings.size()) {
    size_t end = begin;
    int64_t longest = 0;
    while (end < encodings.size()) {
      const int64_t next = std::max<int64_t>(longest, encodings[end].ids.size());
      if (end > begin && next * static_cast<int64_t>(end - begin + 1) > max_tokens) break;
      longest = next;
      ++end;
    }
    const InputBatch batch = PadBatch(encodings, begin, end, pad_id);
    absl::StatusOr<Logits> logits;
    if (model.execution_mu != nullptr) {
      absl::MutexLock exclusive(model.execution_mu);
      logits = model.model->Forward(batch);
    } else {
      logits = model.model->Forward(batch);
    }
    if (!logits.ok()) return logits.status();
    for (size_t i = begin; i < end; ++i) {
      v1::Classification* result = response.add_results();
      result->set_num_tokens(static_cast<int32_t>(encodings[i].ids.size()));
      result->set_truncated(encodings[i].truncated);
      for (v1::LabelScore& score :
           ScoreRow(logits->values.data() + (i - begin) * logits->cols,
                    static_cast<int>(logits->cols), request.raw_scores(), request.top_k(),
                    model.labels)) {
        *result->add_scores() = std::move(score);
      }
    }
    begin = end;
  }
  const absl::Time done = absl::Now();

  v1::Timing* timing = response.mutable_timing();
  timing->set_queue_seconds(Seconds(std::max(start - received, absl::ZeroDuration())));
  timing->set_tokenize_seconds(Seconds(tokenized - start));
  timing->set_compute_seconds(Seconds(done - tokenized));
  timing->set_total_seconds(Seconds(done - std::min(received, start)));
  return response;
}

absl::StatusOr<v1::TokenizeResponse> Classifier::Tokenize(const v1::TokenizeRequest& request,
                                                          absl::Time deadline) const {
  absl::StatusOr<ModelHandle> handle = registry_->Acquire(request.model(), deadline);
  if (!handle.ok()) return handle.status();
  const bool truncate = !request.has_truncate() || request.truncate();
  absl::StatusOr<tokenizer::Encoding> e =
      EncodeInput(**handle, request.input(), truncate, "input");
  if (!e.ok()) return e.status();
  v1::TokenizeResponse response;
  response.set_truncated(e->truncated);
  for (size_t i = 0; i < e->ids.size(); ++i) {
    v1::Token* token = response.add_tokens();
    token->set_id(e->ids[i]);
    token->set_token(e->tokens[i]);
    token->set_start(e->offsets[i].first);
    token->set_end(e->offsets[i].second);
    token->set_type_id(e->type_ids[i]);
    token->set_sequence(e->sequence[i]);
  }
  return response;
}

}  // namespace bertserve::core
