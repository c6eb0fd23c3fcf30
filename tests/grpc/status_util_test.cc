#include "server/grpc/status_util.h"

#include "bertserve/v1/inference.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::grpcsvc {
namespace {

using ::testing::HasSubstr;

grpc::ByteBuffer Bytes(const std::string& wire) {
  grpc::Slice slice(wire);
  return grpc::ByteBuffer(&slice, 1);
}

// A ClassifyRequest whose inputs[1].text_pair holds `bad` bytes, built by
// serializing valid text and patching it, as a client in another language
// could send.
std::string WireWithBadUtf8() {
  v1::ClassifyRequest request;
  request.set_model("m");
  request.add_inputs()->set_text("fine");
  v1::TextInput* second = request.add_inputs();
  second->set_text("also fine");
  second->set_text_pair("PATCHME");
  std::string wire = request.SerializeAsString();
  wire.replace(wire.find("PATCHME"), 7, "bad\xff\xfe\xfd!");
  return wire;
}

TEST(ParseRequestTest, ValidRequestParses) {
  v1::ClassifyRequest request;
  request.set_model("m");
  request.add_inputs()->set_text("héllo");
  v1::ClassifyRequest parsed;
  ASSERT_TRUE(ParseRequest(Bytes(request.SerializeAsString()), &parsed).ok());
  EXPECT_EQ(parsed.inputs(0).text(), "héllo");
}

TEST(ParseRequestTest, InvalidUtf8NamesTheField) {
  v1::ClassifyRequest parsed;
  absl::Status s = ParseRequest(Bytes(WireWithBadUtf8()), &parsed);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("inputs[1].text_pair is not valid UTF-8"));
}

TEST(ParseRequestTest, OverlongAndSurrogateEncodingsAreInvalid) {
  for (const std::string& bad : {std::string("\xc0\xaf"), std::string("\xed\xa0\x80"),
                                std::string("\xf4\x90\x80\x80"), std::string("abc\xe2\x82")}) {
    v1::ClassifyRequest request;
    request.set_model("PATCH");
    std::string wire = request.SerializeAsString();
    wire = std::string(1, wire[0]) + std::string(1, static_cast<char>(bad.size())) + bad;
    v1::ClassifyRequest parsed;
    absl::Status s = ParseRequest(Bytes(wire), &parsed);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("model is not valid UTF-8"));
  }
}

TEST(ParseRequestTest, GarbageIsInvalidArgument) {
  v1::ClassifyRequest parsed;
  absl::Status s = ParseRequest(Bytes("\xff\xff\xff\xff"), &parsed);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("bertserve.v1.ClassifyRequest"));
}

TEST(StatusUtilTest, CodesMapOneToOne) {
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_message(), "x");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(CodeName(grpc::StatusCode::FAILED_PRECONDITION), "FAILED_PRECONDITION");
}

}  // namespace
}  // namespace bertserve::grpcsvc
