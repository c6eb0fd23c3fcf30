// Open Inference Protocol tensors: decoding TEXT / input_ids from both
// encodings, every way a client can get them wrong, and the answer's
// outputs.

#include "server/grpc/v2_tensors.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertserve::grpcsvc::v2 {
namespace {

using inference::ModelInferRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelInferRequest::InferInputTensor* AddInput(ModelInferRequest* r, const std::string& name,
                                              const std::string& datatype,
                                              std::vector<int64_t> shape) {
  auto* t = r->add_inputs();
  t->set_name(name);
  t->set_datatype(datatype);
  for (int64_t d : shape) t->add_shape(d);
  return t;
}

std::string LengthPrefix(uint32_t n) {
  std::string out(4, '\0');
  for (int b = 0; b < 4; ++b) out[b] = static_cast<char>((n >> (8 * b)) & 0xff);
  return out;
}

ModelInferRequest TextRequest(std::vector<std::string> texts, std::vector<int64_t> shape) {
  ModelInferRequest r;
  r.set_model_name("m");
  auto* t = AddInput(&r, kText, "BYTES", std::move(shape));
  for (const std::string& s : texts) t->mutable_contents()->add_bytes_contents(s);
  return r;
}

ModelInferRequest RawTextRequest(const std::string& raw, std::vector<int64_t> shape) {
  ModelInferRequest r;
  r.set_model_name("m");
  AddInput(&r, kText, "BYTES", std::move(shape));
  r.add_raw_input_contents(raw);
  return r;
}

void ExpectInvalid(const ModelInferRequest& r, const std::string& part) {
  absl::StatusOr<DecodedRequest> d = DecodeInferRequest(r);
  ASSERT_FALSE(d.ok()) << "decoded although it should fail with \"" << part << "\"";
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
  EXPECT_THAT(std::string(d.status().message()), HasSubstr(part));
}

TEST(V2Tensors, TextFromContentsBothShapes) {
  for (std::vector<int64_t> shape : {std::vector<int64_t>{2}, std::vector<int64_t>{2, 1}}) {
    absl::StatusOr<DecodedRequest> d = DecodeInferRequest(TextRequest({"hello", "wörld"}, shape));
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_EQ(d->request.inputs_size(), 2);
    EXPECT_EQ(d->request.inputs(0).text(), "hello");
    EXPECT_EQ(d->request.inputs(1).text(), "wörld");
    EXPECT_TRUE(d->tokens.empty());
    EXPECT_EQ(d->request.model(), "m");
  }
}

TEST(V2Tensors, TextFromRawWithPair) {
  ModelInferRequest r;
  r.set_model_name("m");
  r.set_id("req-7");
  AddInput(&r, kText, "BYTES", {2, 1});
  AddInput(&r, kTextPair, "BYTES", {2, 1});
  r.add_raw_input_contents(EncodeRawBytes({"a premise", ""}));
  r.add_raw_input_contents(EncodeRawBytes({"a hypothesis", "x"}));
  absl::StatusOr<DecodedRequest> d = DecodeInferRequest(r);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->request.inputs_size(), 2);
  EXPECT_EQ(d->request.inputs(0).text(), "a premise");
  EXPECT_EQ(d->request.inputs(0).text_pair(), "a hypothesis");
  // An empty text is the Classifier's to refuse, with bertserve.v1's words.
  EXPECT_EQ(d->request.inputs(1).text(), "");
  EXPECT_EQ(d->request.inputs(1).text_pair(), "x");
  EXPECT_EQ(d->request.request_id(), "req-7");
}

TEST(V2Tensors, RawBytesRoundTrip) {
  const std::vector<std::string> elements = {"", "a", std::string(300, 'z'), "\xc3\xa9"};
  absl::StatusOr<std::vector<std::string>> back =
      DecodeRawBytes(EncodeRawBytes(elements), 4, "input TEXT");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, elements);
  // 300 = 0x12c: little-endian prefix.
  EXPECT_EQ(EncodeRawBytes({std::string(300, 'z')}).substr(0, 4), std::string("\x2c\x01\0\0", 4));
}

TEST(V2Tensors, RawBytesTruncatedPrefix) {
  ExpectInvalid(RawTextRequest(LengthPrefix(2) + "hi" + std::string("\x03\0", 2), {2}),
                "input TEXT element 1 has a truncated length prefix: 2 of 4 bytes at byte 6");
}

TEST(V2Tensors, RawBytesLengthPastEnd) {
  ExpectInvalid(RawTextRequest(LengthPrefix(100) + "short", {1}),
                "input TEXT element 0 declares 100 bytes but only 5 remain");
}

TEST(V2Tensors, RawBytesCountAgainstShape) {
  const std::string two = EncodeRawBytes({"a", "b"});
  ExpectInvalid(RawTextRequest(two, {3}), "input TEXT has 2 elements in raw_input_contents");
  ExpectInvalid(RawTextRequest(two, {1}), "input TEXT has 5 bytes in raw_input_contents after its 1 elements");
}

TEST(V2Tensors, WrongShape) {
  ExpectInvalid(TextRequest({"a", "b"}, {1, 2}), "input TEXT has shape [1, 2]; it must be [batch] or [batch, 1]");
  ExpectInvalid(TextRequest({"a"}, {1, 1, 1}), "must be [batch] or [batch, 1]");
  ExpectInvalid(TextRequest({"a"}, {}), "must be [batch] or [batch, 1]");
  ExpectInvalid(TextRequest({"a", "b"}, {3}), "input TEXT has 2 elements in contents.bytes_contents; its shape [3] needs 3");
  ExpectInvalid(TextRequest({"a"}, {-1}), "no dimension may be negative");
  // A shape far larger than its data is refused without allocating for it.
  ExpectInvalid(RawTextRequest(EncodeRawBytes({"a"}), {int64_t{1} << 40}), "too many elements");
}

TEST(V2Tensors, WrongDatatype) {
  ModelInferRequest r = TextRequest({"a"}, {1});
  r.mutable_inputs(0)->set_datatype("FP32");
  ExpectInvalid(r, "input TEXT has datatype \"FP32\"; it must be BYTES");

  ModelInferRequest ids;
  AddInput(&ids, kInputIds, "FP32", {1, 2});
  ExpectInvalid(ids, "input input_ids has datatype \"FP32\"; it must be INT64 or INT32");
}

TEST(V2Tensors, MixedContentsAndRaw) {
  ModelInferRequest r = TextRequest({"a"}, {1});
  r.add_raw_input_contents(EncodeRawBytes({"a"}));
  ExpectInvalid(r, "input TEXT has contents and the request has raw_input_contents");

  ModelInferRequest short_raw;
  AddInput(&short_raw, kText, "BYTES", {1});
  AddInput(&short_raw, kTextPair, "BYTES", {1});
  short_raw.add_raw_input_contents(EncodeRawBytes({"a"}));
  ExpectInvalid(short_raw, "raw_input_contents has 1 entries and the request 2 inputs");
}

TEST(V2Tensors, InvalidUtf8) {
  ExpectInvalid(TextRequest({"ok", "bad \xff"}, {2}), "input TEXT element 1");
}

TEST(V2Tensors, NamesAndCombinations) {
  ModelInferRequest r = TextRequest({"a"}, {1});
  AddInput(&r, "IMAGE", "FP32", {1});
  ExpectInvalid(r, "unknown input \"IMAGE\"");

  ModelInferRequest twice = TextRequest({"a"}, {1});
  AddInput(&twice, kText, "BYTES", {1})->mutable_contents()->add_bytes_contents("b");
  ExpectInvalid(twice, "input TEXT appears twice");

  ModelInferRequest both = TextRequest({"a"}, {1});
  AddInput(&both, kInputIds, "INT64", {1, 1})->mutable_contents()->add_int64_contents(101);
  ExpectInvalid(both, "both TEXT and input_ids");

  ModelInferRequest none;
  none.set_model_name("m");
  ExpectInvalid(none, "no TEXT (BYTES) and no input_ids");

  ModelInferRequest version = TextRequest({"a"}, {1});
  version.set_model_version("3");
  ExpectInvalid(version, "model_version is \"3\"");
}

TEST(V2Tensors, TokensInt64WithMaskAndTypes) {
  ModelInferRequest r;
  auto* ids = AddInput(&r, kInputIds, "INT64", {2, 4});
  auto* mask = AddInput(&r, kAttentionMask, "INT64", {2, 4});
  auto* types = AddInput(&r, kTokenTypeIds, "INT64", {2, 4});
  for (int64_t v : {101, 7592, 102, 0, 101, 2026, 102, 3940}) ids->mutable_contents()->add_int64_contents(v);
  for (int64_t v : {1, 1, 1, 0, 1, 1, 1, 1}) mask->mutable_contents()->add_int64_contents(v);
  for (int64_t v : {0, 0, 0, 0, 0, 0, 0, 1}) types->mutable_contents()->add_int64_contents(v);
  absl::StatusOr<DecodedRequest> d = DecodeInferRequest(r);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->tokens.size(), 2u);
  EXPECT_THAT(d->tokens[0].ids, ElementsAre(101, 7592, 102));
  EXPECT_THAT(d->tokens[0].type_ids, ElementsAre(0, 0, 0));
  EXPECT_THAT(d->tokens[1].ids, ElementsAre(101, 2026, 102, 3940));
  EXPECT_THAT(d->tokens[1].type_ids, ElementsAre(0, 0, 0, 1));
  EXPECT_EQ(d->request.inputs_size(), 0);
}

TEST(V2Tensors, TokensInt32Raw) {
  ModelInferRequest r;
  AddInput(&r, kInputIds, "INT32", {1, 3});
  std::string raw;
  for (int32_t v : {101, 7592, 102}) {
    char b[4];
    std::memcpy(b, &v, 4);  // the test runs on little-endian machines
    raw.append(b, 4);
  }
  r.add_raw_input_contents(raw);
  absl::StatusOr<DecodedRequest> d = DecodeInferRequest(r);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->tokens.size(), 1u);
  EXPECT_THAT(d->tokens[0].ids, ElementsAre(101, 7592, 102));
  EXPECT_THAT(d->tokens[0].type_ids, ElementsAre(0, 0, 0));

  r.set_raw_input_contents(0, raw.substr(0, 10));
  ExpectInvalid(r, "input input_ids has 10 bytes in raw_input_contents; its shape [1, 3] needs 3 x 4 bytes");
}

TEST(V2Tensors, TokenErrors) {
  ModelInferRequest flat;
  AddInput(&flat, kInputIds, "INT64", {3})->mutable_contents()->add_int64_contents(1);
  ExpectInvalid(flat, "input input_ids has shape [3]; it must be [batch, sequence]");

  ModelInferRequest holes;
  auto* ids = AddInput(&holes, kInputIds, "INT64", {1, 3});
  auto* mask = AddInput(&holes, kAttentionMask, "INT64", {1, 3});
  for (int64_t v : {101, 5, 102}) ids->mutable_contents()->add_int64_contents(v);
  for (int64_t v : {1, 0, 1}) mask->mutable_contents()->add_int64_contents(v);
  ExpectInvalid(holes, "input attention_mask row 0 is not 1s followed by 0s");

  ModelInferRequest shapes = holes;
  shapes.mutable_inputs(1)->set_shape(1, 2);
  ExpectInvalid(shapes, "input attention_mask has shape [1, 2]; it must be input_ids' [1, 3]");

  ModelInferRequest negative;
  AddInput(&negative, kInputIds, "INT64", {1, 2});
  negative.mutable_inputs(0)->mutable_contents()->add_int64_contents(101);
  negative.mutable_inputs(0)->mutable_contents()->add_int64_contents(-4);
  ExpectInvalid(negative, "input input_ids row 0 position 1 is -4");

  ModelInferRequest wrong_field;
  AddInput(&wrong_field, kInputIds, "INT64", {1, 1})->mutable_contents()->add_int_contents(101);
  ExpectInvalid(wrong_field, "input input_ids has 0 elements in contents.int64_contents");

  ModelInferRequest pair_with_ids;
  AddInput(&pair_with_ids, kInputIds, "INT64", {1, 1})->mutable_contents()->add_int64_contents(101);
  AddInput(&pair_with_ids, kTextPair, "BYTES", {1})->mutable_contents()->add_bytes_contents("x");
  ExpectInvalid(pair_with_ids, "TEXT_PAIR goes with TEXT");
}

TEST(V2Tensors, Parameters) {
  ModelInferRequest r = TextRequest({"a"}, {1});
  (*r.mutable_parameters())["top_k"].set_int64_param(2);
  (*r.mutable_parameters())["raw_scores"].set_bool_param(true);
  (*r.mutable_parameters())["truncate"].set_bool_param(false);
  (*r.mutable_parameters())["something_else"].set_string_param("ignored");
  absl::StatusOr<DecodedRequest> d = DecodeInferRequest(r);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->request.top_k(), 2);
  EXPECT_TRUE(d->request.raw_scores());
  ASSERT_TRUE(d->request.has_truncate());
  EXPECT_FALSE(d->request.truncate());

  (*r.mutable_parameters())["top_k"].set_string_param("2");
  ExpectInvalid(r, "parameter top_k must be an int64_param");
  (*r.mutable_parameters())["top_k"].set_int64_param(int64_t{1} << 40);
  ExpectInvalid(r, "top_k is 1099511627776; it must be between 0 (all labels) and 65536");
  (*r.mutable_parameters())["top_k"].set_int64_param(1);
  (*r.mutable_parameters())["truncate"].set_int64_param(1);
  ExpectInvalid(r, "parameter truncate must be a bool_param");
}

TEST(V2Tensors, OutputPlan) {
  ModelInferRequest r = TextRequest({"a"}, {1});
  absl::StatusOr<OutputPlan> plan = PlanOutputs(r);
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(plan->names, ElementsAre(kLabel, kProbabilities));
  EXPECT_FALSE(plan->raw);

  (*r.mutable_parameters())["raw_scores"].set_bool_param(true);
  EXPECT_THAT(PlanOutputs(r)->names, ElementsAre(kLabel, kLogits));

  r.add_outputs()->set_name(kLogits);
  auto* probs = r.add_outputs();
  probs->set_name(kProbabilities);
  (*probs->mutable_parameters())["binary_data"].set_bool_param(true);
  plan = PlanOutputs(r);
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(plan->names, ElementsAre(kLogits, kProbabilities));
  EXPECT_TRUE(plan->raw);

  r.add_outputs()->set_name("EMBEDDING");
  EXPECT_THAT(std::string(PlanOutputs(r).status().message()), HasSubstr("unknown output \"EMBEDDING\""));
  EXPECT_TRUE(PlanOutputs(RawTextRequest(EncodeRawBytes({"a"}), {1}))->raw);
}

core::ClassifiedRows TwoRows() {
  core::ClassifiedRows rows;
  rows.rows = {{0.5f, 2.0f, -1.0f}, {3.0f, 0.0f, 1.0f}};
  rows.labels = {"neg", "pos", "neutral"};
  return rows;
}

TEST(V2Tensors, ResponseAllLabelsInOrder) {
  OutputPlan plan;
  plan.names = {kLogits, kProbabilities, kLabel};
  inference::ModelInferResponse r = EncodeInferResponse("m", "id-1", plan, 0, TwoRows());
  EXPECT_EQ(r.model_name(), "m");
  EXPECT_EQ(r.id(), "id-1");
  ASSERT_EQ(r.outputs_size(), 3);
  EXPECT_EQ(r.outputs(0).datatype(), "FP32");
  EXPECT_THAT(r.outputs(0).shape(), ElementsAre(2, 3));
  EXPECT_THAT(r.outputs(0).contents().fp32_contents(), ElementsAre(0.5f, 2.0f, -1.0f, 3.0f, 0.0f, 1.0f));
  const auto& p = r.outputs(1).contents().fp32_contents();
  ASSERT_EQ(p.size(), 6);
  EXPECT_NEAR(p[0] + p[1] + p[2], 1.0, 1e-6);
  EXPECT_GT(p[1], p[0]);
  EXPECT_EQ(r.outputs(2).datatype(), "BYTES");
  EXPECT_THAT(r.outputs(2).shape(), ElementsAre(2));
  EXPECT_THAT(r.outputs(2).contents().bytes_contents(), ElementsAre("pos", "neg"));
  EXPECT_EQ(r.raw_output_contents_size(), 0);
}

TEST(V2Tensors, ResponseTopKRaw) {
  OutputPlan plan;
  plan.names = {kLabel, kLogits};
  plan.raw = true;
  inference::ModelInferResponse r = EncodeInferResponse("m", "", plan, 2, TwoRows());
  ASSERT_EQ(r.raw_output_contents_size(), 2);
  EXPECT_FALSE(r.outputs(0).has_contents());
  EXPECT_THAT(r.outputs(0).shape(), ElementsAre(2, 2));
  absl::StatusOr<std::vector<std::string>> labels =
      DecodeRawBytes(r.raw_output_contents(0), 4, "LABEL");
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_THAT(*labels, ElementsAre("pos", "neg", "neg", "neutral"));
  EXPECT_THAT(r.outputs(1).shape(), ElementsAre(2, 2));
  const std::string& raw = r.raw_output_contents(1);
  ASSERT_EQ(raw.size(), 16u);
  float v[4];
  std::memcpy(v, raw.data(), 16);
  EXPECT_THAT(std::vector<float>(v, v + 4), ElementsAre(2.0f, 0.5f, 3.0f, 1.0f));
}

}  // namespace
}  // namespace bertserve::grpcsvc::v2
