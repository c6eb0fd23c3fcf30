#ifndef BERTSERVE_SERVER_CORE_MODEL_REGISTRY_H_
#define BERTSERVE_SERVER_CORE_MODEL_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bertserve/v1/config.pb.h"
#include "server/core/deadline_timer.h"
#include "server/core/device.h"
#include "server/core/device_budget.h"
#include "server/core/model_repository.h"
#include "server/core/model_runtime.h"
#include "server/core/model_state.h"
#include "server/core/placement_queue.h"
#include "server/tokenizer/bert_tokenizer.h"

namespace bertserve::core {

template <typename T>
class Pending;  // a call in progress with a deadline (model_registry.cc)

// Everything a request needs from a placed model. Immutable once published.
struct LoadedModel {
  std::string name;
  v1::ModelConfig config;             // with defaults filled in
  std::vector<std::string> labels;    // one per logit
  std::unique_ptr<tokenizer::BertTokenizer> tokenizer;
  std::unique_ptr<Model> model;
  // Held around Forward: one batch executes per budgeted device at a time, so
  // activation reserves do not add up. Null for models executing on the CPU.
  absl::Mutex* execution_mu = nullptr;
  // Tokens (longest x rows) a forward at warm-up proved to fit: the
  // configured max_batch_tokens, or less when that ran out of memory.
  int64_t token_limit = 0;
};

// A request's hold on a READY model, for exactly the request's duration. While
// any handle exists the model is never evicted or unloaded.
using ModelHandle = std::shared_ptr<const LoadedModel>;

// A snapshot of one model for the Models API, metrics and logs.
struct ModelInfo {
  std::string name;
  ModelState state = ModelState::kUnloaded;
  std::string device;               // execution device ("sim:0", "cuda:0", "cpu")
  int64_t weight_bytes = 0;         // bytes; 0 until loaded
  int64_t device_bytes = 0;         // weight bytes on the device now
  int64_t host_bytes = 0;           // weight bytes in the host tier now
  int64_t activation_reserve = 0;   // bytes; an upper-bound estimate until measured
  bool reserve_measured = false;
  std::string last_error;
  int num_labels = 0;
  std::vector<std::string> labels;
  std::vector<std::string> inputs;
  v1::ModelConfig config;
  absl::Time last_used = absl::InfinitePast();
  int in_use = 0;                   // handles held by requests
  int64_t batch_token_limit = 0;    // tokens; proven at warm-up (0 before)
  int64_t loads = 0, swap_ins = 0, evictions = 0, unloads = 0;
  double last_load_seconds = 0, last_swap_in_seconds = 0;
};

enum class PlacementKind { kLoad, kSwapIn, kEvict, kUnload };
absl::string_view PlacementKindName(PlacementKind kind);  // "load", "swap_in", ...

// One finished placement job, for metrics and logs.
struct PlacementEvent {
  std::string model;
  PlacementKind kind;
  bool ok = true;
  double seconds = 0;
  int64_t bytes = 0;  // weight bytes moved
  std::string error;
};

// Device and host memory as the registry sees it, all in bytes.
struct MemorySnapshot {
  std::string device;
  DeviceMemory memory;        // what the device and its allocator report
  int64_t budget = 0;         // VRAM budget in force
  int64_t reserved = 0;       // admitted: resident weights + largest reserve
  int64_t host_bytes = 0;     // weights held in the host tier
  int64_t host_budget = 0;
  size_t placement_queue_depth = 0;
};

struct RegistryOptions {
  Device* device = nullptr;  // execution device of budgeted models; required
  int64_t vram_budget = 0;   // bytes; ignored when !device->has_budget()
  int64_t host_budget = 0;   // bytes of weights the host tier may hold
  // How long a placement waits for requests to let go of models it must
  // evict before it gives up with ResourceExhausted.
  absl::Duration hold_wait = absl::Seconds(10);
};

// Owns every model of a repository, its state machine, the VRAM budget of one
// device and the host tier. Every swap-in, eviction, unload and move to the
// device runs on one PlacementQueue worker, one at a time; jobs a request
// waits on go first. Reading a model from disk into host memory (LOADING)
// touches no device memory and may block for as long as its storage does, so
// each read runs on a thread of its own: a stuck read holds that thread and
// that model, never the placement worker or another model.
// Requests for a model that is not READY trigger its placement and wait for
// it within their deadline, without a thread blocked per waiter (the *Async
// calls); the blocking calls wrap them. Thread-safe.
class ModelRegistry {
 public:
  using StateListener = std::function<void(const ModelInfo&)>;
  using PlacementListener = std::function<void(const PlacementEvent&)>;

  // Scans the repository; every model starts UNLOADED (FAILED if its
  // config.pbtxt does not parse). `loader` and the device must outlive it.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(ModelRepository repository,
                                                               ModelLoader* loader,
                                                               RegistryOptions options);
  ~ModelRegistry();

  // Listeners run after each change, outside the registry lock, on the thread
  // that made it. Add them before any load.
  void AddStateListener(StateListener listener) ABSL_LOCKS_EXCLUDED(mu_);
  void AddPlacementListener(PlacementListener listener) ABSL_LOCKS_EXCLUDED(mu_);

  using InfoCallback = std::function<void(absl::StatusOr<ModelInfo>)>;
  using HandleCallback = std::function<void(absl::StatusOr<ModelHandle>)>;

  // Loads and places `name`; `done` runs once it is READY or the placement
  // failed: InvalidArgument (illegal name), NotFound, FailedPrecondition
  // (broken model, naming the file), ResourceExhausted (cannot fit: names
  // needed and available bytes). At `deadline` it runs with DeadlineExceeded
  // instead, and the load goes on: other callers may share it, a read stuck
  // in the kernel cannot be interrupted anyway, and a model that arrives late
  // serves the next request. `done` runs on whichever thread settles the call
  // (the placement worker, a read thread, the timer, or this one) and must
  // not block.
  void LoadAsync(const std::string& name, absl::Time deadline, InfoCallback done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Releases the model's device and host memory once no request holds it; a
  // model being read from disk is unloaded once the read ends. Deadlines as
  // LoadAsync (the unload still happens).
  void UnloadAsync(const std::string& name, absl::Time deadline, InfoCallback done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Blocking forms of the two, without a deadline.
  absl::StatusOr<ModelInfo> Load(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ModelInfo> Unload(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  // A handle to the READY model, placing it first (urgently) if it is not.
  // DeadlineExceeded if that does not finish by `deadline` (the placement
  // itself still completes; nothing is left half-placed). FailedPrecondition
  // for a FAILED model, with the reason. Models that cannot share the device
  // take turns (see MakeRoom): a request whose model is waiting for its turn
  // waits for it, however often it comes round, until its deadline; it never
  // fails because its model was evicted for another one meanwhile.
  absl::StatusOr<ModelHandle> Acquire(const std::string& name,
                                      absl::Time deadline = absl::InfiniteFuture())
      ABSL_LOCKS_EXCLUDED(mu_);
  // Acquire without blocking: `done` runs once, as for LoadAsync.
  void AcquireAsync(const std::string& name, absl::Time deadline, HandleCallback done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Acquire without waiting: Unavailable when the model is not READY now, or
  // its turn on the device is ending (nothing is started then); the other
  // errors as Acquire.
  absl::StatusOr<ModelHandle> TryAcquire(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  // Moves every idle (no handle held), unpinned READY model except `keep`
  // to the host tier, through the placement queue ahead of background work;
  // returns once done. For an input that does not fit on the device alone.
  // Gives up waiting at `deadline` (DeadlineExceeded; the job still runs).
  absl::Status EvictIdle(const std::string& keep, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<ModelInfo> Get(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  // Every model, sorted by name; rescans the repository so new ones appear.
  std::vector<ModelInfo> List() ABSL_LOCKS_EXCLUDED(mu_);
  bool Contains(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  MemorySnapshot Memory() const ABSL_LOCKS_EXCLUDED(mu_);

  // For the end of a drain: no new read or placement starts (they fail
  // Unavailable), queued placements are cancelled, and the running one is
  // finished; once this returns, no placement work runs (reads in progress
  // may still finish: see WaitForReads), so listeners are not called from
  // it any more.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Models being read from disk now.
  size_t ReadsInProgress() const { return reads_.running(); }
  // True once no read is in progress; false if one still is at `deadline`
  // (stuck on its storage, say). The destructor waits for reads, so a process
  // that must exit regardless checks this and then exits without destroying
  // the registry.
  bool WaitForReads(absl::Time deadline) const { return reads_.WaitIdle(deadline); }

 private:
  struct Entry {
    ModelInfo info;
    std::shared_ptr<LoadedModel> loaded;  // from HOST on; null when UNLOADED/FAILED
    bool budgeted = true;   // false: executes on the CPU, no device tier
    bool unloading = false;  // no new handles; an Unload waits for in_use == 0
    // Its turn on the device is over: a placement waits for the requests
    // that hold it to finish so that it can be evicted for another model.
    // No new handles meanwhile; requests wait for its next turn (see
    // MakeRoom).
    bool closing = false;
    // Device free bytes when warm-up last had to lower the token limit; a
    // later placement measures again only if more is free now. -1: never.
    int64_t free_when_lowered = -1;
    // Set by a read from disk; the next placement is then a load (not a
    // swap-in), and its reported time includes the read's.
    bool fresh_from_disk = false;
    double read_seconds = 0;
  };

  ModelRegistry(ModelRepository repository, ModelLoader* loader, RegistryOptions options);

  void Rescan() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status EnsureKnown(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ModelInfo> Snapshot(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  void Release(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // READY and giving out handles (not unloading, turn not ending).
  bool Servable(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const PlacementQueue::Job> SubmitPlace(const std::string& name, bool urgent);
  // Reads the model from disk if it is not in host memory, then places it;
  // `done` gets the outcome. A model dropped from the host tier between the
  // two is read again, up to `attempts` times.
  void PlaceAsync(const std::string& name, bool urgent, int attempts,
                  std::function<void(absl::Status)> done) ABSL_LOCKS_EXCLUDED(mu_);
  class PendingHandle;  // an AcquireAsync call in progress (model_registry.cc)
  // A LoadAsync/UnloadAsync call that answers DeadlineExceeded at
  // `deadline`, saying `what_next`.
  std::shared_ptr<Pending<absl::StatusOr<ModelInfo>>> PendingInfo(const std::string& name,
                                                                  absl::Time deadline,
                                                                  InfoCallback done,
                                                                  std::string what_next);
  void UnloadAttempt(const std::string& name, int attempts,
                     std::shared_ptr<Pending<absl::StatusOr<ModelInfo>>> pending)
      ABSL_LOCKS_EXCLUDED(mu_);
  void AcquireAttempt(const std::string& name, std::shared_ptr<PendingHandle> pending)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Placement work (model_placement.cc); run only on the placement worker.
  absl::Status DoPlace(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DoLoadToHost(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // Reads take turns, so host memory holds one model being read at a time,
  // as when reads ran on the placement worker; a read running longer than
  // kReadStall (slow or stuck storage) stops holding the others back.
  void TakeReadSlot(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  void GiveBackReadSlot(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MakeRoom(const std::string& name, int64_t weights, int64_t reserve)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Evict(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WarmUp(const std::string& name, LoadedModel& loaded) ABSL_LOCKS_EXCLUDED(mu_);
  void EnforceHostBudget() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DoUnload(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<LoadedModel>> Build(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);

  void Transition(const std::string& name, ModelState to, const std::string& error = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  void Notify(const PlacementEvent& event) ABSL_LOCKS_EXCLUDED(mu_);

  const ModelRepository repository_;
  ModelLoader* const loader_;
  const RegistryOptions options_;

  // One batch per budgeted device at a time (see LoadedModel::execution_mu).
  absl::Mutex execution_mu_;

  mutable absl::Mutex mu_;
  // Node map: an Entry stays put while DoUnload waits on it with mu_ released.
  absl::node_hash_map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
  DeviceBudget budget_ ABSL_GUARDED_BY(mu_);
  // Reads from disk holding a read slot, by model, with when they started;
  // bumped `read_releases_` wakes the ones waiting for a slot.
  absl::flat_hash_map<std::string, absl::Time> reads_started_ ABSL_GUARDED_BY(mu_);
  int64_t read_releases_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<StateListener> state_listeners_ ABSL_GUARDED_BY(mu_);
  std::vector<PlacementListener> placement_listeners_ ABSL_GUARDED_BY(mu_);

  // Destroyed in reverse order: reads first (their callbacks may submit
  // placements and cancel timers), then placements (whose cancelled jobs'
  // callbacks may cancel timers), then the timer. Last declared, so nothing
  // runs on a dying registry.
  std::atomic<bool> shutting_down_{false};
  DeadlineTimer timer_;
  PlacementQueue placements_;
  BlockingJobs reads_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_REGISTRY_H_
