#include "server/grpc/v2_tensors.h"

#include <cstring>
#include <initializer_list>
#include <limits>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/scores.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::grpcsvc::v2 {
namespace {

using InputTensor = inference::ModelInferRequest::InferInputTensor;

absl::Status Invalid(absl::string_view a, absl::string_view b = "", absl::string_view c = "",
                     absl::string_view d = "", absl::string_view e = "") {
  return absl::InvalidArgumentError(absl::StrCat(a, b, c, d, e));
}

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// One input tensor and where its elements are: its `contents`, or `raw`.
struct Tensor {
  const InputTensor* tensor = nullptr;
  const std::string* raw = nullptr;  // null: tensor->contents
  std::string what;                  // "input TEXT", for messages
};

// The shape's element count. Dimensions are checked against the data before
// anything is allocated, so a huge shape costs nothing.
absl::StatusOr<int64_t> ElementCount(const Tensor& t) {
  const auto& shape = t.tensor->shape();
  if (shape.empty()) return Invalid(t.what, " has no shape");
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return Invalid(t.what, " has shape ", ShapeString(shape), ": no dimension may be negative");
    }
    // Past 2^31 elements no request fits in a message anyway.
    if (d > std::numeric_limits<int32_t>::max() ||
        (d > 0 && count > std::numeric_limits<int32_t>::max() / d)) {
      return Invalid(t.what, " has shape ", ShapeString(shape), ": too many elements");
    }
    count *= d;
  }
  return count;
}

absl::Status CheckDatatype(const Tensor& t, std::initializer_list<absl::string_view> allowed) {
  for (absl::string_view a : allowed) {
    if (t.tensor->datatype() == a) return absl::OkStatus();
  }
  return Invalid(t.what, " has datatype \"", t.tensor->datatype(), "\"; it must be ",
                 absl::StrJoin(allowed, " or "));
}

absl::Status CountMismatch(const Tensor& t, int64_t have, int64_t need, absl::string_view where) {
  return Invalid(t.what, absl::StrCat(" has ", have, " elements in ", where, "; its shape "),
                 ShapeString(t.tensor->shape()), absl::StrCat(" needs ", need));
}

absl::StatusOr<std::vector<std::string>> BytesElements(const Tensor& t, int64_t count) {
  if (t.raw != nullptr) return DecodeRawBytes(*t.raw, count, t.what);
  const auto& elements = t.tensor->contents().bytes_contents();
  if (elements.size() != count) {
    return CountMismatch(t, elements.size(), count, "contents.bytes_contents");
  }
  return std::vector<std::string>(elements.begin(), elements.end());
}

absl::StatusOr<std::vector<int64_t>> IntElements(const Tensor& t, int64_t count) {
  const bool wide = t.tensor->datatype() == "INT64";
  std::vector<int64_t> out;
  if (t.raw != nullptr) {
    const size_t width = wide ? 8 : 4;
    if (t.raw->size() % width != 0 || static_cast<int64_t>(t.raw->size() / width) != count) {
      return Invalid(t.what, absl::StrCat(" has ", t.raw->size(), " bytes in raw_input_contents; ",
                                          "its shape "),
                     ShapeString(t.tensor->shape()),
                     absl::StrCat(" needs ", count, " x ", width, " bytes"));
    }
    out.resize(count);
    const auto* p = reinterpret_cast<const unsigned char*>(t.raw->data());
    for (int64_t i = 0; i < count; ++i, p += width) {
      // Little-endian whatever the host's byte order.
      uint64_t v = 0;
      for (size_t b = 0; b < width; ++b) v |= static_cast<uint64_t>(p[b]) << (8 * b);
      out[i] = wide ? static_cast<int64_t>(v) : static_cast<int32_t>(static_cast<uint32_t>(v));
    }
    return out;
  }
  if (wide) {
    const auto& v = t.tensor->contents().int64_contents();
    if (v.size() != count) return CountMismatch(t, v.size(), count, "contents.int64_contents");
    out.assign(v.begin(), v.end());
  } else {
    const auto& v = t.tensor->contents().int_contents();
    if (v.size() != count) return CountMismatch(t, v.size(), count, "contents.int_contents");
    out.assign(v.begin(), v.end());
  }
  return out;
}

bool HasContents(const InputTensor& tensor) {
  return tensor.has_contents() && tensor.contents().ByteSizeLong() > 0;
}

// The texts of TEXT (and TEXT_PAIR): shape [batch] or [batch, 1], valid UTF-8.
absl::Status DecodeTexts(const Tensor& text, const Tensor* pair, v1::ClassifyRequest* out) {
  for (const Tensor* t : {&text, pair}) {
    if (t == nullptr) continue;
    if (absl::Status s = CheckDatatype(*t, {"BYTES"}); !s.ok()) return s;
    const auto& shape = t->tensor->shape();
    if (shape.empty() || shape.size() > 2 || (shape.size() == 2 && shape[1] != 1)) {
      return Invalid(t->what, " has shape ", ShapeString(shape),
                     "; it must be [batch] or [batch, 1]");
    }
  }
  absl::StatusOr<int64_t> count = ElementCount(text);
  if (!count.ok()) return count.status();
  absl::StatusOr<std::vector<std::string>> texts = BytesElements(text, *count);
  if (!texts.ok()) return texts.status();
  std::vector<std::string> pairs;
  if (pair != nullptr) {
    if (pair->tensor->shape(0) != text.tensor->shape(0)) {
      return Invalid(pair->what, " has shape ", ShapeString(pair->tensor->shape()),
                     "; it must have as many texts as TEXT ",
                     ShapeString(text.tensor->shape()));
    }
    absl::StatusOr<std::vector<std::string>> p = BytesElements(*pair, *count);
    if (!p.ok()) return p.status();
    pairs = *std::move(p);
  }
  for (int64_t i = 0; i < *count; ++i) {
    v1::TextInput* input = out->add_inputs();
    const std::string where = absl::StrCat(text.what, " element ", i);
    if (absl::Status s = tokenizer::unicode::ValidateUtf8((*texts)[i], where); !s.ok()) return s;
    input->set_text(std::move((*texts)[i]));
    if (pair != nullptr) {
      const std::string pair_where = absl::StrCat(pair->what, " element ", i);
      if (absl::Status s = tokenizer::unicode::ValidateUtf8(pairs[i], pair_where); !s.ok()) {
        return s;
      }
      input->set_text_pair(std::move(pairs[i]));
    }
  }
  return absl::OkStatus();
}

// Rows of input_ids [batch, seq], cut where attention_mask (1s, then 0s:
// right padding) ends; type ids from token_type_ids, else 0.
absl::Status DecodeTokens(const Tensor& ids, const Tensor* mask, const Tensor* types,
                          std::vector<core::EncodedInput>* out) {
  for (const Tensor* t : {&ids, mask, types}) {
    if (t == nullptr) continue;
    if (absl::Status s = CheckDatatype(*t, {"INT64", "INT32"}); !s.ok()) return s;
  }
  const auto& shape = ids.tensor->shape();
  if (shape.size() != 2) {
    return Invalid(ids.what, " has shape ", ShapeString(shape), "; it must be [batch, sequence]");
  }
  for (const Tensor* t : {mask, types}) {
    if (t == nullptr) continue;
    if (t->tensor->shape().size() != 2 || t->tensor->shape(0) != shape[0] ||
        t->tensor->shape(1) != shape[1]) {
      return Invalid(t->what, " has shape ", ShapeString(t->tensor->shape()),
                     "; it must be input_ids' ", ShapeString(shape));
    }
  }
  absl::StatusOr<int64_t> count = ElementCount(ids);
  if (!count.ok()) return count.status();
  // Checked before the rows are made: [huge, 0] holds no data to check the
  // shape against.
  if (shape[1] == 0 && shape[0] > 0) {
    return Invalid(ids.what, " has shape ", ShapeString(shape), ": its rows have no tokens");
  }
  absl::StatusOr<std::vector<int64_t>> id_values = IntElements(ids, *count);
  if (!id_values.ok()) return id_values.status();
  std::vector<int64_t> mask_values, type_values;
  if (mask != nullptr) {
    absl::StatusOr<std::vector<int64_t>> v = IntElements(*mask, *count);
    if (!v.ok()) return v.status();
    mask_values = *std::move(v);
  }
  if (types != nullptr) {
    absl::StatusOr<std::vector<int64_t>> v = IntElements(*types, *count);
    if (!v.ok()) return v.status();
    type_values = *std::move(v);
  }
  const int64_t batch = shape[0], length = shape[1];
  for (int64_t row = 0; row < batch; ++row) {
    const int64_t first = row * length;
    int64_t used = length;
    if (mask != nullptr) {
      used = 0;
      while (used < length && mask_values[first + used] == 1) ++used;
      for (int64_t k = used; k < length; ++k) {
        if (mask_values[first + k] != 0) {
          return Invalid(mask->what, absl::StrCat(" row ", row, " is not 1s followed by 0s; ",
                                                  "pad on the right (position ", k, " is ",
                                                  mask_values[first + k], ")"));
        }
      }
    }
    core::EncodedInput input;
    input.ids.reserve(used);
    input.type_ids.reserve(used);
    for (int64_t k = 0; k < used; ++k) {
      const int64_t id = (*id_values)[first + k];
      // The model's vocabulary is checked by the Classifier; here only that
      // the id is a token id at all.
      if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
        return Invalid(ids.what, absl::StrCat(" row ", row, " position ", k, " is ", id,
                                              "; token ids are not negative"));
      }
      const int64_t type = types != nullptr ? type_values[first + k] : 0;
      if (type < 0 || type > std::numeric_limits<int32_t>::max()) {
        return Invalid(types->what, absl::StrCat(" row ", row, " position ", k, " is ", type,
                                                 "; type ids are 0 or 1"));
      }
      input.ids.push_back(static_cast<int32_t>(id));
      input.type_ids.push_back(static_cast<int32_t>(type));
    }
    out->push_back(std::move(input));
  }
  return absl::OkStatus();
}

// The parameter's value as an int64 (int64_param or uint64_param).
absl::StatusOr<int64_t> IntParameter(const std::string& name, const inference::InferParameter& p) {
  if (p.has_int64_param()) return p.int64_param();
  if (p.has_uint64_param() &&
      p.uint64_param() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(p.uint64_param());
  }
  return Invalid("parameter ", name, " must be an int64_param");
}

absl::StatusOr<bool> BoolParameter(const std::string& name, const inference::InferParameter& p) {
  if (p.has_bool_param()) return p.bool_param();
  return Invalid("parameter ", name, " must be a bool_param");
}

absl::Status DecodeParameters(const inference::ModelInferRequest& request,
                              v1::ClassifyRequest* out) {
  for (const auto& parameter : request.parameters()) {
    const std::string& name = parameter.first;
    const inference::InferParameter& value = parameter.second;
    if (name == "top_k") {
      absl::StatusOr<int64_t> k = IntParameter(name, value);
      if (!k.ok()) return k.status();
      if (*k < 0 || *k > core::kMaxTopK) {
        // The Classifier's own words for an out-of-range top_k.
        return Invalid(absl::StrCat("top_k is ", *k, "; it must be between 0 (all labels) and ",
                                    core::kMaxTopK));
      }
      out->set_top_k(static_cast<int32_t>(*k));
    } else if (name == "raw_scores") {
      absl::StatusOr<bool> b = BoolParameter(name, value);
      if (!b.ok()) return b.status();
      out->set_raw_scores(*b);
    } else if (name == "truncate") {
      absl::StatusOr<bool> b = BoolParameter(name, value);
      if (!b.ok()) return b.status();
      out->set_truncate(*b);
    }
  }
  return absl::OkStatus();
}

void AppendFloat(float f, std::string* out) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  for (int b = 0; b < 4; ++b) out->push_back(static_cast<char>((bits >> (8 * b)) & 0xff));
}

}  // namespace

std::string EncodeRawBytes(const std::vector<std::string>& elements) {
  std::string out;
  for (const std::string& e : elements) {
    const auto n = static_cast<uint32_t>(e.size());
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((n >> (8 * b)) & 0xff));
    out += e;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeRawBytes(const std::string& raw, int64_t count,
                                                        absl::string_view what) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < raw.size()) {
    const int64_t index = static_cast<int64_t>(out.size());
    if (index == count) {
      return Invalid(what, absl::StrCat(" has ", raw.size() - pos, " bytes in raw_input_contents "
                                        "after its ", count, " elements"));
    }
    if (raw.size() - pos < 4) {
      return Invalid(what, absl::StrCat(" element ", index, " has a truncated length prefix: ",
                                        raw.size() - pos, " of 4 bytes at byte ", pos,
                                        " of raw_input_contents"));
    }
    uint32_t length = 0;
    for (int b = 0; b < 4; ++b) {
      length |= static_cast<uint32_t>(static_cast<unsigned char>(raw[pos + b])) << (8 * b);
    }
    pos += 4;
    if (length > raw.size() - pos) {
      return Invalid(what, absl::StrCat(" element ", index, " declares ", length,
                                        " bytes but only ", raw.size() - pos,
                                        " remain in raw_input_contents"));
    }
    out.emplace_back(raw, pos, length);
    pos += length;
  }
  if (static_cast<int64_t>(out.size()) != count) {
    return Invalid(what, absl::StrCat(" has ", out.size(), " elements in raw_input_contents; ",
                                      "its shape needs ", count));
  }
  return out;
}

absl::StatusOr<DecodedRequest> DecodeInferRequest(const inference::ModelInferRequest& request) {
  DecodedRequest decoded;
  v1::ClassifyRequest& out = decoded.request;
  out.set_model(request.model_name());
  out.set_request_id(request.id());
  if (!request.model_version().empty() && request.model_version() != "1") {
    return Invalid("model_version is \"", request.model_version(),
                   "\"; bertserve models have one version: send \"\" or \"1\"");
  }
  if (absl::Status s = DecodeParameters(request, &out); !s.ok()) return s;

  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return Invalid(absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                                " entries and the request ", request.inputs_size(),
                                " inputs; send one entry per input, in order"));
  }
  absl::flat_hash_map<std::string, Tensor> tensors;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const InputTensor& t = request.inputs(i);
    const std::string& name = t.name();
    if (name != kText && name != kTextPair && name != kInputIds && name != kAttentionMask &&
        name != kTokenTypeIds) {
      return Invalid("unknown input \"", name,
                     "\"; the inputs are TEXT and TEXT_PAIR (BYTES), or input_ids, "
                     "attention_mask and token_type_ids (INT64 or INT32)");
    }
    if (raw && HasContents(t)) {
      return Invalid("input ", name,
                     " has contents and the request has raw_input_contents; use one or the "
                     "other for every input");
    }
    Tensor tensor;
    tensor.tensor = &t;
    tensor.raw = raw ? &request.raw_input_contents(i) : nullptr;
    tensor.what = absl::StrCat("input ", name);
    if (!tensors.emplace(name, std::move(tensor)).second) {
      return Invalid("input ", name, " appears twice");
    }
  }
  auto find = [&](absl::string_view name) -> const Tensor* {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  };
  const Tensor* text = find(kText);
  const Tensor* ids = find(kInputIds);
  if (text != nullptr && ids != nullptr) {
    return Invalid("the request has both TEXT and input_ids; send texts or token ids, not both");
  }
  if (text != nullptr) {
    for (const char* other : {kAttentionMask, kTokenTypeIds}) {
      if (find(other) != nullptr) return Invalid("input ", other, " goes with input_ids, not TEXT");
    }
    if (absl::Status s = DecodeTexts(*text, find(kTextPair), &out); !s.ok()) return s;
  } else if (ids != nullptr) {
    if (find(kTextPair) != nullptr) return Invalid("input TEXT_PAIR goes with TEXT, not input_ids");
    absl::Status s = DecodeTokens(*ids, find(kAttentionMask), find(kTokenTypeIds), &decoded.tokens);
    if (!s.ok()) return s;
  } else {
    return Invalid("the request has no TEXT (BYTES) and no input_ids (INT64 or INT32) input");
  }
  return decoded;
}

absl::StatusOr<OutputPlan> PlanOutputs(const inference::ModelInferRequest& request) {
  OutputPlan plan;
  plan.raw = request.raw_input_contents_size() > 0;
  for (const auto& output : request.outputs()) {
    const std::string& name = output.name();
    if (name != kLogits && name != kProbabilities && name != kLabel) {
      return Invalid("unknown output \"", name,
                     "\"; the outputs are LOGITS, PROBABILITIES and LABEL");
    }
    for (const std::string& seen : plan.names) {
      if (seen == name) return Invalid("output ", name, " is asked for twice");
    }
    plan.names.push_back(name);
    auto binary = output.parameters().find("binary_data");
    if (binary != output.parameters().end() && binary->second.has_bool_param() &&
        binary->second.bool_param()) {
      plan.raw = true;
    }
  }
  if (plan.names.empty()) {
    auto raw_scores = request.parameters().find("raw_scores");
    const bool logits = raw_scores != request.parameters().end() &&
                        raw_scores->second.has_bool_param() && raw_scores->second.bool_param();
    plan.names = {kLabel, logits ? kLogits : kProbabilities};
  }
  return plan;
}

inference::ModelInferResponse EncodeInferResponse(const std::string& model_name,
                                                  const std::string& id, const OutputPlan& plan,
                                                  int top_k, const core::ClassifiedRows& rows) {
  inference::ModelInferResponse response;
  response.set_model_name(model_name);
  response.set_model_version("1");
  response.set_id(id);
  const int64_t batch = static_cast<int64_t>(rows.rows.size());
  const int num_labels = rows.rows.empty() ? 0 : static_cast<int>(rows.rows[0].size());
  const int keep = (top_k <= 0 || top_k > num_labels) ? num_labels : top_k;
  for (const std::string& name : plan.names) {
    auto* out = response.add_outputs();
    out->set_name(name);
    std::string raw;
    if (name == kLabel) {
      out->set_datatype("BYTES");
      out->add_shape(batch);
      if (top_k > 0) out->add_shape(keep);
      std::vector<std::string> labels;
      for (const core::LogitsRow& row : rows.rows) {
        // Best first, ties by label index, as bertserve.v1 orders its scores.
        auto scores = core::ScoreRow(row.data(), num_labels, /*raw=*/false, keep, rows.labels);
        const size_t n = top_k > 0 ? scores.size() : 1;
        for (size_t k = 0; k < n; ++k) labels.push_back(scores[k].label());
      }
      if (plan.raw) {
        raw = EncodeRawBytes(labels);
      } else {
        for (std::string& l : labels) out->mutable_contents()->add_bytes_contents(std::move(l));
      }
    } else {
      out->set_datatype("FP32");
      out->add_shape(batch);
      out->add_shape(keep);
      const bool logits = name == kLogits;
      for (const core::LogitsRow& row : rows.rows) {
        auto scores = core::ScoreRow(row.data(), num_labels, logits, 0, rows.labels);
        std::vector<float> values(num_labels);
        if (top_k > 0) {
          values.resize(keep);
          for (int k = 0; k < keep; ++k) values[k] = scores[k].score();
        } else {
          for (const v1::LabelScore& s : scores) values[s.index()] = s.score();
        }
        for (float v : values) {
          if (plan.raw) {
            AppendFloat(v, &raw);
          } else {
            out->mutable_contents()->add_fp32_contents(v);
          }
        }
      }
    }
    if (plan.raw) response.add_raw_output_contents(std::move(raw));
  }
  return response;
}

}  // namespace bertserve::grpcsvc::v2
