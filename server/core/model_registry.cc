#include "server/core/model_registry.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/core/once_callback.h"
#include "server/core/model_config.h"
#include "server/core/model_name.h"

namespace bertserve::core {

namespace fs = std::filesystem;

absl::string_view PlacementKindName(PlacementKind kind) {
  switch (kind) {
    case PlacementKind::kLoad: return "load";
    case PlacementKind::kSwapIn: return "swap_in";
    case PlacementKind::kEvict: return "evict";
    case PlacementKind::kUnload: return "unload";
    case PlacementKind::kDeviceLost: return "device_lost";
    case PlacementKind::kReplicate: return "replicate";
  }
  return "unknown";
}

// Reads <dir>/config.pbtxt; a directory without one runs with every default.
absl::StatusOr<v1::ModelConfig> ReadConfigIn(const ModelRepository& repository,
                                             const std::string& directory,
                                             ServerDevices devices) {
  absl::StatusOr<std::optional<std::string>> path = repository.FileIn(directory, "config.pbtxt");
  if (!path.ok()) return path.status();
  if (!path->has_value()) {
    return ParseModelConfig("", (fs::path(directory) / "config.pbtxt").string(), devices);
  }
  return ReadModelConfig(**path, devices);
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(ModelRepository repository,
                                                                     ModelLoader* loader,
                                                                     RegistryOptions options) {
  if (options.devices.empty()) options.devices.push_back({options.device, options.vram_budget});
  for (const RegistryDevice& d : options.devices) {
    if (d.device == nullptr) return absl::InvalidArgumentError("registry needs a device");
    if (d.device->has_budget() != options.devices[0].device->has_budget()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "devices ", options.devices[0].device->name(), " and ", d.device->name(),
          " are not of one kind: either every device has a budget or none has"));
    }
  }
  options.device = options.devices[0].device;
  options.vram_budget = options.devices[0].vram_budget;
  std::unique_ptr<ModelRegistry> registry(
      new ModelRegistry(std::move(repository), loader, options));
  absl::StatusOr<std::vector<std::string>> names = registry->repository_.ListModels();
  if (!names.ok()) return names.status();
  registry->Rescan();
  return registry;
}

namespace {

// What placement and read threads run after each job: the loader gives back
// what the runtime keeps per thread (ModelLoader::ReleaseThreadResources).
std::function<void()> ReleaseAfterEachJob(ModelLoader* loader) {
  return [loader] { loader->ReleaseThreadResources(); };
}

}  // namespace

ModelRegistry::ModelRegistry(ModelRepository repository, ModelLoader* loader,
                             RegistryOptions options)
    : repository_(std::move(repository)),
      loader_(loader),
      options_(options),
      placements_(ReleaseAfterEachJob(loader)),
      reads_(ReleaseAfterEachJob(loader)) {
  for (const RegistryDevice& d : options_.devices) {
    auto slot = std::make_unique<DeviceSlot>();
    slot->device = d.device;
    devices_.push_back(std::move(slot));
    absl::MutexLock lock(&mu_);
    budgets_.emplace_back(d.device->has_budget() ? d.vram_budget : 0);
    lost_.push_back(false);
  }
  if (devices_.size() > 1 && devices_[0]->device->has_budget()) {
    for (size_t i = 0; i < devices_.size(); ++i) {
      lanes_.push_back(std::make_unique<PlacementQueue>(ReleaseAfterEachJob(loader)));
    }
  }
}

ModelRegistry::~ModelRegistry() = default;

void ModelRegistry::AddStateListener(StateListener listener) {
  absl::MutexLock lock(&mu_);
  state_listeners_.push_back(std::move(listener));
}

void ModelRegistry::AddPlacementListener(PlacementListener listener) {
  absl::MutexLock lock(&mu_);
  placement_listeners_.push_back(std::move(listener));
}

void ModelRegistry::Rescan() {
  absl::StatusOr<std::vector<std::string>> names = repository_.ListModels();
  if (!names.ok()) return;
  for (const std::string& name : *names) {
    if (Contains(name)) continue;
    // The config is parsed now so List shows a broken one before any load.
    Entry entry;
    entry.info.name = name;
    absl::StatusOr<std::string> dir = repository_.ModelDirectory(name);
    absl::StatusOr<v1::ModelConfig> config =
        dir.ok() ? ReadConfigIn(repository_, *dir, server_devices())
                 : absl::StatusOr<v1::ModelConfig>(dir.status());
    if (config.ok()) {
      entry.info.config = *config;
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
  return InfoOf(it->second);
}

ModelInfo ModelRegistry::InfoOf(const Entry& entry) const {
  ModelInfo info = entry.info;
  int replica_holds = 0;
  for (const Entry::Replica& r : entry.replicas) replica_holds += r.in_use;
  if (entry.device >= 0 && info.device_bytes > 0) {
    info.copies.push_back({devices_[entry.device]->device->name(), info.device_bytes,
                           info.in_use - replica_holds, false, info.state});
  }
  for (const Entry::Replica& r : entry.replicas) {
    info.copies.push_back(
        {devices_[r.device]->device->name(), info.weight_bytes, r.in_use, true, ModelState::kReady});
  }
  return info;
}

PlacementEvent ModelRegistry::DropReplica(Entry& entry, size_t index,
                                          std::vector<std::shared_ptr<LoadedModel>>* freed) {
  const Entry::Replica replica = entry.replicas[index];
  if (freed != nullptr) freed->push_back(replica.loaded);
  entry.replicas.erase(entry.replicas.begin() + static_cast<std::ptrdiff_t>(index));
  replicas_placed_.fetch_sub(1);
  budgets_[replica.device].Release(entry.info.name);
  PlacementEvent event(entry.info.name, PlacementKind::kEvict, true, 0, entry.info.weight_bytes,
                       "", devices_[replica.device]->device->name(), "replica");
  return event;
}

std::vector<PlacementEvent> ModelRegistry::DropIdleReplicas(
    int device, const std::string& keep, std::vector<std::shared_ptr<LoadedModel>>* freed) {
  std::vector<PlacementEvent> events;
  for (auto& [name, entry] : models_) {
    if (name == keep) continue;
    for (size_t i = entry.replicas.size(); i-- > 0;) {
      const Entry::Replica& r = entry.replicas[i];
      if (r.in_use == 0 && (device < 0 || r.device == device)) {
        events.push_back(DropReplica(entry, i, freed));
      }
    }
  }
  return events;
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
    for (const auto& [name, entry] : models_) out.push_back(InfoOf(entry));
  }
  std::sort(out.begin(), out.end(),
            [](const ModelInfo& a, const ModelInfo& b) { return a.name < b.name; });
  return out;
}

MemorySnapshot ModelRegistry::Memory() const {
  MemorySnapshot snapshot;
  snapshot.host_budget = options_.host_budget;
  snapshot.placement_queue_depth = placements_.depth();
  for (const auto& lane : lanes_) snapshot.placement_queue_depth += lane->depth();
  for (const auto& slot : devices_) {
    DeviceSnapshot d;
    d.device = slot->device->name();
    d.memory = slot->device->Memory();
    snapshot.devices.push_back(std::move(d));
  }
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < devices_.size(); ++i) {
    snapshot.devices[i].budget = budgets_[i].budget();
    snapshot.devices[i].reserved = budgets_[i].ResidentCost();
    snapshot.devices[i].lost = lost_[i];
  }
  // On the plain CPU nothing is placed on a device index: a model there has
  // its weights in this process's memory from its read on.
  const bool plain_cpu = !devices_[0]->device->has_budget();
  for (const auto& [name, entry] : models_) {
    snapshot.host_bytes += entry.info.host_bytes;
    if (entry.device >= 0) ++snapshot.devices[entry.device].resident_models;
    if (plain_cpu && entry.loaded != nullptr) ++snapshot.devices[0].resident_models;
    for (const Entry::Replica& r : entry.replicas) ++snapshot.devices[r.device].resident_models;
  }
  const DeviceSnapshot& first = snapshot.devices.front();
  snapshot.device = first.device;
  snapshot.memory = first.memory;
  snapshot.budget = first.budget;
  snapshot.reserved = first.reserved;
  return snapshot;
}

int ModelRegistry::DeviceIndex(const std::string& device) const {
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i]->device->name() == device) return static_cast<int>(i);
  }
  return -1;
}

int ModelRegistry::DevicesServing() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(std::count(lost_.begin(), lost_.end(), false));
}

void ModelRegistry::Release(const std::string& name, int replica) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  Entry& entry = it->second;
  --entry.info.in_use;
  entry.info.last_used = absl::Now();
  // A replica dropped meanwhile (its device was lost) is not found.
  for (Entry::Replica& r : entry.replicas) {
    if (r.id == replica) --r.in_use;
  }
}

absl::Status ModelRegistry::EvictIdle(const std::string& keep, absl::Time deadline) {
  auto job = SubmitGlobal(
      absl::StrCat("evict-idle/", keep),
      [this, keep]() -> absl::Status {
        // Idle replicas go first and for good (never offloaded).
        std::vector<PlacementEvent> dropped;
        std::vector<std::shared_ptr<LoadedModel>> copies;
        {
          absl::MutexLock lock(&mu_);
          auto kept = models_.find(keep);
          dropped = DropIdleReplicas(kept == models_.end() ? -1 : kept->second.device, keep,
                                     &copies);
        }
        copies.clear();  // frees their device memory, outside the lock
        for (const PlacementEvent& event : dropped) {
          Notify(event);
          Publish(event.model);
        }
        while (true) {
          std::string victim;
          {
            // Only the device `keep` is on needs the room; every device when
            // it is on none.
            absl::MutexLock lock(&mu_);
            auto kept = models_.find(keep);
            const int device = kept == models_.end() ? -1 : kept->second.device;
            for (auto& [name, entry] : models_) {
              if (name != keep && entry.budgeted && (device < 0 || entry.device == device) &&
                  entry.info.state == ModelState::kReady && entry.info.in_use == 0 &&
                  !entry.info.config.pinned() && !entry.unloading && entry.replicas.empty()) {
                victim = name;
                break;
              }
            }
            if (victim.empty()) break;
            ClaimForEviction(victim);
          }
          if (absl::Status s = Evict(victim); !s.ok()) return s;
        }
        EnforceHostBudget();
        return absl::OkStatus();
      },
      /*urgent=*/true);
  return job->WaitUntil(deadline);
}

std::shared_ptr<const PlacementQueue::Job> ModelRegistry::SubmitGlobal(
    const std::string& key, std::function<absl::Status()> work, bool urgent) {
  return placements_.Submit(
      key,
      [this, work = std::move(work)] {
        absl::WriterMutexLock exclusive(&lanes_mu_);
        return work();
      },
      urgent);
}

std::shared_ptr<const PlacementQueue::Job> ModelRegistry::SubmitPlace(const std::string& name,
                                                                      bool urgent) {
  const std::string key = absl::StrCat("place/", name);
  int lane = -1;
  if (!lanes_.empty()) {
    // The device is chosen now, and the placement queued on its lane; a
    // placement already chosen (queued or running) is joined there.
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    if (entry.pending_device >= 0) {
      lane = entry.pending_device;
    } else if (entry.budgeted && entry.info.state == ModelState::kHost) {
      absl::StatusOr<Choice> chosen =
          ChooseDevice(name, entry.info.weight_bytes, entry.info.activation_reserve);
      // A refusal is made (and reported) by the global worker, as before.
      if (chosen.ok()) {
        lane = chosen->device;
        entry.pending_device = lane;
        entry.pending_fit = static_cast<int>(chosen->fit);
      }
    }
  }
  if (lane < 0) return SubmitGlobal(key, [this, name] { return DoPlace(name); }, urgent);
  return lanes_[lane]->Submit(
      key,
      [this, name, lane] {
        absl::ReaderMutexLock shared(&lanes_mu_);
        return DoPlace(name, lane);
      },
      urgent);
}

void ModelRegistry::SetQueueProbe(QueueProbe probe) {
  absl::MutexLock lock(&mu_);
  queue_probe_ = std::make_shared<const QueueProbe>(std::move(probe));
}

absl::StatusOr<ModelHandle> ModelRegistry::TryAcquire(const std::string& name) {
  if (absl::Status s = ValidateModelName(name); !s.ok()) return s;
  // With replicas about, each copy's queued tokens, asked outside the lock
  // (the Batcher has its own).
  absl::flat_hash_map<std::string, QueuedWork> queued;
  if (replicas_placed_.load() > 0) {
    std::shared_ptr<const QueueProbe> probe;
    {
      absl::MutexLock lock(&mu_);
      auto it = models_.find(name);
      if (it != models_.end() && !it->second.replicas.empty()) probe = queue_probe_;
    }
    if (probe != nullptr && *probe) queued = (*probe)(name);
  }
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" is not in the repository"));
  }
  Entry& entry = it->second;
  const bool on_lost_device = entry.device >= 0 && lost_[entry.device];
  if (entry.info.state == ModelState::kReady && !entry.unloading && !entry.closing &&
      !on_lost_device) {
    // The copy with the fewest tokens queued for it, then the fewest
    // requests holding it (queued, being tokenized or running), then the
    // primary.
    int replica_holds = 0;
    for (const Entry::Replica& r : entry.replicas) replica_holds += r.in_use;
    std::shared_ptr<LoadedModel> loaded = entry.loaded;
    auto load_of = [&](int device, int holds) {
      if (device < 0 || queued.empty()) return std::make_pair(int64_t{0}, holds);
      auto q = queued.find(devices_[device]->device->name());
      return std::make_pair(q == queued.end() ? int64_t{0} : q->second.tokens, holds);
    };
    std::pair<int64_t, int> least = load_of(entry.device, entry.info.in_use - replica_holds);
    Entry::Replica* chosen = nullptr;
    for (Entry::Replica& r : entry.replicas) {
      if (lost_[r.device]) continue;
      if (const auto load = load_of(r.device, r.in_use); load < least) {
        least = load;
        chosen = &r;
      }
    }
    int replica = 0;
    if (chosen != nullptr) {
      ++chosen->in_use;
      loaded = chosen->loaded;
      replica = chosen->id;
    }
    ++entry.info.in_use;
    entry.info.last_used = absl::Now();
    // The handle's reference goes before the hold: an Unload waiting for
    // in_use == 0 then drops the last one, so the model's memory is freed
    // before the Unload returns, not later on this handle's thread.
    return ModelHandle(loaded.get(), [this, name, replica, loaded](const LoadedModel*) mutable {
      loaded.reset();
      Release(name, replica);
    });
  }
  if (entry.info.state == ModelState::kFailed) {
    return absl::FailedPreconditionError(absl::StrCat("model \"", name, "\" failed to load: ",
                                                      entry.info.last_error,
                                                      " (Models.Load retries)"));
  }
  return absl::UnavailableError(
      absl::StrCat("model \"", name, "\" is not ready",
                   on_lost_device ? " (its device failed; it is being placed on another)"
                   : entry.closing ? " (its turn on the device is ending)"
                                   : ""));
}

// A call in progress that answers once: with its outcome, or with
// DeadlineExceeded at its deadline, whichever comes first.
// How many times a placement is tried again when its model left host memory
// before the worker got to it (or an unload found it being read).
constexpr int kPlaceAttempts = 8;

template <typename T>
class Pending {
 public:
  Pending(DeadlineTimer* timer, std::function<void(T)> done)
      : timer_(timer), once_(std::move(done)) {}

  // Arms the deadline; `expired` makes the answer then.
  static void Arm(const std::shared_ptr<Pending>& self, absl::Time deadline,
                  std::function<T()> expired) {
    self->timer_id_ = self->timer_->Schedule(
        deadline, [weak = std::weak_ptr<Pending>(self), expired = std::move(expired)] {
          if (std::shared_ptr<Pending> p = weak.lock()) p->once_.Run(expired());
        });
  }
  // Answers unless the call already was; true if this answered it.
  bool Finish(T value) {
    if (!once_.Run(std::move(value))) return false;
    timer_->Cancel(timer_id_.load());
    return true;
  }
  bool done() const { return once_.done(); }

 private:
  DeadlineTimer* const timer_;
  OnceCallback<T> once_;
  std::atomic<DeadlineTimer::Id> timer_id_{0};
};

class ModelRegistry::PendingHandle : public Pending<absl::StatusOr<ModelHandle>> {
  using Pending::Pending;
};

namespace {

// Runs an asynchronous call and waits for its answer.
template <typename T>
T AwaitCall(const std::function<void(std::function<void(T)>)>& call) {
  absl::Notification answered;
  std::optional<T> answer;
  call([&](T value) {
    answer.emplace(std::move(value));
    answered.Notify();
  });
  answered.WaitForNotification();
  return *std::move(answer);
}

}  // namespace

absl::StatusOr<ModelHandle> ModelRegistry::Acquire(const std::string& name, absl::Time deadline) {
  return AwaitCall<absl::StatusOr<ModelHandle>>(
      [&](HandleCallback done) { AcquireAsync(name, deadline, std::move(done)); });
}

void ModelRegistry::AcquireAsync(const std::string& name, absl::Time deadline,
                                 HandleCallback done) {
  if (absl::Status s = ValidateModelName(name); !s.ok()) return done(s);
  auto pending = std::make_shared<PendingHandle>(&timer_, std::move(done));
  PendingHandle::Arm(pending, deadline, [this, name]() -> absl::StatusOr<ModelHandle> {
    absl::StatusOr<ModelInfo> info = Snapshot(name);
    return absl::DeadlineExceededError(absl::StrCat(
        "model \"", name, "\" was not ready before the request deadline (it is ",
        info.ok() ? ModelStateName(info->state) : "unknown", ")"));
  });
  AcquireAttempt(name, std::move(pending));
}

void ModelRegistry::AcquireAttempt(const std::string& name,
                                   std::shared_ptr<PendingHandle> pending) {
  if (pending->done()) return;  // the deadline answered it
  absl::StatusOr<ModelHandle> handle = TryAcquire(name);
  if (handle.ok() || !absl::IsUnavailable(handle.status())) {
    pending->Finish(std::move(handle));
    return;
  }
  // Not READY, or its turn is ending: wait for its next placement. A model
  // evicted for another between its placement and our hold (the two take
  // turns) comes round again; only the deadline ends the wait. Each try
  // waits for a placement job, so this never spins.
  PlaceAsync(name, /*urgent=*/true, /*attempts=*/kPlaceAttempts,
             [this, name, pending](absl::Status placed) {
               if (!placed.ok()) {
                 pending->Finish(placed);
                 return;
               }
               AcquireAttempt(name, pending);
             });
}

bool ModelRegistry::Servable(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  return it != models_.end() && it->second.info.state == ModelState::kReady &&
         !it->second.unloading && !it->second.closing &&
         !(it->second.device >= 0 && lost_[it->second.device]);
}

// Least time between two replica tries of one model: a device that had no
// room a moment ago rarely has it now, and each try reads the model from disk.
constexpr absl::Duration kReplicaRetry = absl::Seconds(5);

void ModelRegistry::RequestReplica(const std::string& name) {
  if (shutting_down_.load()) return;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    Entry& entry = it->second;
    const int copies = 1 + static_cast<int>(entry.replicas.size());
    const int alive = static_cast<int>(std::count(lost_.begin(), lost_.end(), false));
    if (entry.info.state != ModelState::kReady || !entry.budgeted || entry.replicating ||
        copies >= std::max(1, entry.info.config.max_replicas()) || copies >= alive ||
        absl::Now() - entry.last_replica_try < kReplicaRetry) {
      return;
    }
    entry.replicating = true;
    entry.last_replica_try = absl::Now();
  }
  auto finish = [this, name](absl::Status) {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    entry.replicating = false;
    entry.last_replica_try = absl::Now();
  };
  // The read off the placement worker, as for any model; the move on it.
  reads_
      .Submit(absl::StrCat("replica-read/", name),
              [this, name, finish]() -> absl::Status {
                const absl::Time start = absl::Now();
                absl::StatusOr<std::shared_ptr<LoadedModel>> built = BuildReplica(name);
                if (!built.ok()) {
                  // A primary gone since the request (evicted, unloaded) is
                  // no failure: there is nothing to copy any more.
                  if (!absl::IsAborted(built.status())) {
                    Notify(PlacementEvent(name, PlacementKind::kReplicate, false,
                                          absl::ToDoubleSeconds(absl::Now() - start), 0,
                                          std::string(built.status().message())));
                  }
                  return built.status();
                }
                SubmitGlobal(absl::StrCat("replica/", name),
                            [this, name, loaded = *std::move(built)]() mutable {
                              return DoPlaceReplica(name, std::move(loaded));
                            },
                            /*urgent=*/false)
                    ->OnDone(finish);
                return absl::OkStatus();
              })
      ->OnDone([finish](absl::Status s) {
        if (!s.ok()) finish(s);
      });
}

void ModelRegistry::Shutdown() {
  shutting_down_.store(true);
  placements_.Stop();
  for (const auto& lane : lanes_) lane->Stop();
}

void ModelRegistry::PlaceAsync(const std::string& name, bool urgent, int attempts,
                               std::function<void(absl::Status)> done) {
  if (shutting_down_.load()) return done(absl::UnavailableError("the server is shutting down"));
  absl::StatusOr<ModelInfo> info = Snapshot(name);
  if (!info.ok()) return done(info.status());
  // READY but taking no new holds (its turn is ending, or an unload waits
  // for its requests): a job queued now runs after the eviction or unload
  // under way, and brings it back.
  if (Servable(name)) return done(absl::OkStatus());
  auto place = [this, name, urgent, attempts, done] {
    SubmitPlace(name, urgent)->OnDone([this, name, urgent, attempts, done](absl::Status s) {
      // Aborted: no longer in host memory (the host budget dropped it, or an
      // unload ran) by the time the worker got to it. Read it again; if that
      // keeps happening, it is churn, reported like eviction thrash.
      if (absl::IsAborted(s)) {
        if (attempts > 1) return PlaceAsync(name, urgent, attempts - 1, done);
        return done(absl::UnavailableError(absl::StrCat(
            "model \"", name, "\" was unloaded again and again while it was being placed")));
      }
      done(s);
    });
  };
  const ModelState state = info->state;
  if (state == ModelState::kUnloaded || state == ModelState::kFailed ||
      state == ModelState::kLoading) {
    reads_.Submit(absl::StrCat("read/", name), [this, name] { return DoLoadToHost(name); })
        ->OnDone([place, done](absl::Status read) {
          if (!read.ok()) return done(read);
          place();
        });
    return;
  }
  place();
}

std::shared_ptr<Pending<absl::StatusOr<ModelInfo>>> ModelRegistry::PendingInfo(
    const std::string& name, absl::Time deadline, InfoCallback done, std::string what_next) {
  auto pending = std::make_shared<Pending<absl::StatusOr<ModelInfo>>>(&timer_, std::move(done));
  Pending<absl::StatusOr<ModelInfo>>::Arm(
      pending, deadline, [this, name, what_next]() -> absl::StatusOr<ModelInfo> {
        absl::StatusOr<ModelInfo> info = Snapshot(name);
        return absl::DeadlineExceededError(absl::StrCat(
            "model \"", name, "\" is still ", info.ok() ? ModelStateName(info->state) : "unknown",
            " at the call's deadline; ", what_next));
      });
  return pending;
}

void ModelRegistry::LoadAsync(const std::string& name, absl::Time deadline, InfoCallback done) {
  if (absl::Status s = EnsureKnown(name); !s.ok()) return done(s);
  auto pending = PendingInfo(name, deadline, std::move(done),
                             "the load goes on (Models.Get shows its state)");
  PlaceAsync(name, /*urgent=*/false, /*attempts=*/kPlaceAttempts,
             [this, name, pending](absl::Status s) {
               if (!s.ok()) {
                 pending->Finish(s);
                 return;
               }
               pending->Finish(Snapshot(name));
             });
}

void ModelRegistry::UnloadAsync(const std::string& name, absl::Time deadline,
                                InfoCallback done) {
  if (absl::Status s = EnsureKnown(name); !s.ok()) return done(s);
  UnloadAttempt(name, kPlaceAttempts,
                PendingInfo(name, deadline, std::move(done),
                            "it is unloaded once its read or its requests finish"));
}

void ModelRegistry::UnloadAttempt(
    const std::string& name, int attempts,
    std::shared_ptr<Pending<absl::StatusOr<ModelInfo>>> pending) {
  if (pending->done()) return;
  auto unload = [this, name, attempts, pending] {
    SubmitGlobal(absl::StrCat("unload/", name), [this, name] { return DoUnload(name); })
        ->OnDone([this, name, attempts, pending](absl::Status s) {
          // Aborted: a read of it started meanwhile; unload once that ends.
          if (absl::IsAborted(s) && attempts > 1) return UnloadAttempt(name, attempts - 1, pending);
          if (!s.ok()) {
            pending->Finish(absl::IsAborted(s) ? absl::UnavailableError(s.message()) : s);
            return;
          }
          pending->Finish(Snapshot(name));
        });
  };
  // A model being read is unloaded once the read ends.
  if (auto read = reads_.Running(absl::StrCat("read/", name)); read != nullptr) {
    read->OnDone([unload](absl::Status) { unload(); });
    return;
  }
  unload();
}

absl::StatusOr<ModelInfo> ModelRegistry::Load(const std::string& name) {
  return AwaitCall<absl::StatusOr<ModelInfo>>(
      [&](InfoCallback done) { LoadAsync(name, absl::InfiniteFuture(), std::move(done)); });
}

absl::StatusOr<ModelInfo> ModelRegistry::Unload(const std::string& name) {
  return AwaitCall<absl::StatusOr<ModelInfo>>(
      [&](InfoCallback done) { UnloadAsync(name, absl::InfiniteFuture(), std::move(done)); });
}

void ModelRegistry::SetState(Entry& entry, ModelState to, const std::string& error) {
  // An illegal transition is a bug here; FAILED keeps the exported state
  // machine honest instead of showing an impossible edge.
  if (!IsLegalTransition(entry.info.state, to)) {
    entry.info.last_error = absl::StrCat("internal: illegal transition ",
                                         ModelStateName(entry.info.state), " -> ",
                                         ModelStateName(to));
    to = ModelState::kFailed;
  } else if (to == ModelState::kFailed) {
    entry.info.last_error = error;
  }
  entry.info.state = to;
  if (to == ModelState::kUnloaded || to == ModelState::kFailed) {
    entry.loaded.reset();
    entry.info.device_bytes = 0;
    entry.info.host_bytes = 0;
  }
  // Replicas exist only beside a READY primary.
  if (to != ModelState::kReady) {
    while (!entry.replicas.empty()) DropReplica(entry, entry.replicas.size() - 1);
  }
  // No device copy is left once a model is in neither READY, PLACING nor
  // EVICTING: its bytes leave the device's budget with it.
  if (entry.device >= 0 && to != ModelState::kReady && to != ModelState::kPlacing &&
      to != ModelState::kEvicting) {
    budgets_[entry.device].Release(entry.info.name);
    entry.device = -1;
  }
}

void ModelRegistry::ClaimForEviction(const std::string& name) {
  SetState(models_[name], ModelState::kEvicting);
}

bool ModelRegistry::TransitionFrom(const std::string& name, ModelState from, ModelState to) {
  ModelInfo snapshot;
  std::vector<StateListener> listeners;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    if (entry.info.state != from) return false;
    SetState(entry, to);
    snapshot = InfoOf(entry);
    listeners = state_listeners_;
  }
  for (const StateListener& listener : listeners) listener(snapshot);
  return true;
}

void ModelRegistry::Transition(const std::string& name, ModelState to, const std::string& error) {
  ModelInfo snapshot;
  std::vector<StateListener> listeners;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = models_[name];
    SetState(entry, to, error);
    snapshot = InfoOf(entry);
    listeners = state_listeners_;
  }
  for (const StateListener& listener : listeners) listener(snapshot);
}

void ModelRegistry::DeviceLost(const std::string& device, const absl::Status& error) {
  const int index = DeviceIndex(device);
  if (index < 0) return;
  {
    // From now on no placement chooses it and no request gets a handle to a
    // copy on it.
    absl::MutexLock lock(&mu_);
    if (lost_[index]) return;
    // The last device: there is nowhere to move to. Nothing changes here;
    // the batcher refuses new work and liveness has the process restarted.
    if (std::count(lost_.begin(), lost_.end(), false) <= 1) return;
    lost_[index] = true;
  }
  // Not waited for: the caller is an executor, and the placement worker may
  // be waiting for requests that executor holds.
  SubmitGlobal(
      absl::StrCat("device-lost/", device),
      [this, index, device, error]() -> absl::Status {
        std::vector<std::pair<std::string, int64_t>> dropped;
        int serving = 0;
        std::vector<PlacementEvent> replicas;
        {
          absl::MutexLock lock(&mu_);
          serving = static_cast<int>(std::count(lost_.begin(), lost_.end(), false));
          for (auto& [name, entry] : models_) {
            if (entry.device == index) dropped.emplace_back(name, entry.info.weight_bytes);
            // Replicas there go whoever holds them: their requests fail.
            for (size_t i = entry.replicas.size(); i-- > 0;) {
              if (entry.replicas[i].device != index) continue;
              PlacementEvent event = DropReplica(entry, i);
              event.kind = PlacementKind::kDeviceLost;
              event.error = std::string(error.message());
              replicas.push_back(std::move(event));
            }
          }
        }
        for (const PlacementEvent& event : replicas) {
          Notify(event);
          Publish(event.model);
        }
        for (const auto& [name, bytes] : dropped) {
          // The device copy cannot be read back; requests holding it finish
          // (failing) with their own reference. The next copy comes from disk.
          {
            absl::MutexLock lock(&mu_);
            models_[name].info.unloads++;
          }
          Transition(name, ModelState::kUnloaded);
          PlacementEvent event{name, PlacementKind::kDeviceLost, true, 0, bytes, ""};
          event.device = device;
          event.error = std::string(error.message());
          Notify(event);
        }
        // Back onto the devices left, without waiting for a request to ask.
        if (serving > 0) {
          for (const auto& [name, bytes] : dropped) {
            PlaceAsync(name, /*urgent=*/false, kPlaceAttempts, [](absl::Status) {});
          }
        }
        return absl::OkStatus();
      },
      /*urgent=*/true);
}

void ModelRegistry::Publish(const std::string& name) {
  ModelInfo snapshot;
  std::vector<StateListener> listeners;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    snapshot = InfoOf(it->second);
    listeners = state_listeners_;
  }
  for (const StateListener& listener : listeners) listener(snapshot);
}

void ModelRegistry::Notify(const PlacementEvent& event) {
  std::vector<PlacementListener> listeners;
  {
    absl::MutexLock lock(&mu_);
    listeners = placement_listeners_;
  }
  for (const PlacementListener& listener : listeners) listener(event);
}

}  // namespace bertserve::core
