#include "server/grpc/inference_service.h"

#include <map>
#include <memory>

#include "absl/synchronization/mutex.h"

namespace bertserve::grpcsvc {

std::string InferenceService::ModelLabel(const std::string& name) const {
  return registry_->Contains(name) ? name : std::string();
}

grpc::ServerUnaryReactor* InferenceService::Classify(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  CallOptions<v1::ClassifyRequest> options;
  options.request_id = [](const v1::ClassifyRequest& r) { return r.request_id(); };
  options.refusal = access_->Check(*context, CallKind::kInference);
  return RunUnaryAsync<v1::ClassifyRequest, v1::ClassifyResponse>(
      context, request, response, pool_, "Classify", observer_,
      [this](const v1::ClassifyRequest& r) { return ModelLabel(r.model()); },
      [this](const v1::ClassifyRequest& r, absl::Time received, absl::Time deadline,
             std::function<void(absl::StatusOr<v1::ClassifyResponse>)> respond) {
        classifier_->ClassifyAsync(r, received, deadline, std::move(respond));
      },
      std::move(options));
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  CallOptions<v1::TokenizeRequest> options;
  options.refusal = access_->Check(*context, CallKind::kInference);
  return RunUnaryAsync<v1::TokenizeRequest, v1::TokenizeResponse>(
      context, request, response, pool_, "Tokenize", observer_,
      [this](const v1::TokenizeRequest& r) { return ModelLabel(r.model()); },
      [this](const v1::TokenizeRequest& r, absl::Time, absl::Time deadline,
             std::function<void(absl::StatusOr<v1::TokenizeResponse>)> respond) {
        classifier_->TokenizeAsync(r, deadline, std::move(respond));
      },
      std::move(options));
}

// Reads requests as they come, runs up to kMaxStreamInFlight of them at once
// on the pool, and writes answers strictly in request order. The reactor
// deletes itself once gRPC is done with it and no pool work still refers to it.
class InferenceService::StreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamReactor(InferenceService* service, grpc::CallbackServerContext* context)
      : service_(service), deadline_(DeadlineOf(context)) {
    StartRead(&read_buffer_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      reads_done_ = true;
      MaybeFinish();
      return;
    }
    const int64_t seq = next_read_seq_++;
    ++in_flight_;
    ++pool_refs_;
    auto bytes = std::make_shared<grpc::ByteBuffer>(read_buffer_);
    const absl::Time received = absl::Now();
    service_->pool_->Submit([this, seq, bytes, received] { Work(seq, *bytes, received); });
    if (in_flight_ < kMaxStreamInFlight) {
      StartRead(&read_buffer_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    ready_.erase(next_write_seq_++);
    --in_flight_;
    if (!ok) {
      failed_ = true;
      MaybeFinish();
      return;
    }
    if (read_paused_ && !reads_done_) {
      read_paused_ = false;
      StartRead(&read_buffer_);
    }
    MaybeWrite();
    MaybeFinish();
  }

  // The client cancelled, the stream's deadline passed, or the server is
  // shutting down: no more reads or writes will succeed, so finish now
  // rather than wait for answers nobody can receive.
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    failed_ = true;
    MaybeFinish();
  }

  void OnDone() override {
    bool destroy;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      destroy = pool_refs_ == 0;
    }
    if (destroy) delete this;
  }

 private:
  // On the pool: parse, then hand the request to the batcher; Complete runs
  // when its answer is known (on a batch executor, or here on early errors),
  // so no pool thread waits for a forward.
  void Work(int64_t seq, const grpc::ByteBuffer& bytes, absl::Time received) {
    v1::ClassifyRequest request;
    absl::Status status = ParseRequest(bytes, &request);
    if (!status.ok()) return Complete(seq, "", "", status, received);
    std::string model = service_->ModelLabel(request.model());
    std::string request_id = request.request_id();
    // Draining: messages already taken are answered; new ones are refused.
    if (service_->draining_.load()) {
      return Complete(seq, model, request_id,
                      absl::UnavailableError("the server is draining; send to another replica"),
                      received);
    }
    service_->classifier_->ClassifyAsync(
        request, received, deadline_,
        [this, seq, model, request_id, received](absl::StatusOr<v1::ClassifyResponse> response) {
          Complete(seq, model, request_id, std::move(response), received);
        });
  }

  void Complete(int64_t seq, const std::string& model, const std::string& request_id,
                absl::StatusOr<v1::ClassifyResponse> response, absl::Time received) {
    v1::ClassifyStreamResponse answer;
    answer.set_request_id(request_id);
    absl::Status status = response.status();
    if (response.ok()) *answer.mutable_response() = *std::move(response);
    answer.set_error_code(static_cast<int32_t>(status.code()));
    answer.set_error_message(std::string(status.message()));
    if (service_->observer_ != nullptr && *service_->observer_) {
      (*service_->observer_)(model, "ClassifyStream", ToGrpcStatus(status),
                             absl::ToDoubleSeconds(absl::Now() - received), request_id);
    }
    grpc::ByteBuffer out;
    (void)SerializeResponse(answer, &out);

    bool destroy = false;
    {
      absl::MutexLock lock(&mu_);
      ready_.emplace(seq, std::move(out));
      --pool_refs_;
      if (!done_) {
        MaybeWrite();
        MaybeFinish();
      }
      destroy = done_ && pool_refs_ == 0;
    }
    if (destroy) delete this;
  }

  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || failed_ || finished_) return;
    auto it = ready_.find(next_write_seq_);
    if (it == ready_.end()) return;
    writing_ = true;
    StartWrite(&it->second);
  }

  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (failed_ || (reads_done_ && !writing_ && next_write_seq_ == next_read_seq_)) {
      finished_ = true;
      Finish(failed_ ? grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed")
                     : grpc::Status::OK);
    }
  }

  InferenceService* const service_;
  const absl::Time deadline_;  // the stream's; per-message deadlines do not exist
  absl::Mutex mu_;
  grpc::ByteBuffer read_buffer_;
  std::map<int64_t, grpc::ByteBuffer> ready_ ABSL_GUARDED_BY(mu_);
  int64_t next_read_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_write_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int pool_refs_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// A stream refused before it starts: finishes at once with the refusal.
class RefusedStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedStream(const absl::Status& refusal) { Finish(ToGrpcStatus(refusal)); }
  void OnDone() override { delete this; }
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferenceService::ClassifyStream(
    grpc::CallbackServerContext* context) {
  if (absl::Status refusal = access_->Check(*context, CallKind::kInference); !refusal.ok()) {
    if (observer_ != nullptr && *observer_) {
      (*observer_)("", "ClassifyStream", ToGrpcStatus(refusal), 0.0, "");
    }
    return new RefusedStream(refusal);
  }
  return new StreamReactor(this, context);
}

}  // namespace bertserve::grpcsvc
