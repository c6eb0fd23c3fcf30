#include "server/core/model_registry.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/model_config.h"
#include "server/core/model_name.h"

namespace bertserve::core {

namespace fs = std::filesystem;

namespace {

constexpr char kConfigFile[] = "config.pbtxt";

tokenizer::NormalizerOptions NormalizerFromConfig(const v1::TokenizerOptions& t) {
  tokenizer::NormalizerOptions options;
  if (t.has_lowercase()) options.lowercase = t.lowercase();
  if (t.has_strip_accents()) options.strip_accents = t.strip_accents();
  if (t.has_handle_chinese_chars()) options.handle_chinese_chars = t.handle_chinese_chars();
  if (t.has_clean_text()) options.clean_text = t.clean_text();
  return options;
}

absl::StatusOr<v1::ModelConfig> ReadConfigIn(const std::string& directory) {
  const std::string path = (fs::path(directory) / kConfigFile).string();
  std::error_code ec;
  // A model directory without config.pbtxt runs with every default.
  if (!fs::exists(path, ec)) return ParseModelConfig("", path);
  return ReadModelConfig(path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(
    ModelRepository repository, ModelLoader* loader) {
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(std::move(repository), loader));
  absl::StatusOr<std::vector<std::string>> names = registry->repository_.ListModels();
  if (!names.ok()) return names.status();
  registry->Rescan();
  return registry;
}

ModelRegistry::ModelRegistry(ModelRepository repository, ModelLoader* loader)
    : repository_(std::move(repository)), loader_(loader) {}

ModelRegistry::~ModelRegistry() = default;

void ModelRegistry::AddStateListener(StateListener listener) {
  absl::MutexLock lock(&mu_);
  listeners_.push_back(std::move(listener));
}

void ModelRegistry::Rescan() {
  absl::StatusOr<std::vector<std::string>> names = repository_.ListModels();
  if (!names.ok()) return;
  for (const std::string& name : *names) {
    {
      absl::MutexLock lock(&mu_);
      if (models_.contains(name)) continue;
    }
    // Parse the config now so List shows a broken config before any load.
    Entry entry;
    entry.info.name = name;
    absl::StatusOr<std::string> dir = repository_.ModelDirectory(name);
    absl::StatusOr<v1::ModelConfig> config =
        dir.ok() ? ReadConfigIn(*dir) : absl::StatusOr<v1::ModelConfig>(dir.status());
    if (config.ok()) {
      entry.info.config = *config;
      entry.info.state = ModelState::kUnloaded;
    } else {
      entry.info.state = ModelState::kFailed;
      entry.info.last_error = std::string(config.status().message());
    }
    absl::MutexLock lock(&mu_);
    models_.try_emplace(name, std::move(entry));
  }
}

absl::Status ModelRegistry::EnsureKnown(const std::string& name) {
  if (absl::Status s = ValidateModelName(name); !s.ok()) return s;
  if (Contains(name)) return absl::OkStatus();
  Rescan();
  if (Contains(name)) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not in the repository"));
}

bool ModelRegistry::Contains(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  return models_.contains(name);
}

absl::StatusOr<ModelInfo> ModelRegistry::Snapshot(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not in the repository"));
  }
  return it->second.info;
}

absl::StatusOr<ModelInfo> ModelRegistry::Get(const std::string& name) const {
  if (absl::Status s = ValidateModelName(name); !s.ok()) return s;
  return Snapshot(name);
}

std::vector<ModelInfo> ModelRegistry::List() {
  Rescan();
  std::vector<ModelInfo> out;
  {
    absl::MutexLock lock(&mu_);
    out.reserve(models_.size());
    for (const auto& [name, entry] : models_) out.push_back(entry.info);
  }
  std::sort(out.begin(), out.end(),
            [](const ModelInfo& a, const ModelInfo& b) { return a.name < b.name; });
  return out;
}

void ModelRegistry::MarkUsed(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it != models_.end()) it->second.info.last_used = absl::Now();
}

absl::StatusOr<ModelHandle> ModelRegistry::Acquire(const std::string& name) {
  if (absl::Status s = ValidateModelName(name); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not in the repository"));
  }
  const Entry& entry = it->second;
  switch (entry.info.state) {
    case ModelState::kReady:
      return entry.loaded;
    case ModelState::kFailed:
      return absl::FailedPreconditionError(absl::StrCat(
          "model \"", name, "\" failed to load: ", entry.info.last_error));
    case ModelState::kUnloaded:
      return absl::FailedPreconditionError(
          absl::StrCat("model \"", name, "\" is not loaded; load it with Models.Load"));
    default:
      return absl::UnavailableError(absl::StrCat("model \"", name, "\" is ",
                                                 ModelStateName(entry.info.state)));
  }
}

void ModelRegistry::Transition(const std::string& name, ModelState to,
                               const std::string& error) {
  ModelInfo snapshot;
  std::vector<StateListener> listeners;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    // A broken transition is a bug in this file; the check keeps the exported
    // state machine honest.
    if (!IsLegalTransition(entry.info.state, to)) {
      entry.info.last_error = absl::StrCat("internal: illegal transition ",
                                           ModelStateName(entry.info.state), " -> ",
                                           ModelStateName(to));
      to = ModelState::kFailed;
    } else if (to == ModelState::kFailed) {
      entry.info.last_error = error;
    }
    entry.info.state = to;
    if (to != ModelState::kReady) entry.loaded.reset();
    snapshot = entry.info;
    listeners = listeners_;
  }
  for (const StateListener& listener : listeners) listener(snapshot);
}

absl::StatusOr<ModelInfo> ModelRegistry::Load(const std::string& name) {
  if (absl::Status s = EnsureKnown(name); !s.ok()) return s;
  auto job = placements_.Submit(absl::StrCat("load/", name), [this, name] { return DoLoad(name); });
  if (absl::Status s = job->Wait(); !s.ok()) return s;
  return Snapshot(name);
}

absl::StatusOr<ModelInfo> ModelRegistry::Unload(const std::string& name) {
  if (absl::Status s = EnsureKnown(name); !s.ok()) return s;
  auto job =
      placements_.Submit(absl::StrCat("unload/", name), [this, name] { return DoUnload(name); });
  if (absl::Status s = job->Wait(); !s.ok()) return s;
  return Snapshot(name);
}

absl::Status ModelRegistry::DoLoad(const std::string& name) {
  absl::StatusOr<ModelInfo> before = Snapshot(name);
  if (!before.ok()) return before.status();
  if (before->state == ModelState::kReady) return absl::OkStatus();

  Transition(name, ModelState::kLoading);
  absl::StatusOr<std::shared_ptr<LoadedModel>> built = Build(name);
  if (!built.ok()) {
    const std::string reason(built.status().message());
    Transition(name, ModelState::kFailed, reason);
    if (absl::IsResourceExhausted(built.status())) return built.status();
    return absl::FailedPreconditionError(
        absl::StrCat("model \"", name, "\" failed to load: ", reason));
  }
  std::shared_ptr<LoadedModel> loaded = *std::move(built);
  {
    absl::MutexLock lock(&mu_);
    ModelInfo& info = models_[name].info;
    info.config = loaded->config;
    info.device = loaded->model->device();
    info.weight_bytes = loaded->model->weight_bytes();
    info.num_labels = loaded->model->num_labels();
    info.labels = loaded->labels;
    info.inputs = loaded->model->input_names();
    info.last_error.clear();
  }
  // The runtime loads straight onto its device for now; HOST and PLACING are
  // passed through so the exported state machine is the one clients will see
  // once placement and offload are separate steps.
  Transition(name, ModelState::kHost);
  Transition(name, ModelState::kPlacing);
  {
    absl::MutexLock lock(&mu_);
    models_[name].loaded = loaded;
  }
  Transition(name, ModelState::kReady);
  return absl::OkStatus();
}

absl::Status ModelRegistry::DoUnload(const std::string& name) {
  absl::StatusOr<ModelInfo> before = Snapshot(name);
  if (!before.ok()) return before.status();
  switch (before->state) {
    case ModelState::kUnloaded:
      return absl::OkStatus();
    case ModelState::kReady:
    case ModelState::kHost:
    case ModelState::kFailed:
      break;
    default:
      return absl::UnavailableError(absl::StrCat("model \"", name, "\" is ",
                                                 ModelStateName(before->state)));
  }
  {
    absl::MutexLock lock(&mu_);
    ModelInfo& info = models_[name].info;
    info.weight_bytes = 0;
    info.device.clear();
  }
  // Dropping the registry's handle frees the weights once the last request
  // holding one finishes.
  Transition(name, ModelState::kUnloaded);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<LoadedModel>> ModelRegistry::Build(const std::string& name) {
  absl::StatusOr<std::string> dir = repository_.ModelDirectory(name);
  if (!dir.ok()) return dir.status();
  // Re-read the config so edits on disk take effect on the next load.
  absl::StatusOr<v1::ModelConfig> config = ReadConfigIn(*dir);
  if (!config.ok()) return config.status();

  auto loaded = std::make_shared<LoadedModel>();
  loaded->name = name;
  loaded->config = *config;

  const fs::path json = fs::path(*dir) / "tokenizer.json";
  const fs::path vocab = fs::path(*dir) / "vocab.txt";
  std::error_code ec;
  absl::StatusOr<std::unique_ptr<tokenizer::BertTokenizer>> tok;
  if (fs::exists(json, ec)) {
    tok = tokenizer::BertTokenizer::FromTokenizerJson(json.string());
  } else if (fs::exists(vocab, ec)) {
    tok = tokenizer::BertTokenizer::FromVocabFile(vocab.string(),
                                                  NormalizerFromConfig(config->tokenizer()));
  } else {
    return absl::FailedPreconditionError(
        absl::StrCat(*dir, ": no vocab.txt or tokenizer.json"));
  }
  if (!tok.ok()) return tok.status();
  loaded->tokenizer = *std::move(tok);

  ModelSource source{name, *dir, (fs::path(*dir) / config->model_file()).string(), *config};
  absl::StatusOr<std::unique_ptr<Model>> model = loader_->Load(source);
  if (!model.ok()) return model.status();
  loaded->model = *std::move(model);

  const int num_labels = loaded->model->num_labels();
  if (config->labels_size() > 0 && config->labels_size() != num_labels) {
    return absl::InvalidArgumentError(absl::StrCat(
        (fs::path(*dir) / kConfigFile).string(), ": field labels: has ",
        config->labels_size(), " names but ", config->model_file(), " produces ",
        num_labels, " logits"));
  }
  for (int i = 0; i < num_labels; ++i) {
    loaded->labels.push_back(config->labels_size() > 0 ? config->labels(i)
                                                       : absl::StrCat("LABEL_", i));
  }
  return loaded;
}

}  // namespace bertserve::core
