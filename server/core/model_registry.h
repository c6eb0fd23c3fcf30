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
#include "server/core/model_config.h"
#include "server/core/model_repository.h"
#include "server/core/model_runtime.h"
#include "server/core/model_state.h"
#include "server/core/placement_queue.h"
#include "server/tokenizer/bert_tokenizer.h"

namespace bertserve::core {

template <typename T>
class Pending;  // a call in progress with a deadline (model_registry.cc)

// What a model file was when it was read (the file's identity and its
// size and time of change); `exists` false when it could not be looked at.
struct FileStamp {
  bool exists = false;
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t size = 0;
  int64_t changed_ns = 0;
  bool operator==(const FileStamp& other) const {
    return exists == other.exists && device == other.device && inode == other.inode &&
           size == other.size && changed_ns == other.changed_ns;
  }
  bool operator!=(const FileStamp& other) const { return !(*this == other); }
};

// Everything a request needs from a placed model. Immutable once published.
struct LoadedModel {
  std::string name;
  v1::ModelConfig config;             // with defaults filled in
  // Where its weights were read from, and that file as it was just before:
  // a replica reads the same file, and only while it is unchanged.
  ModelSource source;
  FileStamp model_file;
  // A replica: the primary's load count (ModelInfo::loads) when it was read;
  // placed only while the primary is still that load.
  int64_t generation = 0;
  std::vector<std::string> labels;    // one per logit
  // Shared by the model's replicas.
  std::shared_ptr<const tokenizer::BertTokenizer> tokenizer;
  std::unique_ptr<Model> model;
  // 0: the model's primary copy (the one that moves to host memory when
  // evicted); else the id of a replica on another device (see ModelCopy).
  int replica = 0;
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

// One device copy of a model.
struct ModelCopy {
  std::string device;
  int64_t device_bytes = 0;
  int in_use = 0;        // handles held on this copy
  bool replica = false;  // false: the primary copy
  // The primary's is the model's (PLACING, READY, EVICTING); a replica
  // exists only while READY.
  ModelState state = ModelState::kReady;
};

// Work waiting in a queue for a forward: inputs and their tokens.
struct QueuedWork {
  int64_t inputs = 0;
  int64_t tokens = 0;
};

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
  // Placements by the reason the policy chose the device (see
  // ChooseDevice): "free" (fitted beside what was there), "evict" (after
  // evicting idle models), "wait" (after waiting for requests' holds).
  int64_t placed_free = 0, placed_evict = 0, placed_wait = 0;
  // Every device copy now: the primary first (while READY), then replicas.
  std::vector<ModelCopy> copies;
};

// kReplicate: a replica placed on another device (evicting one is kEvict).
enum class PlacementKind { kLoad, kSwapIn, kEvict, kUnload, kDeviceLost, kReplicate };
absl::string_view PlacementKindName(PlacementKind kind);  // "load", "swap_in", ...

// One finished placement job, for metrics and logs.
struct PlacementEvent {
  PlacementEvent() = default;
  PlacementEvent(std::string model, PlacementKind kind, bool ok, double seconds, int64_t bytes,
                 std::string error, std::string device = "", std::string reason = "")
      : model(std::move(model)),
        kind(kind),
        ok(ok),
        seconds(seconds),
        bytes(bytes),
        error(std::move(error)),
        device(std::move(device)),
        reason(std::move(reason)) {}

  std::string model;
  PlacementKind kind = PlacementKind::kLoad;
  bool ok = true;
  double seconds = 0;
  int64_t bytes = 0;  // weight bytes moved
  std::string error;
  std::string device;  // where it was placed, evicted from or lost; "" for host-only events
  std::string reason;  // placements: why this device ("free", "evict", "wait")
};

// One execution device as the registry sees it, all in bytes.
struct DeviceSnapshot {
  std::string device;
  DeviceMemory memory;        // what the device and its allocator report
  int64_t budget = 0;         // VRAM budget in force
  int64_t reserved = 0;       // admitted: resident weights + largest reserve
  int resident_models = 0;    // models with weights on it
  bool lost = false;          // failed for good (see DeviceLost)
};

// Device and host memory as the registry sees it, all in bytes.
struct MemorySnapshot {
  // The first device (the only one of most servers), as in `devices[0]`.
  std::string device;
  DeviceMemory memory;
  int64_t budget = 0;
  int64_t reserved = 0;
  std::vector<DeviceSnapshot> devices;  // every device, in --device order
  int64_t host_bytes = 0;     // weights held in the host tier
  int64_t host_budget = 0;
  size_t placement_queue_depth = 0;
};

// One execution device of the registry and its VRAM budget.
struct RegistryDevice {
  Device* device = nullptr;
  int64_t vram_budget = 0;  // bytes; ignored when !device->has_budget()
};

struct RegistryOptions {
  Device* device = nullptr;  // execution device of budgeted models (unless `devices`)
  int64_t vram_budget = 0;   // bytes; ignored when !device->has_budget()
  // Several execution devices, each with its own budget, in the order the
  // loader's models index them (Model::MoveToDevice). When not empty,
  // `device` and `vram_budget` are ignored. All of one kind (budgeted or
  // not).
  std::vector<RegistryDevice> devices;
  int64_t host_budget = 0;   // bytes of weights the host tier may hold
  // How long a placement waits for requests to let go of models it must
  // evict before it gives up with ResourceExhausted.
  absl::Duration hold_wait = absl::Seconds(10);
};

// Owns every model of a repository, its state machine, the VRAM budget of
// each execution device and the host tier. Every swap-in, eviction, unload
// and move to a device runs on a placement worker (see Placement workers
// below); jobs a request waits on go first.
//
// Several devices (--device cuda:0,cuda:1 or sim:0,sim:1): each has its own
// budget and its own executor (one forward at a time, see Batcher); a model
// has at most one device copy, on the device the placement policy chose:
//
//   1. Candidates: the devices its config pins it to (`devices: [0, 2]`),
//      else all; never a lost device. A pin to a device the server does not
//      have is FailedPrecondition, never a silent move elsewhere.
//   2. A device where it fits beside what is there now, without evicting
//      anything: the one with the most budget left after placing it. Free
//      memory is never worth an eviction.
//   3. Else the device whose eviction set is smallest in bytes, the set
//      being idle (no request holds them), unpinned models taken least
//      recently used first until it fits: the fewest bytes to copy back in
//      later, and the coldest models go.
//   4. Else a device where it fits once models that requests hold now have
//      finished their batches (they close and take turns, see MakeRoom): the
//      one with the fewest such bytes, so its waiters wait least.
//   5. It fits on no candidate even with every other model gone:
//      ResourceExhausted before any byte moves, naming each device's budget.
// Ties go to the lower device index.
//
// Placement workers. With one device, every swap-in, eviction, unload and
// move runs on one worker, one at a time. With several, each device also has
// a lane: a placement's device is chosen when it is queued (under the lock,
// counting placements chosen earlier and not yet admitted as already there),
// and the placement (making room, the copy, warm-up) runs on that device's
// lane, so swap-ins on two devices overlap, and a placement waiting for
// turns on one device holds back none on another. Jobs that may touch any
// device (unloads, a lost device, replicas, eviction for an OOM, and a
// placement the policy refuses, whose refusal is made and reported there)
// run on the global worker, alone: it waits for the lanes' running jobs and
// they for it (a reader/writer lock), so they never see a device mid-change.
// Within a lane, everything that lane does to its device is serial, so
// MakeRoom's view of its device stays true while it acts; each state change
// checks the state it starts from in the same step under the lock
// (TransitionFrom), and a model whose placement is pending is never dropped
// from the host tier.
//
// Reading a model from disk into host memory (LOADING)
// touches no device memory and may block for as long as its storage does, so
// each read runs on a thread of its own: a stuck read holds that thread and
// that model, never a placement worker or another model.
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
  // on the device `keep` is on (on every device if it is on none) to the
  // host tier, through the placement queue ahead of background work;
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

  // `device` (a name, "sim:1") failed for good: a sticky error (CUDA illegal
  // memory access and the like) makes every later call on it fail. Its
  // models lose their device copy (the memory cannot be read back) and are
  // read again from disk onto the remaining devices, at once; requests in
  // flight on it fail (the Batcher's part) and later ones wait for the new
  // placement. No later placement chooses it. Returns at once (the moves
  // run on the placement worker, ahead of background work); idempotent;
  // unknown names are ignored. The last device serving is never marked
  // lost: with nowhere to move to, the Batcher refuses new work and
  // liveness has the process restarted, as on a one-device server.
  void DeviceLost(const std::string& device, const absl::Status& error) ABSL_LOCKS_EXCLUDED(mu_);
  // Devices not lost.
  int DevicesServing() const ABSL_LOCKS_EXCLUDED(mu_);

  // `name`'s queue has stayed longer than its device serves (the Batcher
  // asks): a replica is placed on another device if its config allows one
  // more (max_replicas) and a device can take it where it fits, or by
  // evicting only idle models, never one in use. Runs in the background
  // (the read on a read thread, the move on the placement worker); asking
  // again while one is under way, or within a few seconds of the last try,
  // does nothing. Requests then go to the copy with the fewest queued
  // tokens (SetQueueProbe).
  // Replicas are never offloaded: an idle one is the first model evicted
  // from its device when room is needed, a primary with replicas is evicted
  // only after them, and an unload or a lost device drops them.
  void RequestReplica(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // Work queued for a forward on each device copy of `model`, by device name
  // (Batcher::Queued). With it, a request for a model with replicas goes to
  // the copy with the fewest queued tokens (then the fewest requests in
  // flight, then the primary); without it, to the copy the fewest requests
  // hold. Set once, before requests arrive.
  using QueueProbe =
      std::function<absl::flat_hash_map<std::string, QueuedWork>(const std::string& model)>;
  void SetQueueProbe(QueueProbe probe) ABSL_LOCKS_EXCLUDED(mu_);
  int device_count() const { return static_cast<int>(devices_.size()); }

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
    // Index of the device its weights are admitted to (from the start of a
    // placement until eviction or unload); -1: none.
    int device = -1;
    // With several devices: the device chosen for a placement queued on that
    // device's lane and not yet finished (-1: none), and why (a Fit). Other
    // choices count it as resident there; the host budget never drops it.
    int pending_device = -1;
    int pending_fit = 0;
    // Device copies besides the primary (config max_replicas); only while
    // the primary is READY.
    struct Replica {
      int id = 0;
      int device = 0;
      std::shared_ptr<LoadedModel> loaded;
      int in_use = 0;
    };
    std::vector<Replica> replicas;
    int next_replica_id = 1;
    // A replica read or placement under way, and when the last one ended
    // (requests are rate-limited; see RequestReplica).
    bool replicating = false;
    absl::Time last_replica_try = absl::InfinitePast();
  };
  // The snapshot of `entry` the API shows: its info with its copies.
  ModelInfo InfoOf(const Entry& entry) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes replica `index` of `entry` off its device (its handles must be
  // gone, or its device lost); returns the event to report. Its copy goes
  // into `freed` if given, so that its memory is freed once the caller has
  // let go of the lock.
  PlacementEvent DropReplica(Entry& entry, size_t index,
                             std::vector<std::shared_ptr<LoadedModel>>* freed = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops every idle replica on `device` (-1: on every device) of models
  // other than `keep`; returns the events.
  std::vector<PlacementEvent> DropIdleReplicas(int device, const std::string& keep,
                                               std::vector<std::shared_ptr<LoadedModel>>* freed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DoPlaceReplica(const std::string& name, std::shared_ptr<LoadedModel> built)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Why ChooseDevice took a device, best first.
  enum class Fit { kFree = 0, kEvict = 1, kWait = 2 };
  struct Choice {
    int device = 0;
    Fit fit = Fit::kFree;
  };
  static absl::string_view FitName(Fit fit);
  // The placement policy (see the class comment) for `name`.
  // `replica`: for a replica of `name`: devices with a copy of it are no
  // candidates, and neither is one where room would mean waiting for
  // requests (Fit::kWait); idle replicas of other models count as evictable.
  absl::StatusOr<Choice> ChooseDevice(const std::string& name, int64_t weights, int64_t reserve,
                                      bool replica = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FailedPrecondition when `name`'s config pins it to a device index the
  // server lacks (on the plain CPU too, where nothing else is chosen).
  absl::Status CheckPins(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Free bytes `device` has for new allocations: its free memory (other
  // processes count) and its allocator's cache.
  int64_t PhysicallyFree(int device) const;
  int DeviceIndex(const std::string& device) const;
  // What the server executes on, for config defaults: devices of one server
  // are of one kind.
  ServerDevices server_devices() const {
    return options_.device->has_budget() ? ServerDevices::kAccelerator : ServerDevices::kCpu;
  }

  ModelRegistry(ModelRepository repository, ModelLoader* loader, RegistryOptions options);

  void Rescan() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status EnsureKnown(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ModelInfo> Snapshot(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  // A handle on `name`'s copy `replica` (0: the primary) went away.
  void Release(const std::string& name, int replica) ABSL_LOCKS_EXCLUDED(mu_);
  // READY and giving out handles (not unloading, turn not ending).
  bool Servable(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const PlacementQueue::Job> SubmitPlace(const std::string& name, bool urgent)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A job that may touch any device (unload, lost device, replica, evicting
  // for an OOM, a placement whose device is not chosen yet): it runs alone,
  // once no lane job runs.
  std::shared_ptr<const PlacementQueue::Job> SubmitGlobal(const std::string& key,
                                                          std::function<absl::Status()> work,
                                                          bool urgent = false);
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

  // Placement work (model_placement.cc); run only on the placement workers.
  // `lane`: the device a lane job places it on (its pending_device), or -1
  // on the global worker, which chooses.
  absl::Status DoPlace(const std::string& name, int lane = -1) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DoLoadToHost(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // Reads take turns, so host memory holds one model being read at a time,
  // as when reads ran on the placement worker; a read running longer than
  // kReadStall (slow or stuck storage) stops holding the others back.
  void TakeReadSlot(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  void GiveBackReadSlot(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MakeRoom(const std::string& name, int device, int64_t weights, int64_t reserve)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Evict(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WarmUp(const std::string& name, LoadedModel& loaded) ABSL_LOCKS_EXCLUDED(mu_);
  void EnforceHostBudget() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DoUnload(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<LoadedModel>> Build(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Reads another copy of `name`'s READY primary: its files as the primary
  // read them (config, tokenizer and labels shared, not read again), refused
  // with FailedPrecondition when its model file changed on disk since, for
  // the copy would then run other weights under the same name.
  absl::StatusOr<std::shared_ptr<LoadedModel>> BuildReplica(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Every state change goes through SetState, so no edge bypasses
  // IsLegalTransition; Transition also tells the listeners.
  void Transition(const std::string& name, ModelState to, const std::string& error = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  // Transition only if the model is in state `from` now, checked and changed
  // in one step under the lock; false (and nothing changes) otherwise.
  bool TransitionFrom(const std::string& name, ModelState from, ModelState to)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SetState(Entry& entry, ModelState to, const std::string& error = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // READY -> EVICTING under the lock, so no request takes a handle from now
  // on; Evict tells the listeners.
  void ClaimForEviction(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(const PlacementEvent& event) ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the state listeners of `name` as it is now (its copies changed
  // without a state change).
  void Publish(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  const ModelRepository repository_;
  ModelLoader* const loader_;
  const RegistryOptions options_;

  // Exclusive use of the CPU for warm-ups of models that execute there.
  absl::Mutex execution_mu_;
  // The execution devices, fixed at construction.
  struct DeviceSlot {
    Device* device = nullptr;
    // One batch on the device at a time (see LoadedModel::execution_mu).
    absl::Mutex execution_mu;
  };
  std::vector<std::unique_ptr<DeviceSlot>> devices_;

  mutable absl::Mutex mu_;
  // Node map: an Entry stays put while DoUnload waits on it with mu_ released.
  absl::node_hash_map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
  std::vector<DeviceBudget> budgets_ ABSL_GUARDED_BY(mu_);  // one per device
  std::vector<bool> lost_ ABSL_GUARDED_BY(mu_);             // one per device
  // Reads from disk holding a read slot, by model, with when they started;
  // bumped `read_releases_` wakes the ones waiting for a slot.
  absl::flat_hash_map<std::string, absl::Time> reads_started_ ABSL_GUARDED_BY(mu_);
  int64_t read_releases_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<StateListener> state_listeners_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const QueueProbe> queue_probe_ ABSL_GUARDED_BY(mu_);
  // Replicas on devices now, all models: requests look at queues only then.
  std::atomic<int> replicas_placed_{0};
  std::vector<PlacementListener> placement_listeners_ ABSL_GUARDED_BY(mu_);

  // Destroyed in reverse order: reads first (their callbacks may submit
  // placements and cancel timers), then placements (whose cancelled jobs'
  // callbacks may cancel timers), then the timer. Last declared, so nothing
  // runs on a dying registry.
  std::atomic<bool> shutting_down_{false};
  // Held shared by a lane job while it runs, exclusively by a global one.
  absl::Mutex lanes_mu_;
  DeadlineTimer timer_;
  // With several budgeted devices, one placement lane per device: placements
  // whose device is chosen run there, in parallel with other devices' (see
  // the class comment). Empty with one device: everything is global.
  std::vector<std::unique_ptr<PlacementQueue>> lanes_;
  PlacementQueue placements_;  // the global worker
  BlockingJobs reads_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_REGISTRY_H_
