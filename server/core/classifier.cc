#include "server/core/classifier.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
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

}  // namespace

EncodedInput EncodedInputOf(const v1::TokenizeResponse& tokens) {
  EncodedInput input;
  for (const v1::Token& t : tokens.tokens()) {
    input.ids.push_back(t.id());
    input.type_ids.push_back(t.type_id());
  }
  return input;
}

void Classifier::WithModel(const std::string& name, absl::Time deadline,
                           std::function<void(ModelHandle)> then,
                           std::function<void(absl::Status)> fail) const {
  absl::StatusOr<ModelHandle> handle = registry_->TryAcquire(name);
  if (handle.ok()) return then(*std::move(handle));
  if (!absl::IsUnavailable(handle.status())) return fail(handle.status());
  // The model must be placed first. Nothing waits on a thread for it: the
  // placement (or the deadline) calls back, and the work goes on on the pool,
  // not on the placement worker that finished the placement.
  const absl::Time waiting_since = absl::Now();
  registry_->AcquireAsync(name, deadline,
                          [this, name, waiting_since, then, fail](absl::StatusOr<ModelHandle> placed) {
                            if (!placed.ok()) return fail(placed.status());
                            if (observer_ != nullptr) {
                              observer_->OnModelWait(name, Seconds(absl::Now() - waiting_since));
                            }
                            auto run = [then, handle = *std::move(placed)] { then(handle); };
                            if (pool_ != nullptr) return pool_->Submit(std::move(run));
                            run();
                          });
}

void Classifier::ClassifyAsync(const v1::ClassifyRequest& request, absl::Time received,
                               absl::Time deadline, Respond respond) const {
  const std::string name = request.model();
  const std::string request_id = request.request_id();
  const bool raw = request.raw_scores();
  const int top_k = request.top_k();
  ClassifyRowsAsync(
      request, {}, received, deadline,
      [name, request_id, raw, top_k, respond](absl::StatusOr<ClassifiedRows> rows) {
        if (!rows.ok()) return respond(rows.status());
        v1::ClassifyResponse response;
        response.set_model(name);
        response.set_request_id(request_id);
        for (size_t i = 0; i < rows->rows.size(); ++i) {
          const LogitsRow& row = rows->rows[i];
          v1::Classification* out = response.add_results();
          out->set_num_tokens(rows->num_tokens[i]);
          out->set_truncated(rows->truncated[i]);
          for (v1::LabelScore& score :
               ScoreRow(row.data(), static_cast<int>(row.size()), raw, top_k, rows->labels)) {
            *out->add_scores() = std::move(score);
          }
        }
        *response.mutable_timing() = rows->timing;
        respond(std::move(response));
      });
}

void Classifier::ClassifyRowsAsync(const v1::ClassifyRequest& request,
                                   std::vector<EncodedInput> tokens, absl::Time received,
                                   absl::Time deadline, RespondRows respond) const {
  WithModel(
      request.model(), deadline,
      [this, request, tokens = std::move(tokens), received, deadline,
       respond](ModelHandle handle) {
        Queue(request, tokens, std::move(handle), received, deadline, respond);
      },
      [respond](absl::Status status) { respond(std::move(status)); });
}

namespace {

// A row the client tokenized itself, checked as the tokenizer's output would
// be guaranteed: the model's embeddings index by these numbers, and one bad
// id would fail the whole batch it shares with other requests.
absl::Status CheckTokens(const LoadedModel& model, const EncodedInput& input,
                         absl::string_view field) {
  if (input.ids.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " has no tokens"));
  if (input.type_ids.size() != input.ids.size()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " has ", input.ids.size(), " ids and ",
                                                   input.type_ids.size(), " type ids"));
  }
  const int64_t max_length = model.config.max_sequence_length();
  if (static_cast<int64_t>(input.ids.size()) > max_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " has ", input.ids.size(), " tokens; model \"", model.name, "\" takes at most ",
        max_length, " (max_sequence_length), and pre-tokenized inputs are never truncated"));
  }
  const int32_t vocab_size = model.tokenizer->vocab_size();
  for (size_t i = 0; i < input.ids.size(); ++i) {
    if (input.ids[i] < 0 || input.ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(field, " token ", i, " has id ", input.ids[i],
                                                     "; the vocabulary of model \"", model.name,
                                                     "\" has ids 0 to ", vocab_size - 1));
    }
    if (input.type_ids[i] != 0 && input.type_ids[i] != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " token ", i, " has type id ", input.type_ids[i], "; type ids are 0 or 1"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

void Classifier::Queue(const v1::ClassifyRequest& request, std::vector<EncodedInput> tokens,
                       ModelHandle handle, absl::Time received, absl::Time deadline,
                       RespondRows respond) const {
  const LoadedModel& model = *handle;
  // Queue time includes waiting for the model to be placed.
  const absl::Time start = absl::Now();

  const bool pretokenized = !tokens.empty();
  if (pretokenized && request.inputs_size() > 0) {
    return respond(absl::InvalidArgumentError("send texts or token ids, not both"));
  }
  const int num_inputs = pretokenized ? static_cast<int>(tokens.size()) : request.inputs_size();
  if (num_inputs == 0) {
    return respond(absl::InvalidArgumentError("inputs is empty: send at least one text"));
  }
  const int max_inputs = model.config.batch().max_client_batch_size();
  if (num_inputs > max_inputs) {
    return respond(absl::InvalidArgumentError(absl::StrCat(
        "request has ", num_inputs, " inputs; model \"", model.name, "\" accepts at most ",
        max_inputs, " (batch.max_client_batch_size)")));
  }
  if (request.top_k() < 0 || request.top_k() > kMaxTopK) {
    return respond(absl::InvalidArgumentError(absl::StrCat(
        "top_k is ", request.top_k(), "; it must be between 0 (all labels) and ", kMaxTopK)));
  }
  const bool truncate = !request.has_truncate() || request.truncate();

  auto rows = std::make_shared<ClassifiedRows>();
  std::vector<EncodedInput> inputs;
  if (pretokenized) {
    for (int i = 0; i < num_inputs; ++i) {
      absl::Status checked = CheckTokens(model, tokens[i], absl::StrCat("inputs[", i, "]"));
      if (!checked.ok()) return respond(checked);
      rows->num_tokens.push_back(static_cast<int32_t>(tokens[i].ids.size()));
      rows->truncated.push_back(false);
    }
    inputs = std::move(tokens);
  } else {
    inputs.reserve(num_inputs);
    for (int i = 0; i < num_inputs; ++i) {
      absl::StatusOr<tokenizer::Encoding> e =
          EncodeInput(model, request.inputs(i), truncate, absl::StrCat("inputs[", i, "]"));
      if (!e.ok()) return respond(e.status());
      rows->num_tokens.push_back(static_cast<int32_t>(e->ids.size()));
      rows->truncated.push_back(e->truncated);
      inputs.push_back(EncodedInput{std::move(e->ids), std::move(e->type_ids)});
    }
  }
  const absl::Time tokenized = absl::Now();
  if (observer_ != nullptr) observer_->OnTokenized(model.name, Seconds(tokenized - start));

  ModelHandle held = handle;
  auto done = [held, rows, received, start, tokenized,
               respond](absl::StatusOr<BatchResult> result) {
    if (!result.ok()) return respond(result.status());
    rows->rows = std::move(result->rows);
    rows->labels = held->labels;
    const absl::Time now = absl::Now();
    const absl::Time first = std::min(result->first_forward, now);
    v1::Timing& timing = rows->timing;
    timing.set_queue_seconds(Seconds(std::max(start - received, absl::ZeroDuration()) +
                                     std::max(first - tokenized, absl::ZeroDuration())));
    timing.set_tokenize_seconds(Seconds(tokenized - start));
    timing.set_compute_seconds(Seconds(now - first));
    timing.set_total_seconds(Seconds(now - std::min(received, start)));
    respond(std::move(*rows));
  };
  absl::Status queued = batcher_->Submit(std::move(held), std::move(inputs), deadline, done);
  if (!queued.ok()) respond(queued);
}

absl::StatusOr<v1::ClassifyResponse> Classifier::Classify(const v1::ClassifyRequest& request,
                                                          absl::Time received,
                                                          absl::Time deadline) const {
  absl::Notification answered;
  absl::StatusOr<v1::ClassifyResponse> answer;
  ClassifyAsync(request, received, deadline,
                [&](absl::StatusOr<v1::ClassifyResponse> response) {
                  answer = std::move(response);
                  answered.Notify();
                });
  answered.WaitForNotification();
  return answer;
}

namespace {

absl::StatusOr<v1::TokenizeResponse> TokenizeWith(const LoadedModel& model,
                                                  const v1::TokenizeRequest& request) {
  const bool truncate = !request.has_truncate() || request.truncate();
  absl::StatusOr<tokenizer::Encoding> e = EncodeInput(model, request.input(), truncate, "input");
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

}  // namespace

void Classifier::TokenizeAsync(const v1::TokenizeRequest& request, absl::Time deadline,
                               RespondTokens respond) const {
  WithModel(
      request.model(), deadline,
      [request, respond](ModelHandle handle) { respond(TokenizeWith(*handle, request)); },
      [respond](absl::Status status) { respond(std::move(status)); });
}

absl::StatusOr<v1::TokenizeResponse> Classifier::Tokenize(const v1::TokenizeRequest& request,
                                                          absl::Time deadline) const {
  absl::Notification answered;
  absl::StatusOr<v1::TokenizeResponse> answer;
  TokenizeAsync(request, deadline, [&](absl::StatusOr<v1::TokenizeResponse> response) {
    answer = std::move(response);
    answered.Notify();
  });
  answered.WaitForNotification();
  return answer;
}

}  // namespace bertserve::core
