// The gRPC services on a real loopback server, with the fake loader behind
// the registry: status codes on the wire, stream ordering, health states.

#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/notification.h"
#include "bertserve/v1/inference.grpc.pb.h"
#include "bertserve/v1/models.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/core/classifier.h"
#include "server/grpc/health_service.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/models_service.h"
#include "server/grpc/v2_service.h"
#include "server/grpc/v2_tensors.h"
#include "tests/test_util/fake_model.h"

namespace bertserve::grpcsvc {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

class ServicesTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    repo_.AddModel("m", "batch { max_client_batch_size: 8 }");
    repo_.AddModel("slow");
    auto r = core::ModelRepository::Open(repo_.root());
    ASSERT_TRUE(r.ok());
    core::RegistryOptions options;
    options.device = &cpu_;
    auto registry = core::ModelRegistry::Create(*r, &loader_, options);
    ASSERT_TRUE(registry.ok());
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Load("m").ok());
    pool_ = std::make_unique<core::WorkerPool>(GetParam());
    core::BatcherOptions batching;
    batching.on_device_lost = [this](const absl::Status&) { health_.SetDeviceLost(); };
    batcher_ = std::make_unique<core::Batcher>(registry_.get(), batching);
    classifier_ = std::make_unique<core::Classifier>(registry_.get(), batcher_.get());
    observer_ = [this](const std::string& model, absl::string_view method,
                       const grpc::Status& status, double, const std::string&) {
      const grpc::StatusCode code = status.error_code();
      absl::MutexLock lock(&mu_);
      observed_.push_back(model + "/" + std::string(method) + "/" + std::string(CodeName(code)));
    };
    // Open as the admin listener is: these tests are about the services.
    AccessOptions open;
    open.open_management = true;
    access_ = std::make_unique<AccessControl>(open);
    inference_ = std::make_unique<InferenceService>(classifier_.get(), registry_.get(),
                                                    pool_.get(), &observer_, access_.get());
    models_ = std::make_unique<ModelsService>(registry_.get(), pool_.get(), &observer_,
                                              access_.get(), "grpc");
    v2_ = std::make_unique<V2InferenceService>(classifier_.get(), registry_.get(), pool_.get(),
                                               &health_, &observer_, access_.get(), "test",
                                               "grpc");
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(inference_.get());
    builder.RegisterService(models_.get());
    builder.RegisterService(v2_.get());
    builder.RegisterService(&health_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    health_.Shutdown();
    if (server_) server_->Shutdown();
  }

  v1::ClassifyRequest Request(const std::string& model, const std::string& text) {
    v1::ClassifyRequest request;
    request.set_model(model);
    request.add_inputs()->set_text(text);
    return request;
  }

  testing::TempRepository repo_;
  testing::FakeDevice cpu_{0, /*has_budget=*/false};
  testing::FakeLoader loader_;
  std::unique_ptr<core::ModelRegistry> registry_;
  std::unique_ptr<core::Batcher> batcher_;
  std::unique_ptr<core::WorkerPool> pool_;
  std::unique_ptr<core::Classifier> classifier_;
  CallObserver observer_;
  absl::Mutex mu_;
  std::vector<std::string> observed_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<ModelsService> models_;
  std::unique_ptr<V2InferenceService> v2_;
  HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_P(ServicesTest, CodesOnTheWire) {
  auto stub = v1::Inference::NewStub(channel_);
  struct Case {
    v1::ClassifyRequest request;
    grpc::StatusCode code;
  };
  std::vector<Case> cases = {
      {Request("m", "hello"), grpc::StatusCode::OK},
      {Request("nope", "hello"), grpc::StatusCode::NOT_FOUND},
      {Request("../m", "hello"), grpc::StatusCode::INVALID_ARGUMENT},
      {Request("m", ""), grpc::StatusCode::INVALID_ARGUMENT},
      // Not loaded yet: the request places it and is answered.
      {Request("slow", "hello"), grpc::StatusCode::OK},
  };
  for (const Case& c : cases) {
    grpc::ClientContext context;
    v1::ClassifyResponse response;
    grpc::Status status = stub->Classify(&context, c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.request.model() << ": " << status.error_message();
  }
  absl::MutexLock lock(&mu_);
  // Unknown and illegal names are not metric labels.
  EXPECT_THAT(observed_, ::testing::Contains("/Classify/NOT_FOUND"));
  EXPECT_THAT(observed_, ::testing::Contains("m/Classify/OK"));
}

TEST_P(ServicesTest, ExpiredDeadlineNeverRuns) {
  auto stub = v1::Inference::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() - std::chrono::seconds(1));
  v1::ClassifyResponse response;
  grpc::Status status = stub->Classify(&context, Request("m", "hello"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

TEST_P(ServicesTest, StreamAnswersInRequestOrder) {
  auto stub = v1::Inference::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->ClassifyStream(&context);
  constexpr int kRequests = 100;
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      // Every seventh request is bad; its answer must still hold its place.
      v1::ClassifyRequest request =
          Request(i % 7 == 3 ? "nope" : "m", std::string(1 + i % 5, 'h') + " hello");
      request.set_request_id(std::to_string(i));
      ASSERT_TRUE(stream->Write(request));
    }
    stream->WritesDone();
  });
  v1::ClassifyStreamResponse answer;
  int n = 0;
  while (stream->Read(&answer)) {
    EXPECT_EQ(answer.request_id(), std::to_string(n));
    if (n % 7 == 3) {
      EXPECT_EQ(answer.error_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
      EXPECT_THAT(answer.error_message(), HasSubstr("nope"));
    } else {
      EXPECT_EQ(answer.error_code(), 0) << answer.error_message();
      EXPECT_EQ(answer.response().results_size(), 1);
    }
    ++n;
  }
  writer.join();
  EXPECT_EQ(n, kRequests);
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_P(ServicesTest, ModelsApiLoadUnload) {
  auto stub = v1::Models::NewStub(channel_);
  {
    grpc::ClientContext context;
    v1::ListModelsResponse list;
    ASSERT_TRUE(stub->List(&context, v1::ListModelsRequest(), &list).ok());
    ASSERT_EQ(list.models_size(), 2);
    EXPECT_EQ(list.models(0).name(), "m");
    EXPECT_EQ(list.models(0).state(), v1::READY);
    EXPECT_EQ(list.models(0).weight_bytes(), 1000);
    EXPECT_EQ(list.models(1).state(), v1::UNLOADED);
    EXPECT_EQ(list.device().name(), "fake:0");
  }
  {
    grpc::ClientContext context;
    v1::LoadModelRequest request;
    request.set_name("slow");
    v1::ModelStatus status;
    ASSERT_TRUE(stub->Load(&context, request, &status).ok());
    EXPECT_EQ(status.state(), v1::READY);
  }
  {
    grpc::ClientContext context;
    v1::UnloadModelRequest request;
    request.set_name("slow");
    v1::ModelStatus status;
    ASSERT_TRUE(stub->Unload(&context, request, &status).ok());
    EXPECT_EQ(status.state(), v1::UNLOADED);
  }
  {
    grpc::ClientContext context;
    v1::LoadModelRequest request;
    request.set_name("a/b");
    v1::ModelStatus status;
    EXPECT_EQ(stub->Load(&context, request, &status).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_P(ServicesTest, ReadinessWatchSeesTheChange) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  HealthCheckRequest ready;
  ready.set_service(kReadinessService);
  {
    grpc::ClientContext context;
    HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, ready, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  }
  {
    grpc::ClientContext context;
    HealthCheckRequest live;
    HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, live, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  grpc::ClientContext watch_context;
  auto watch = stub->Watch(&watch_context, ready);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  health_.SetServing(kReadinessService, true);
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  // Shutdown reports NOT_SERVING and ends the stream, so drains are not held.
  health_.Shutdown();
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&update));
  EXPECT_TRUE(watch->Finish().ok());
  // A draining process still works: liveness stays SERVING, and later
  // changes are ignored.
  EXPECT_TRUE(health_.IsServing(kLivenessService));
  EXPECT_FALSE(health_.IsServing(kReadinessService));
  health_.SetServing(kReadinessService, true);
  EXPECT_FALSE(health_.IsServing(kReadinessService));
  {
    grpc::ClientContext context;
    HealthCheckRequest live;
    HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, live, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  {
    grpc::ClientContext context;
    HealthCheckRequest unknown;
    unknown.set_service("nope");
    HealthCheckResponse response;
    EXPECT_EQ(stub->Check(&context, unknown, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_P(ServicesTest, LostDeviceTurnsLivenessNotServing) {
  auto handle = registry_->Acquire("m");
  ASSERT_TRUE(handle.ok());
  static_cast<testing::FakeModel*>((*handle)->model.get())
      ->FailNextForward(core::MarkDeviceLost(
          absl::InternalError("CUDA error: an illegal memory access was encountered")));
  handle->reset();
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  HealthCheckRequest live;
  {
    grpc::ClientContext context;
    HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, live, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  auto inference = v1::Inference::NewStub(channel_);
  {
    grpc::ClientContext context;
    v1::ClassifyResponse response;
    grpc::Status s = inference->Classify(&context, Request("m", "hello"), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(s.error_message(), HasSubstr("illegal memory access"));
  }
  {
    grpc::ClientContext context;
    HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, live, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  }
  // Readiness cannot come back either.
  health_.SetServing(kReadinessService, true);
  grpc::ClientContext context;
  HealthCheckRequest ready;
  ready.set_service(kReadinessService);
  HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(&context, ready, &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

inference::ModelInferRequest InferRequest(const std::string& model,
                                         const std::vector<std::string>& texts) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* text = request.add_inputs();
  text->set_name(v2::kText);
  text->set_datatype("BYTES");
  text->add_shape(static_cast<int64_t>(texts.size()));
  for (const std::string& t : texts) text->mutable_contents()->add_bytes_contents(t);
  request.add_outputs()->set_name(v2::kProbabilities);
  return request;
}

// The Open Inference Protocol on the same port, registry and classifier: a
// model that is not loaded is placed for the request, and the scores are
// bertserve.v1's.
TEST_P(ServicesTest, V2InferPlacesTheModelAndMatchesClassify) {
  auto v2_stub = inference::GRPCInferenceService::NewStub(channel_);
  {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name("slow");
    inference::ModelReadyResponse ready;
    ASSERT_TRUE(v2_stub->ModelReady(&context, request, &ready).ok());
    EXPECT_FALSE(ready.ready());
  }
  grpc::ClientContext context;
  inference::ModelInferResponse answer;
  grpc::Status status =
      v2_stub->ModelInfer(&context, InferRequest("slow", {"hello", "a longer hello"}), &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(registry_->Get("slow")->state, core::ModelState::kReady);
  ASSERT_EQ(answer.outputs_size(), 1);
  const auto& probabilities = answer.outputs(0).contents().fp32_contents();

  auto v1_stub = v1::Inference::NewStub(channel_);
  grpc::ClientContext v1_context;
  v1::ClassifyRequest request = Request("slow", "hello");
  request.add_inputs()->set_text("a longer hello");
  v1::ClassifyResponse classified;
  ASSERT_TRUE(v1_stub->Classify(&v1_context, request, &classified).ok());
  const int labels = classified.results(0).scores_size();
  ASSERT_EQ(probabilities.size(), 2 * labels);
  for (int i = 0; i < 2; ++i) {
    for (const v1::LabelScore& score : classified.results(i).scores()) {
      EXPECT_EQ(probabilities[i * labels + score.index()], score.score());
    }
  }
}

TEST_P(ServicesTest, V2CodesOnTheWire) {
  auto stub = inference::GRPCInferenceService::NewStub(channel_);
  struct Case {
    inference::ModelInferRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  inference::ModelInferRequest wrong_type = InferRequest("m", {"hello"});
  wrong_type.mutable_inputs(0)->set_datatype("INT8");
  std::vector<Case> cases = {
      {InferRequest("m", {"hello"}), grpc::StatusCode::OK, ""},
      {InferRequest("nope", {"hello"}), grpc::StatusCode::NOT_FOUND, "nope"},
      {InferRequest("m", {"hello", ""}), grpc::StatusCode::INVALID_ARGUMENT,
       "inputs[1].text is empty"},
      {InferRequest("m", {}), grpc::StatusCode::INVALID_ARGUMENT, "inputs is empty"},
      {wrong_type, grpc::StatusCode::INVALID_ARGUMENT, "must be BYTES"},
  };
  for (const Case& c : cases) {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    grpc::Status status = stub->ModelInfer(&context, c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.request.model_name() << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(stub->ServerLive(&context, inference::ServerLiveRequest(), &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(stub->ServerReady(&context, inference::ServerReadyRequest(), &ready).ok());
    EXPECT_FALSE(ready.ready());  // nobody turned readiness on
  }
  absl::MutexLock lock(&mu_);
  EXPECT_THAT(observed_, ::testing::Contains("m/v2.ModelInfer/OK"));
  EXPECT_THAT(observed_, ::testing::Contains("/v2.ModelInfer/NOT_FOUND"));
}

TEST_P(ServicesTest, V2StreamAnswersInRequestOrder) {
  auto stub = inference::GRPCInferenceService::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->ModelStreamInfer(&context);
  constexpr int kRequests = 100;
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      // Every seventh request is for an unknown model, every eleventh has a
      // malformed tensor; their answers must still hold their places.
      inference::ModelInferRequest request =
          InferRequest(i % 7 == 3 ? "nope" : "m", {std::string(1 + i % 5, 'h') + " hello"});
      if (i % 11 == 5) request.mutable_inputs(0)->set_datatype("FP32");
      request.set_id(std::to_string(i));
      ASSERT_TRUE(stream->Write(request));
    }
    stream->WritesDone();
  });
  inference::ModelStreamInferResponse answer;
  int n = 0;
  while (stream->Read(&answer)) {
    EXPECT_EQ(answer.infer_response().id(), std::to_string(n));
    if (n % 11 == 5) {
      EXPECT_THAT(answer.error_message(), HasSubstr("must be BYTES"));
    } else if (n % 7 == 3) {
      EXPECT_THAT(answer.error_message(), HasSubstr("nope"));
    } else {
      EXPECT_EQ(answer.error_message(), "");
      ASSERT_EQ(answer.infer_response().outputs_size(), 1);
      EXPECT_EQ(answer.infer_response().outputs(0).shape(0), 1);
    }
    ++n;
  }
  writer.join();
  EXPECT_EQ(n, kRequests);
  EXPECT_TRUE(stream->Finish().ok());
  absl::MutexLock lock(&mu_);
  EXPECT_THAT(observed_, ::testing::Contains("m/v2.ModelStreamInfer/OK"));
}

INSTANTIATE_TEST_SUITE_P(Threads, ServicesTest, ::testing::Values(1, 4));

}  // namespace
}  // namespace bertserve::grpcsvc
