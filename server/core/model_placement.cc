// The placement side of ModelRegistry: everything here runs on the single
// placement worker, so placements never overlap; the registry lock is held
// only to read and publish state, never across a copy or a forward.

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/core/byte_size.h"
#include "server/core/model_config.h"
#include "server/core/model_registry.h"

namespace bertserve::core {

namespace fs = std::filesystem;

absl::StatusOr<v1::ModelConfig> ReadConfigIn(const ModelRepository& repository,
                                             const std::string& directory,
                                             ServerDevices devices);  // model_registry.cc

namespace {

tokenizer::NormalizerOptions NormalizerFromConfig(const v1::TokenizerOptions& t) {
  tokenizer::NormalizerOptions options;
  if (t.has_lowercase()) options.lowercase = t.lowercase();
  if (t.has_strip_accents()) options.strip_accents = t.strip_accents();
  if (t.has_handle_chinese_chars()) options.handle_chinese_chars = t.handle_chinese_chars();
  if (t.has_clean_text()) options.clean_text = t.clean_text();
  return options;
}

double SecondsSince(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

FileStamp StampOf(const std::string& path) {
  FileStamp stamp;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return stamp;
  stamp.exists = true;
  stamp.device = static_cast<uint64_t>(st.st_dev);
  stamp.inode = static_cast<uint64_t>(st.st_ino);
  stamp.size = static_cast<int64_t>(st.st_size);
  stamp.changed_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return stamp;
}

// The length of warm-up's rows: full-length inputs.
int64_t WarmUpColumns(const v1::ModelConfig& config) {
  return std::min<int64_t>(config.max_sequence_length(), config.batch().max_batch_tokens());
}

// The token limit warm-up tries first: as many full-length rows as the
// configured limit holds.
int64_t FullWarmUpTokens(const v1::ModelConfig& config) {
  const int64_t columns = WarmUpColumns(config);
  return std::max<int64_t>(1, config.batch().max_batch_tokens() / columns) * columns;
}

}  // namespace

absl::StatusOr<std::shared_ptr<LoadedModel>> ModelRegistry::Build(const std::string& name) {
  absl::StatusOr<std::string> dir = repository_.ModelDirectory(name);
  if (!dir.ok()) return dir.status();
  // Re-read the config so edits on disk take effect on the next load.
  absl::StatusOr<v1::ModelConfig> config = ReadConfigIn(repository_, *dir, server_devices());
  if (!config.ok()) return config.status();

  auto loaded = std::make_shared<LoadedModel>();
  loaded->name = name;
  loaded->config = *config;
  // Every file through the repository: confined to it, and "permission
  // denied" told as such rather than as a missing file.
  absl::StatusOr<std::optional<std::string>> json = repository_.FileIn(*dir, "tokenizer.json");
  if (!json.ok()) return json.status();
  absl::StatusOr<std::optional<std::string>> vocab = repository_.FileIn(*dir, "vocab.txt");
  if (!vocab.ok()) return vocab.status();
  absl::StatusOr<std::unique_ptr<tokenizer::BertTokenizer>> tok;
  if (json->has_value()) {
    tok = tokenizer::BertTokenizer::FromTokenizerJson(**json);
  } else if (vocab->has_value()) {
    tok = tokenizer::BertTokenizer::FromVocabFile(**vocab,
                                                  NormalizerFromConfig(config->tokenizer()));
  } else {
    return absl::FailedPreconditionError(absl::StrCat(*dir, ": no vocab.txt or tokenizer.json"));
  }
  if (!tok.ok()) return tok.status();
  loaded->tokenizer = *std::move(tok);

  absl::StatusOr<std::optional<std::string>> model_file =
      repository_.FileIn(*dir, config->model_file());
  if (!model_file.ok()) return model_file.status();
  // A missing file is the loader's to report, as it always was.
  ModelSource source{name, *dir,
                     model_file->value_or((fs::path(*dir) / config->model_file()).string()),
                     *config};
  loaded->model_file = StampOf(source.model_path);
  absl::StatusOr<std::unique_ptr<Model>> model = loader_->Load(source);
  if (!model.ok()) return model.status();
  loaded->model = *std::move(model);
  loaded->source = std::move(source);
  return loaded;
}

absl::StatusOr<std::shared_ptr<LoadedModel>> ModelRegistry::BuildReplica(const std::string& name) {
  // What the copy needs of the primary, copied: a reference to the primary
  // itself would keep its device memory alive through an Unload that runs
  // while this read does.
  auto replica = std::make_shared<LoadedModel>();
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end() || it->second.info.state != ModelState::kReady ||
        it->second.loaded == nullptr) {
      return absl::AbortedError(absl::StrCat("model \"", name, "\" is no longer READY"));
    }
    const LoadedModel& primary = *it->second.loaded;
    replica->name = name;
    replica->config = primary.config;
    replica->source = primary.source;
    replica->model_file = primary.model_file;
    replica->tokenizer = primary.tokenizer;
    replica->generation = it->second.info.loads;
  }
  const ModelSource& source = replica->source;
  auto changed = [&](absl::string_view when) {
    return absl::FailedPreconditionError(absl::StrCat(
        source.model_path, " changed on disk ", when,
        ": a replica would run other weights than the copy serving; no replica of \"", name,
        "\" until it is loaded again (Unload, then Load)"));
  };
  if (StampOf(source.model_path) != replica->model_file) return changed("since it was read");
  absl::StatusOr<std::unique_ptr<Model>> model = loader_->Load(source);
  if (!model.ok()) return model.status();
  if (StampOf(source.model_path) != replica->model_file) return changed("while it was read");
  replica->model = *std::move(model);
  return replica;
}

namespace {

// Reads at once that hold the others back, and how long before one that has
// not finished stops doing so. Ten seconds covers a BERT-large read from a
// local disk several times over.
constexpr int kParallelReads = 1;
constexpr absl::Duration kReadStall = absl::Seconds(10);

}  // namespace

void ModelRegistry::TakeReadSlot(const std::string& name) {
  absl::MutexLock lock(&mu_);
  while (true) {
    const absl::Time now = absl::Now();
    int fresh = 0;
    absl::Time next_stall = absl::InfiniteFuture();
    for (const auto& [other, started] : reads_started_) {
      if (now - started >= kReadStall) continue;
      ++fresh;
      next_stall = std::min(next_stall, started + kReadStall);
    }
    if (fresh < kParallelReads) break;
    struct Seen {
      ModelRegistry* registry;
      int64_t releases;
    } seen{this, read_releases_};
    mu_.AwaitWithDeadline(absl::Condition(
                              +[](Seen* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->registry->mu_) {
                                return s->registry->read_releases_ != s->releases;
                              },
                              &seen),
                          next_stall);
  }
  reads_started_[name] = absl::Now();
}

void ModelRegistry::GiveBackReadSlot(const std::string& name) {
  absl::MutexLock lock(&mu_);
  reads_started_.erase(name);
  ++read_releases_;
}

absl::Status ModelRegistry::DoLoadToHost(const std::string& name) {
  {
    // Runs on a read thread of its own. Another read may have finished since
    // the caller looked (reads of one model never overlap: they share a key).
    absl::MutexLock lock(&mu_);
    const ModelState state = models_[name].info.state;
    if (state != ModelState::kUnloaded && state != ModelState::kFailed) return absl::OkStatus();
  }
  Transition(name, ModelState::kLoading);
  TakeReadSlot(name);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::shared_ptr<LoadedModel>> built = Build(name);
  GiveBackReadSlot(name);
  if (!built.ok()) {
    const std::string reason(built.status().message());
    Transition(name, ModelState::kFailed, reason);
    Notify({name, PlacementKind::kLoad, false, SecondsSince(start), 0, reason});
    if (absl::IsResourceExhausted(built.status())) return built.status();
    // Its directory was removed since the server listed it: no such model
    // now, as for a name never seen (a missing file in a directory that is
    // still there is a broken model, below).
    if (absl::IsNotFound(built.status()) &&
        absl::IsNotFound(repository_.ModelDirectory(name).status())) {
      return built.status();
    }
    return absl::FailedPreconditionError(
        absl::StrCat("model \"", name, "\" failed to load: ", reason));
  }
  std::shared_ptr<LoadedModel> loaded = *std::move(built);
  const Model& model = *loaded->model;
  const bool budgeted = devices_[0]->device->has_budget() && model.tier() == WeightTier::kHost;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    entry.loaded = loaded;
    entry.budgeted = budgeted;
    // A new read is a new primary (perhaps of a new file): its replicas need
    // not wait out a refusal that concerned the last one.
    entry.last_replica_try = absl::InfinitePast();
    ModelInfo& info = entry.info;
    info.config = loaded->config;
    info.device = model.device();
    info.weight_bytes = model.weight_bytes();
    info.inputs = model.input_names();
    info.host_bytes = budgeted ? model.weight_bytes() : 0;
    info.device_bytes = budgeted ? 0 : model.weight_bytes();
    // Until warm-up measures it, the activation reserve is estimated as the
    // weights' size: BERT-class models at their default token budget peak
    // below that (bert-base: ~0.4 GB of activations at 8192 tokens against
    // 0.44 GB of weights). The measurement replaces it.
    if (!info.reserve_measured) info.activation_reserve = model.weight_bytes();
    info.last_error.clear();
    info.loads++;
    entry.fresh_from_disk = true;
    entry.read_seconds = SecondsSince(start);
  }
  Transition(name, ModelState::kHost);
  return absl::OkStatus();
}

absl::Status ModelRegistry::DoPlace(const std::string& name, int lane) {
  const absl::Time start = absl::Now();
  // A lane's placement is pending until it ends, whichever way.
  absl::Cleanup settled = [this, name, lane] {
    if (lane < 0) return;
    absl::MutexLock lock(&mu_);
    models_[name].pending_device = -1;
  };
  absl::StatusOr<ModelInfo> before = Snapshot(name);
  if (!before.ok()) return before.status();
  if (before->state == ModelState::kReady) {
    // A copy on a lost device is about to be dropped (that job is queued
    // ahead of this one): place it again once it has been.
    absl::MutexLock lock(&mu_);
    const Entry& entry = models_[name];
    if (entry.device >= 0 && lost_[entry.device]) {
      return absl::AbortedError(absl::StrCat("model \"", name, "\" is on a lost device"));
    }
    return absl::OkStatus();
  }
  // Reading from disk happens before, off this worker (PlaceAsync).
  if (before->state != ModelState::kHost) {
    return absl::AbortedError(absl::StrCat("model \"", name, "\" is not in host memory (it is ",
                                           ModelStateName(before->state), ")"));
  }
  std::shared_ptr<LoadedModel> loaded;
  bool budgeted, cold;
  int64_t weights, reserve;
  double read_seconds;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    loaded = entry.loaded;
    budgeted = entry.budgeted;
    weights = entry.info.weight_bytes;
    reserve = entry.info.activation_reserve;
    cold = entry.fresh_from_disk;
    read_seconds = entry.read_seconds;
  }
  const PlacementKind kind = cold ? PlacementKind::kLoad : PlacementKind::kSwapIn;
  Choice choice;
  auto event = [&](bool ok, double seconds, absl::string_view error) {
    PlacementEvent e{name, kind, ok, seconds, weights, std::string(error)};
    if (budgeted) {
      e.device = devices_[choice.device]->device->name();
      e.reason = std::string(FitName(choice.fit));
    }
    return e;
  };
  // Leaving PLACING for HOST or FAILED takes the model out of the device's
  // budget (SetState).
  auto fail_back_to_host = [&](const absl::Status& status) {
    Transition(name, ModelState::kHost);
    Notify(event(false, SecondsSince(start), status.message()));
    EnforceHostBudget();
    // The device was lost under it: placed again elsewhere (PlaceAsync
    // retries an abort), not failed.
    if (budgeted) {
      absl::MutexLock lock(&mu_);
      if (lost_[choice.device]) {
        return absl::AbortedError(absl::StrCat("device ", devices_[choice.device]->device->name(),
                                               " was lost: ", status.message()));
      }
    }
    return status;
  };

  if (budgeted) {
    absl::StatusOr<Choice> chosen;
    {
      absl::MutexLock lock(&mu_);
      if (lane < 0) {
        chosen = ChooseDevice(name, weights, reserve);
      } else if (lost_[lane]) {
        // Lost since it was chosen: choose again (PlaceAsync retries).
        return absl::AbortedError(
            absl::StrCat("device ", devices_[lane]->device->name(), " was lost"));
      } else {
        chosen = Choice{lane, static_cast<Fit>(models_[name].pending_fit)};
      }
    }
    absl::Status room = chosen.status();
    if (chosen.ok()) {
      choice = *chosen;
      room = MakeRoom(name, choice.device, weights, reserve);
    }
    if (!room.ok()) {
      Notify(event(false, SecondsSince(start), room.message()));
      EnforceHostBudget();
      return room;
    }
  } else {
    absl::Status pins;
    {
      absl::MutexLock lock(&mu_);
      pins = CheckPins(name);
    }
    if (!pins.ok()) {
      // A config that can never be placed: a broken model, whose weights
      // need not stay in memory (on GPUs the pin is refused before a read).
      Transition(name, ModelState::kFailed, std::string(pins.message()));
      Notify(event(false, SecondsSince(start), pins.message()));
      return pins;
    }
  }
  // Checked again in the same step as the change: the model must still be
  // in host memory (nothing else drops it while this worker places, but the
  // state machine should not rest on that).
  if (!TransitionFrom(name, ModelState::kHost, ModelState::kPlacing)) {
    return absl::AbortedError(
        absl::StrCat("model \"", name, "\" left host memory before its placement"));
  }
  if (budgeted) {
    DeviceSlot& slot = *devices_[choice.device];
    {
      absl::MutexLock lock(&mu_);
      budgets_[choice.device].Admit(name, weights, reserve);
      models_[name].device = choice.device;
    }
    loaded->execution_mu = &slot.execution_mu;
    if (absl::Status s = loaded->model->MoveToDevice(choice.device); !s.ok()) {
      return fail_back_to_host(s);
    }
    absl::MutexLock lock(&mu_);
    ModelInfo& info = models_[name].info;
    info.host_bytes = 0;
    info.device_bytes = weights;
    info.device = slot.device->name();
  }
  if (absl::Status s = WarmUp(name, *loaded); !s.ok()) {
    if (absl::IsResourceExhausted(s)) {
      if (budgeted) (void)loaded->model->MoveToHost();
      return fail_back_to_host(s);
    }
    // The model runs but is wrong for its config (say, a label count that
    // does not match): that is a broken model, not a lack of memory.
    Transition(name, ModelState::kFailed, std::string(s.message()));
    Notify(event(false, SecondsSince(start), s.message()));
    return absl::FailedPreconditionError(
        absl::StrCat("model \"", name, "\" failed to load: ", s.message()));
  }
  // A load's time is disk to device: the read's share too.
  const double seconds = SecondsSince(start) + (cold ? read_seconds : 0);
  {
    absl::MutexLock lock(&mu_);
    models_[name].fresh_from_disk = false;
    ModelInfo& info = models_[name].info;
    if (kind == PlacementKind::kSwapIn) {
      info.swap_ins++;
      info.last_swap_in_seconds = seconds;
    } else {
      info.last_load_seconds = seconds;
    }
    if (budgeted) {
      (choice.fit == Fit::kFree    ? info.placed_free
       : choice.fit == Fit::kEvict ? info.placed_evict
                                   : info.placed_wait)++;
    }
  }
  Transition(name, ModelState::kReady);
  Notify(event(true, seconds, ""));
  EnforceHostBudget();
  return absl::OkStatus();
}

absl::string_view ModelRegistry::FitName(Fit fit) {
  switch (fit) {
    case Fit::kFree: return "free";
    case Fit::kEvict: return "evict";
    case Fit::kWait: return "wait";
  }
  return "unknown";
}

int64_t ModelRegistry::PhysicallyFree(int device) const {
  // Other processes count: the device must have the bytes, not only the
  // budget. Allocator cache (reserved, not allocated) is reusable.
  const DeviceMemory memory = devices_[device]->device->Memory();
  return memory.free_bytes + std::max<int64_t>(0, memory.reserved_bytes - memory.allocated_bytes);
}

absl::Status ModelRegistry::CheckPins(const std::string& name) const {
  const int count = static_cast<int>(devices_.size());
  for (int pin : models_.at(name).info.config.devices()) {
    if (pin >= count) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model \"", name, "\" is pinned to device ", pin, " (config.pbtxt devices) but the ",
          "server has ", count, count == 1 ? " device" : " devices", " (--device)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelRegistry::Choice> ModelRegistry::ChooseDevice(const std::string& name,
                                                                  int64_t weights,
                                                                  int64_t reserve,
                                                                  bool replica) {
  const int count = static_cast<int>(devices_.size());
  const Entry& self = models_[name];
  const v1::ModelConfig& config = self.info.config;
  // A replica goes where the model has no copy yet.
  auto has_copy = [&](int d) {
    if (self.device == d) return true;
    for (const Entry::Replica& r : self.replicas) {
      if (r.device == d) return true;
    }
    return false;
  };
  if (absl::Status pins = CheckPins(name); !pins.ok()) return pins;
  std::vector<int> candidates;
  for (int pin : config.devices()) {
    if (std::find(candidates.begin(), candidates.end(), pin) == candidates.end()) {
      candidates.push_back(pin);
    }
  }
  if (candidates.empty()) {
    for (int d = 0; d < count; ++d) candidates.push_back(d);
  }
  std::sort(candidates.begin(), candidates.end());
  const int64_t alone = DeviceBudget::CostAlone(weights, reserve);

  bool any_alive = false;
  std::optional<std::pair<std::pair<Fit, int64_t>, int>> best;  // ((fit, cost), device)
  for (int d : candidates) {
    if (lost_[d] || (replica && has_copy(d))) continue;
    any_alive = true;
    // Placements already chosen for d and not yet admitted count as there.
    DeviceBudget budget = budgets_[d];
    for (const auto& [other, entry] : models_) {
      if (other != name && entry.pending_device == d && entry.device != d) {
        budget.Admit(other, entry.info.weight_bytes, entry.info.activation_reserve);
      }
    }
    if (alone > budget.budget()) continue;
    const int64_t free = PhysicallyFree(d);
    // Fits with the models of `trial` resident, given what leaving them frees.
    auto fits = [&](const DeviceBudget& trial) {
      const int64_t cost = trial.CostWith(weights, reserve);
      const int64_t freed = budget.ResidentCost() - trial.ResidentCost();
      return cost <= budget.budget() && cost - trial.ResidentCost() <= free + freed;
    };
    std::pair<Fit, int64_t> cost;
    if (fits(budget)) {
      cost = {Fit::kFree, -(budget.budget() - budget.CostWith(weights, reserve))};
    } else {
      // Idle replicas on d first (they go before anything else), then
      // idle, unpinned models without replicas, least recently used first;
      // and the models requests hold now (they close and take turns).
      std::vector<std::pair<absl::Time, std::string>> idle;
      DeviceBudget trial = budget;
      int64_t held = 0;
      for (const auto& [other, entry] : models_) {
        if (other == name) continue;
        for (const Entry::Replica& r : entry.replicas) {
          if (r.device != d) continue;
          if (r.in_use == 0) {
            idle.emplace_back(absl::InfinitePast(), other);
          } else {
            held += entry.info.weight_bytes;
          }
        }
        if (entry.device != d) continue;
        const bool evictable = entry.info.state == ModelState::kReady &&
                               !entry.info.config.pinned() && !entry.unloading &&
                               entry.replicas.empty();
        if (evictable && entry.info.in_use == 0) {
          idle.emplace_back(entry.info.last_used, other);
        } else if (evictable) {
          held += entry.info.weight_bytes;
        }
      }
      std::sort(idle.begin(), idle.end());
      int64_t evicted = 0;
      for (const auto& [used, other] : idle) {
        if (fits(trial)) break;
        trial.Release(other);
        evicted += models_[other].info.weight_bytes;
      }
      if (fits(trial)) {
        cost = {Fit::kEvict, evicted};
      } else if (replica) {
        continue;  // a replica never waits for models in use
      } else {
        // Not even with every idle model gone: only if the held ones leave.
        // A device where even that cannot free enough is still a candidate
        // (MakeRoom says why it failed), ranked last.
        cost = {Fit::kWait, held > 0 ? held : std::numeric_limits<int64_t>::max()};
      }
    }
    if (!best || cost < best->first) best = std::make_pair(cost, d);
  }
  if (best) return Choice{best->second, best->first.first};
  if (replica) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no device can take a replica of model \"", name, "\" without evicting a model in use"));
  }
  if (!any_alive) {
    return absl::UnavailableError(absl::StrCat(
        "model \"", name, "\" has no device left: ",
        config.devices_size() > 0 ? "every device it is pinned to" : "every device",
        " failed (the server needs a restart)"));
  }
  if (candidates.size() == 1) {
    const int d = candidates.front();
    return absl::ResourceExhaustedError(absl::StrCat(
        "model \"", name, "\" needs ", alone, " bytes (", FormatBytes(alone), ": weights ",
        weights, " + activation reserve ", reserve, ") but the VRAM budget of ",
        devices_[d]->device->name(), " can give at most ", budgets_[d].budget(), " bytes (",
        FormatBytes(budgets_[d].budget()), ") even with every other model evicted"));
  }
  std::string budgets;
  for (int d : candidates) {
    absl::StrAppend(&budgets, budgets.empty() ? "" : ", ", devices_[d]->device->name(),
                    lost_[d] ? " (lost)" : "", " budget ", budgets_[d].budget(), " bytes (",
                    FormatBytes(budgets_[d].budget()), ")");
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "model \"", name, "\" needs ", alone, " bytes (", FormatBytes(alone), ": weights ", weights,
      " + activation reserve ", reserve, ") but no device", config.devices_size() > 0 ? " it is pinned to" : "",
      " can give that much even with every other model evicted: ", budgets));
}

absl::Status ModelRegistry::DoPlaceReplica(const std::string& name,
                                           std::shared_ptr<LoadedModel> built) {
  const absl::Time start = absl::Now();
  Choice choice;
  int64_t weights = 0, reserve = 0;
  PlacementEvent failed;  // ok unless no device can take it
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    // The primary may have gone meanwhile, or been placed anew.
    if (entry.info.state != ModelState::kReady || entry.loaded == nullptr ||
        1 + static_cast<int>(entry.replicas.size()) >= entry.info.config.max_replicas()) {
      return absl::OkStatus();
    }
    weights = entry.info.weight_bytes;
    reserve = entry.info.activation_reserve;
    absl::StatusOr<Choice> chosen = ChooseDevice(name, weights, reserve, /*replica=*/true);
    if (!chosen.ok()) {
      failed = PlacementEvent(name, PlacementKind::kReplicate, false, SecondsSince(start),
                              weights, std::string(chosen.status().message()));
    } else {
      choice = *chosen;
    }
  }
  if (!failed.ok) {
    Notify(failed);
    return absl::ResourceExhaustedError(failed.error);
  }
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    // The primary may have been loaded again meanwhile (its file or its
    // config changed, say): this copy was read for the one before.
    if (entry.loaded == nullptr || entry.info.loads != built->generation) {
      failed = PlacementEvent(name, PlacementKind::kReplicate, false, SecondsSince(start), weights,
                              absl::StrCat("model \"", name,
                                           "\" was loaded again while a replica was read"));
    } else {
      // What warm-up proved for the primary holds for a copy of the same
      // load (whose config and tokenizer BuildReplica took): the replica
      // starts with its labels and its token limit as they are now.
      built->labels = entry.loaded->labels;
      built->token_limit = entry.loaded->token_limit;
    }
  }
  if (!failed.ok) {
    Notify(failed);
    return absl::FailedPreconditionError(failed.error);
  }
  if (absl::Status s = MakeRoom(name, choice.device, weights, reserve); !s.ok()) return s;
  DeviceSlot& slot = *devices_[choice.device];
  {
    absl::MutexLock lock(&mu_);
    budgets_[choice.device].Admit(name, weights, reserve);
  }
  built->execution_mu = &slot.execution_mu;
  absl::Status moved = built->model->MoveToDevice(choice.device);
  PlacementEvent event(name, PlacementKind::kReplicate, moved.ok(), SecondsSince(start), weights,
                       std::string(moved.message()), slot.device->name(),
                       std::string(FitName(choice.fit)));
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    if (!moved.ok() || entry.info.state != ModelState::kReady) {
      budgets_[choice.device].Release(name);
    } else {
      Entry::Replica replica;
      replica.id = entry.next_replica_id++;
      replica.device = choice.device;
      built->replica = replica.id;
      replica.loaded = built;
      entry.replicas.push_back(std::move(replica));
      replicas_placed_.fetch_add(1);
    }
  }
  Notify(event);
  Publish(name);  // the copies changed
  return moved;
}

absl::Status ModelRegistry::MakeRoom(const std::string& name, int device, int64_t weights,
                                     int64_t reserve) {
  Device* const dev = devices_[device]->device;
  int64_t budget = 0;
  {
    absl::MutexLock lock(&mu_);
    budget = budgets_[device].budget();
  }
  const int64_t alone = DeviceBudget::CostAlone(weights, reserve);
  if (alone > budget) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "model \"", name, "\" needs ", alone, " bytes (", FormatBytes(alone), ": weights ",
        weights, " + activation reserve ", reserve, ") but the VRAM budget of ",
        dev->name(), " can give at most ", budget, " bytes (", FormatBytes(budget),
        ") even with every other model evicted"));
  }
  const absl::Time hold_deadline = absl::Now() + options_.hold_wait;
  // Turns: a model that only requests' holds keep on the device gets no new
  // holds while this placement waits for it (Entry::closing), so the
  // requests it already took finish and it can go; requests arriving for it
  // meanwhile wait for its next turn, queued behind this placement. Without
  // this, two models that cannot share the device keep each other out: each
  // new request renews the other's holds (starving this placement until
  // hold_wait) or takes a model back before its waiters got it. Whatever
  // this placement closed and did not evict opens again when it returns.
  std::vector<std::string> closed;
  // Replicas dropped for room: their device memory is freed, and their
  // events told, outside the lock.
  std::vector<std::shared_ptr<LoadedModel>> dropped_copies;
  std::vector<PlacementEvent> dropped_events;
  absl::Cleanup reopen = [this, &closed] {
    absl::MutexLock lock(&mu_);
    for (const std::string& other : closed) models_[other].closing = false;
  };
  while (true) {
    dropped_copies.clear();
    for (const PlacementEvent& event : dropped_events) {
      Notify(event);
      Publish(event.model);
    }
    dropped_events.clear();
    std::string victim;
    int64_t cost_with = 0, held = 0;
    {
      absl::MutexLock lock(&mu_);
      const DeviceBudget& resident = budgets_[device];
      cost_with = resident.CostWith(weights, reserve);
      // What stays however much is evicted: models in use or pinned.
      DeviceBudget fixed(budget);
      absl::Time oldest = absl::InfiniteFuture();
      // An idle replica here is dropped first; held ones stay.
      std::string idle_replica;
      for (auto& [other, entry] : models_) {
        for (const Entry::Replica& r : entry.replicas) {
          if (r.device != device || other == name) continue;
          if (r.in_use == 0) {
            idle_replica = other;
          } else {
            fixed.Admit(other, entry.info.weight_bytes, entry.info.activation_reserve);
          }
        }
        if (other == name || entry.device != device) continue;
        const bool evictable = entry.info.state == ModelState::kReady && entry.info.in_use == 0 &&
                               !entry.info.config.pinned() && !entry.unloading &&
                               entry.replicas.empty();
        if (!evictable) {
          fixed.Admit(other, entry.info.weight_bytes, entry.info.activation_reserve);
        } else if (entry.info.last_used < oldest || victim.empty()) {
          oldest = entry.info.last_used;
          victim = other;
        }
      }
      held = fixed.ResidentCost();
      // Models only a request's hold keeps on the device: worth waiting for
      // (batches finish in milliseconds), for a bounded time.
      std::vector<std::string> held_names;
      for (auto& [other, entry] : models_) {
        if (other != name && entry.device == device && entry.info.state == ModelState::kReady &&
            entry.info.in_use > 0 && !entry.info.config.pinned()) {
          held_names.push_back(other);
        }
      }
      const int64_t physically_free = PhysicallyFree(device);
      const int64_t increment = cost_with - resident.ResidentCost();
      if (cost_with <= budget && increment <= physically_free) return absl::OkStatus();
      if (!idle_replica.empty()) {
        // Never offloaded: dropping it frees its device copy.
        Entry& owner = models_[idle_replica];
        for (size_t i = owner.replicas.size(); i-- > 0;) {
          if (owner.replicas[i].device == device && owner.replicas[i].in_use == 0) {
            dropped_events.push_back(DropReplica(owner, i, &dropped_copies));
            break;
          }
        }
        continue;  // the memory is freed and the event told at the loop's top
      }
      if (victim.empty() && !held_names.empty() && absl::Now() < hold_deadline) {
        for (const std::string& other : held_names) {
          Entry& held_entry = models_[other];
          if (!held_entry.closing) {
            held_entry.closing = true;
            closed.push_back(other);
          }
        }
        std::pair<ModelRegistry*, std::vector<std::string>*> waiting{this, &held_names};
        mu_.AwaitWithDeadline(
            absl::Condition(
                +[](std::pair<ModelRegistry*, std::vector<std::string>*>* arg)
                    ABSL_NO_THREAD_SAFETY_ANALYSIS {
                      for (const std::string& n : *arg->second) {
                        if (arg->first->models_[n].info.in_use == 0) return true;
                      }
                      return false;
                    },
                &waiting),
            hold_deadline);
        continue;
      }
      if (victim.empty()) {
        if (cost_with > budget) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "model \"", name, "\" needs ", alone, " bytes (", FormatBytes(alone),
              ") but only ", std::max<int64_t>(0, budget - held), " of the ", budget,
              "-byte VRAM budget can be freed: the rest is held by models in use or pinned"));
        }
        return absl::ResourceExhaustedError(absl::StrCat(
            "model \"", name, "\" needs ", increment, " more bytes but ",
            dev->name(), " reports only ", physically_free,
            " free (other processes use the device too)"));
      }
      // Claimed under the lock: no request can take a handle from now on.
      ClaimForEviction(victim);
    }
    if (absl::Status s = Evict(victim); !s.ok()) return s;
  }
}

absl::Status ModelRegistry::Evict(const std::string& name) {
  const absl::Time start = absl::Now();
  std::shared_ptr<LoadedModel> loaded;
  int64_t weights = 0;
  std::string device;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    loaded = entry.loaded;
    weights = entry.info.weight_bytes;
    if (entry.device >= 0) device = devices_[entry.device]->device->name();
  }
  // Listeners learn of EVICTING now; the state was set under the lock.
  {
    ModelInfo snapshot = *Snapshot(name);
    std::vector<StateListener> listeners;
    {
      absl::MutexLock lock(&mu_);
      listeners = state_listeners_;
    }
    for (const StateListener& listener : listeners) listener(snapshot);
  }
  absl::Status moved = loaded->model->MoveToHost();
  {
    // Leaving EVICTING (for HOST or FAILED) releases its budget (SetState).
    absl::MutexLock lock(&mu_);
    ModelInfo& info = models_[name].info;
    if (moved.ok()) {
      info.device_bytes = 0;
      info.host_bytes = weights;
      info.evictions++;
    }
  }
  if (!moved.ok()) {
    Transition(name, ModelState::kFailed,
               absl::StrCat("eviction to host memory failed: ", moved.message()));
    PlacementEvent event{name, PlacementKind::kEvict, false, SecondsSince(start), weights,
                         std::string(moved.message())};
    event.device = device;
    Notify(event);
    return absl::OkStatus();  // the device bytes are gone either way
  }
  Transition(name, ModelState::kHost);
  PlacementEvent event{name, PlacementKind::kEvict, true, SecondsSince(start), weights, ""};
  event.device = device;
  Notify(event);
  return absl::OkStatus();
}

absl::Status ModelRegistry::WarmUp(const std::string& name, LoadedModel& loaded) {
  const v1::ModelConfig& config = loaded.config;
  Device* device = devices_[0]->device;
  {
    absl::MutexLock lock(&mu_);
    const int index = models_[name].device;
    if (index >= 0) device = devices_[index]->device;
  }
  // The device's free memory with this model's weights in place: what the
  // warm-up forward has to work in.
  const int64_t free_now = device->Memory().free_bytes;
  int known_labels = 0;
  bool remeasure = false;
  {
    absl::MutexLock lock(&mu_);
    const Entry& entry = models_[name];
    const ModelInfo& info = entry.info;
    if (info.reserve_measured && info.num_labels > 0) known_labels = info.num_labels;
    // A limit lowered under pressure (another process held memory, say) is
    // measured again once more memory is free than when it was lowered, so
    // a squeeze does not cap the model for the life of the process. A model
    // whose full limit never fits is not retried on every swap-in.
    remeasure = info.batch_token_limit < FullWarmUpTokens(config) &&
                free_now > entry.free_when_lowered;
  }
  if (known_labels > 0 && !remeasure) {
    // Measured before (a swap-in, or a reload of the same files): the labels
    // are known and the reserve stands.
    {
      absl::MutexLock lock(&mu_);
      loaded.token_limit = models_[name].info.batch_token_limit;
    }
    if (loaded.labels.empty()) {
      for (int i = 0; i < known_labels; ++i) {
        loaded.labels.push_back(config.labels_size() > 0 ? config.labels(i)
                                                         : absl::StrCat("LABEL_", i));
      }
    }
    return absl::OkStatus();
  }
  // A forward at the batch token limit: as many full-length rows as fit.
  // Out of memory there lowers the limit (halving the rows, down to one
  // full-length row) until a forward fits; that proven limit is what
  // batches use.
  const int64_t columns = WarmUpColumns(config);
  int64_t rows = FullWarmUpTokens(config) / columns;
  absl::StatusOr<Logits> logits;
  int64_t peak = 0;
  while (true) {
    InputBatch batch;
    batch.batch_size = rows;
    batch.sequence_length = columns;
    const size_t cells = batch.batch_size * batch.sequence_length;
    batch.input_ids.assign(cells, loaded.tokenizer->pad_id());
    batch.attention_mask.assign(cells, 1);
    batch.token_type_ids.assign(cells, 0);
    {
      // Exclusive use of the device, so the peak is this forward's alone.
      absl::MutexLock exclusive(loaded.execution_mu != nullptr ? loaded.execution_mu
                                                               : &execution_mu_);
      const int64_t base = device->Memory().allocated_bytes;
      device->ResetPeak();
      logits = loaded.model->Forward(batch);
      peak = std::max<int64_t>(0, device->Memory().peak_bytes - base);
    }
    // Never below one full-length row: a batch always runs its oldest input,
    // whatever the limit, so the reserve must cover the longest one.
    if (logits.ok() || !absl::IsResourceExhausted(logits.status()) || rows == 1) break;
    rows /= 2;
  }
  if (!logits.ok()) {
    return absl::Status(logits.status().code(),
                        absl::StrCat("warm-up forward at ", rows * columns, " tokens failed: ",
                                     logits.status().message()));
  }
  loaded.token_limit = rows * columns;

  const int num_labels = static_cast<int>(logits->cols);
  if (num_labels < 1) return absl::InvalidArgumentError("the model produced no logits");
  if (config.labels_size() > 0 && config.labels_size() != num_labels) {
    return absl::InvalidArgumentError(absl::StrCat(
        (fs::path(loaded.source.directory) / "config.pbtxt").string(), ": field labels: has ",
        config.labels_size(), " names but ", loaded.source.model_path, " produces ", num_labels,
        " logits"));
  }
  loaded.labels.clear();
  for (int i = 0; i < num_labels; ++i) {
    loaded.labels.push_back(config.labels_size() > 0 ? config.labels(i)
                                                     : absl::StrCat("LABEL_", i));
  }
  absl::MutexLock lock(&mu_);
  Entry& entry = models_[name];
  entry.info.num_labels = num_labels;
  entry.info.labels = loaded.labels;
  entry.info.batch_token_limit = loaded.token_limit;
  entry.free_when_lowered = loaded.token_limit < FullWarmUpTokens(config) ? free_now : -1;
  if (entry.budgeted) {
    entry.info.activation_reserve = peak;
    entry.info.reserve_measured = true;
    if (entry.device >= 0) budgets_[entry.device].SetReserve(name, peak);
  }
  return absl::OkStatus();
}

void ModelRegistry::EnforceHostBudget() {
  while (true) {
    std::string victim;
    int64_t bytes = 0;
    ModelInfo snapshot;
    std::vector<StateListener> listeners;
    {
      absl::MutexLock lock(&mu_);
      int64_t total = 0;
      absl::Time oldest = absl::InfiniteFuture();
      for (auto& [name, entry] : models_) {
        total += entry.info.host_bytes;
        if (entry.info.state != ModelState::kHost || entry.pending_device >= 0) continue;
        if (victim.empty() || entry.info.last_used < oldest) {
          oldest = entry.info.last_used;
          victim = name;
        }
      }
      if (total <= options_.host_budget || victim.empty()) return;
      // The host copy is dropped, in the same step as the choice; the model
      // reloads from disk on its next use.
      Entry& entry = models_[victim];
      bytes = entry.info.host_bytes;
      entry.info.unloads++;
      SetState(entry, ModelState::kUnloaded);
      snapshot = InfoOf(entry);
      listeners = state_listeners_;
    }
    for (const StateListener& listener : listeners) listener(snapshot);
    Notify({victim, PlacementKind::kUnload, true, 0, bytes, ""});
  }
}

absl::Status ModelRegistry::DoUnload(const std::string& name) {
  const absl::Time start = absl::Now();
  int64_t bytes = 0;
  Device* device = nullptr;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    switch (entry.info.state) {
      case ModelState::kUnloaded:
        return absl::OkStatus();
      case ModelState::kReady:
      case ModelState::kHost:
      case ModelState::kFailed:
        break;
      case ModelState::kLoading:  // a read started after UnloadAsync looked
        return absl::AbortedError(absl::StrCat("model \"", name, "\" is being read from disk"));
      default:  // transient states exist only inside placement jobs
        return absl::UnavailableError(absl::StrCat("model \"", name, "\" is ",
                                                   ModelStateName(entry.info.state)));
    }
    // No new holds; wait for the requests that have one.
    entry.unloading = true;
    mu_.Await(absl::Condition(
        +[](Entry* e) { return e->info.in_use == 0; }, &entry));
    bytes = entry.info.weight_bytes;
    if (entry.device >= 0) device = devices_[entry.device]->device;
    entry.info.unloads++;
  }
  // Leaving READY for UNLOADED releases its budget (SetState).
  Transition(name, ModelState::kUnloaded);
  {
    absl::MutexLock lock(&mu_);
    models_[name].unloading = false;
  }
  if (device != nullptr) device->ReleaseCachedMemory();
  Notify({name, PlacementKind::kUnload, true, SecondsSince(start), bytes, ""});
  return absl::OkStatus();
}

}  // namespace bertserve::core
