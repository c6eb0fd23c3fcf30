#include "server/tokenizer/tokenizer_json.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/tokenizer/text_file.h"

namespace bertserve::tokenizer {
namespace {

using Json = nlohmann::json;

// Every message names the file: a server loading several models must say
// which one is wrong.
absl::Status Malformed(const std::string& path, std::string_view detail) {
  return absl::InvalidArgumentError(
      absl::StrFormat("tokenizer.json %s: %s", path, detail));
}

absl::Status Unsupported(const std::string& path, std::string_view detail) {
  return absl::FailedPreconditionError(
      absl::StrFormat("tokenizer.json %s: %s", path, detail));
}

// The "type" of a component, "none" for null or absent.
std::string TypeOf(const Json& root, const char* key) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return "none";
  if (!it->is_object()) return "(not an object)";
  return it->value("type", std::string("(no type)"));
}

absl::StatusOr<int32_t> ToId(const Json& value, const std::string& path,
                             std::string_view what) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
      value.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
    return Malformed(
        path, absl::StrFormat("%s is not a valid id: %s", what, value.dump()));
  }
  return static_cast<int32_t>(value.get<int64_t>());
}

absl::Status ReadModel(const Json& root, const std::string& path,
                       TokenizerJson* out) {
  auto model = root.find("model");
  if (model == root.end() || !model->is_object()) {
    return Malformed(path, "no \"model\" object");
  }
  std::string type = model->value("type", std::string());
  if (type.empty()) {
    // Files written by tokenizers before 0.10 have no model type; a
    // WordPiece one is recognized by its own fields.
    if ((model->contains("continuing_subword_prefix") ||
         model->contains("max_input_chars_per_word")) &&
        !model->contains("merges")) {
      type = "WordPiece";
    } else {
      return Malformed(path, "the model has no \"type\"");
    }
  }
  if (type != "WordPiece") {
    return Unsupported(
        path, absl::StrFormat("model type \"%s\" is not supported; bertserve "
                              "serves WordPiece (BERT) tokenizers only",
                              type));
  }
  auto vocab = model->find("vocab");
  if (vocab == model->end() || !vocab->is_object() || vocab->empty()) {
    return Malformed(path, "model.vocab is not a non-empty object");
  }
  out->vocab.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    absl::StatusOr<int32_t> id = ToId(
        it.value(), path, absl::StrFormat("model.vocab[\"%s\"]", it.key()));
    if (!id.ok()) return id.status();
    out->vocab.emplace_back(it.key(), *id);
  }
  out->wordpiece.unk_token = model->value("unk_token", std::string("[UNK]"));
  out->wordpiece.continuing_subword_prefix =
      model->value("continuing_subword_prefix", std::string("##"));
  // Read as JSON, not as int: converting a float like 1e300 to int is
  // undefined behaviour, not an exception.
  const Json max_chars = model->value("max_input_chars_per_word", Json(100));
  if (!max_chars.is_number_integer() || max_chars.get<int64_t>() <= 0 ||
      max_chars.get<int64_t>() > std::numeric_limits<int>::max()) {
    return Malformed(path,
                     "model.max_input_chars_per_word is not an integer in "
                     "range");
  }
  out->wordpiece.max_input_chars_per_word =
      static_cast<int>(max_chars.get<int64_t>());
  return absl::OkStatus();
}

absl::Status ReadNormalizer(const Json& root, const std::string& path,
                            TokenizerJson* out) {
  const std::string type = TypeOf(root, "normalizer");
  if (type == "none") {
    // No normalizer: the text reaches the pre-tokenizer as it is.
    out->normalizer = NormalizerOptions{false, false, false, false};
    return absl::OkStatus();
  }
  if (type != "BertNormalizer") {
    return Unsupported(
        path, absl::StrFormat("normalizer \"%s\" is not supported; only "
                              "BertNormalizer (or none)",
                              type));
  }
  const Json& n = root.at("normalizer");
  NormalizerOptions& options = out->normalizer;
  options.clean_text = n.value("clean_text", true);
  options.handle_chinese_chars = n.value("handle_chinese_chars", true);
  options.lowercase = n.value("lowercase", true);
  auto strip = n.find("strip_accents");
  if (strip != n.end() && !strip->is_null()) {
    options.strip_accents = strip->get<bool>();
  } else {
    options.strip_accents.reset();
  }
  return absl::OkStatus();
}

// One element of a TemplateProcessing template, e.g.
// {"SpecialToken": {"id": "[CLS]", "type_id": 0}}.
bool PieceIs(const Json& piece, const char* kind, const std::string& id,
             int type_id) {
  auto it = piece.find(kind);
  if (it == piece.end() || !it->is_object()) return false;
  auto type = it->find("type_id");
  return it->value("id", std::string()) == id && type != it->end() &&
         type->is_number_integer() && type->get<int64_t>() == type_id;
}

absl::Status ReadTemplate(const Json& post, const std::string& path,
                          TokenizerJson* out) {
  const Json& single = post.at("single");
  const Json& pair = post.at("pair");
  const std::string cls =
      single.size() == 3 && single[0].contains("SpecialToken")
          ? single[0]["SpecialToken"].value("id", "")
          : "";
  const std::string sep =
      single.size() == 3 && single[2].contains("SpecialToken")
          ? single[2]["SpecialToken"].value("id", "")
          : "";
  const bool bert_template = !cls.empty() && !sep.empty() &&
                             PieceIs(single[0], "SpecialToken", cls, 0) &&
                             PieceIs(single[1], "Sequence", "A", 0) &&
                             PieceIs(single[2], "SpecialToken", sep, 0) &&
                             pair.size() == 5 &&
                             PieceIs(pair[0], "SpecialToken", cls, 0) &&
                             PieceIs(pair[1], "Sequence", "A", 0) &&
                             PieceIs(pair[2], "SpecialToken", sep, 0) &&
                             PieceIs(pair[3], "Sequence", "B", 1) &&
                             PieceIs(pair[4], "SpecialToken", sep, 1);
  if (!bert_template) {
    return Unsupported(path,
                       "post_processor TemplateProcessing is not the "
                       "BERT template [CLS] $A [SEP] / [CLS] $A [SEP] "
                       "$B:1 [SEP]:1");
  }
  out->cls = {cls, -1};
  out->sep = {sep, -1};
  // The template's own ids win over the vocabulary, as in Hugging Face.
  auto specials = post.find("special_tokens");
  for (auto* token : {&out->cls, &out->sep}) {
    if (specials == post.end() || !specials->contains(token->first)) continue;
    const Json& ids = (*specials)[token->first].at("ids");
    if (ids.size() != 1) {
      return Unsupported(
          path,
          absl::StrFormat("special token \"%s\" of the template is not one id",
                          token->first));
    }
    absl::StatusOr<int32_t> id = ToId(ids[0], path, token->first);
    if (!id.ok()) return id.status();
    token->second = *id;
  }
  return absl::OkStatus();
}

absl::Status ReadPostProcessor(const Json& root, const std::string& path,
                               TokenizerJson* out) {
  const std::string type = TypeOf(root, "post_processor");
  if (type == "TemplateProcessing") {
    return ReadTemplate(root.at("post_processor"), path, out);
  }
  if (type != "BertProcessing") {
    return Unsupported(
        path, absl::StrFormat("post_processor \"%s\" is not supported; only "
                              "BertProcessing or the BERT TemplateProcessing",
                              type));
  }
  const Json& post = root.at("post_processor");
  using Field = std::pair<const char*, std::pair<std::string, int32_t>*>;
  for (const Field& field :
       {Field{"cls", &out->cls}, Field{"sep", &out->sep}}) {
    const auto& [key, token] = field;
    const Json& value = post.at(key);  // ["[CLS]", 101]
    if (!value.is_array() || value.size() != 2 || !value[0].is_string()) {
      return Malformed(path, absl::StrFormat("post_processor.%s is not "
                                             "[token, id]",
                                             key));
    }
    absl::StatusOr<int32_t> id = ToId(value[1], path, key);
    if (!id.ok()) return id.status();
    *token = {value[0].get<std::string>(), *id};
  }
  return absl::OkStatus();
}

absl::Status ReadAddedTokens(const Json& root, const std::string& path,
                             TokenizerJson* out) {
  auto added = root.find("added_tokens");
  if (added == root.end() || added->is_null()) return absl::OkStatus();
  if (!added->is_array()) return Malformed(path, "added_tokens is not a list");
  out->added_tokens.emplace();
  for (const Json& token : *added) {
    const std::string content = token.at("content").get<std::string>();
    // Only what BERT's special tokens use is implemented; refusing the rest
    // beats tokenizing differently from Hugging Face without a word.
    for (const char* flag : {"normalized", "lstrip", "rstrip", "single_word"}) {
      if (token.value(flag, false)) {
        return Unsupported(path,
                           absl::StrFormat("added token \"%s\" sets %s, which "
                                           "bertserve does not implement",
                                           content, flag));
      }
    }
    absl::StatusOr<int32_t> id = ToId(token.at("id"), path, content);
    if (!id.ok()) return id.status();
    out->added_tokens->emplace_back(content, *id);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadTextFile(path, "tokenizer.json");
  if (!contents.ok()) return contents.status();
  const Json root = Json::parse(*contents, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Malformed(path, "not valid JSON");
  if (!root.is_object()) return Malformed(path, "not a JSON object");
  TokenizerJson out;
  // nlohmann throws on a missing key or a wrong type (at(), get<>(),
  // value()); any such throw means the file is malformed.
  try {
    for (auto* read :
         {ReadModel, ReadNormalizer, ReadPostProcessor, ReadAddedTokens}) {
      if (absl::Status s = read(root, path, &out); !s.ok()) return s;
    }
    const std::string pre_tokenizer = TypeOf(root, "pre_tokenizer");
    if (pre_tokenizer != "BertPreTokenizer") {
      return Unsupported(
          path,
          absl::StrFormat(
              "pre_tokenizer \"%s\" is not supported; only BertPreTokenizer",
              pre_tokenizer));
    }
    auto padding = root.find("padding");
    if (padding != root.end() && padding->is_object() &&
        padding->contains("pad_id")) {
      absl::StatusOr<int32_t> id = ToId(padding->at("pad_id"), path, "pad_id");
      if (!id.ok()) return id.status();
      out.pad_id = *id;
    }
  } catch (const Json::exception& e) {
    return Malformed(path, e.what());
  }
  return out;
}

}  // namespace bertserve::tokenizer
