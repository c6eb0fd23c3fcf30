#ifndef BERTSERVE_SERVER_CORE_MODEL_REGISTRY_H_
#define BERTSERVE_SERVER_CORE_MODEL_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bertserve/v1/config.pb.h"
#include "server/core/model_repository.h"
#include "server/core/model_runtime.h"
#include "server/core/model_state.h"
#include "server/core/placement_queue.h"
#include "server/tokenizer/bert_tokenizer.h"

namespace bertserve::core {

// Everything a request needs from a loaded model. Immutable once published;
// a request holds it through a ModelHandle for exactly its duration, so an
// unload never frees what a running batch uses.
struct LoadedModel {
  std::string name;
  v1::ModelConfig config;             // with defaults filled in
  std::vector<std::string> labels;    // one per logit
  std::unique_ptr<tokenizer::BertTokenizer> tokenizer;
  std::unique_ptr<Model> model;
};
using ModelHandle = std::shared_ptr<const LoadedModel>;

// A snapshot of one model for the Models API, metrics and logs.
struct ModelInfo {
  std::string name;
  ModelState state = ModelState::kUnloaded;
  std::string device;
  int64_t weight_bytes = 0;  // bytes
  std::string last_error;
  int num_labels = 0;
  std::vector<std::string> labels;
  std::vector<std::string> inputs;
  v1::ModelConfig config;
  absl::Time last_used = absl::InfinitePast();
};

// Owns every model of a repository and its state machine. Loads and unloads
// run on a PlacementQueue, one at a time; callers block until their job ends.
// Thread-safe.
class ModelRegistry {
 public:
  // Called after every state change, outside the registry lock, on the thread
  // that made the change.
  using StateListener = std::function<void(const ModelInfo&)>;

  // Scans the repository; every model starts UNLOADED (FAILED if its
  // config.pbtxt does not parse). `loader` must outlive the registry.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(
      ModelRepository repository, ModelLoader* loader);
  ~ModelRegistry();

  // Registers a listener; call before any load.
  void AddStateListener(StateListener listener) ABSL_LOCKS_EXCLUDED(mu_);

  // Loads `name` and makes it READY; returns when that is done or failed.
  // InvalidArgument for an illegal name, NotFound if not in the repository,
  // FailedPrecondition naming the file when the model is broken.
  absl::StatusOr<ModelInfo> Load(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  // Releases the model; requests that hold a handle finish first.
  absl::StatusOr<ModelInfo> Unload(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  // A handle to a READY model. NotFound for unknown models; FailedPrecondition
  // when the model is unloaded or failed; Unavailable while it is loading.
  absl::StatusOr<ModelHandle> Acquire(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<ModelInfo> Get(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  // Every model the registry knows, sorted by name; rescans the repository so
  // models added to disk appear.
  std::vector<ModelInfo> List() ABSL_LOCKS_EXCLUDED(mu_);
  // True if `name` is a model the registry knows (no rescan; cheap).
  bool Contains(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);

  // Records that a request used the model now.
  void MarkUsed(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  size_t placement_queue_depth() const { return placements_.depth(); }

 private:
  struct Entry {
    ModelInfo info;
    ModelHandle loaded;  // set while READY
  };

  ModelRegistry(ModelRepository repository, ModelLoader* loader);

  // Adds entries for repository directories not yet known.
  void Rescan() ABSL_LOCKS_EXCLUDED(mu_);
  // Finds the entry, rescanning once if the name is unknown.
  absl::Status EnsureKnown(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  // Placement work; run only on the placement worker.
  absl::Status DoLoad(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DoUnload(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<LoadedModel>> Build(const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Moves `name` to `to` (checking legality) and notifies listeners.
  void Transition(const std::string& name, ModelState to, const std::string& error = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ModelInfo> Snapshot(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);

  const ModelRepository repository_;
  ModelLoader* const loader_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
  std::vector<StateListener> listeners_ ABSL_GUARDED_BY(mu_);

  // Declared last: destroyed first, so no placement runs on a dying registry.
  PlacementQueue placements_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_REGISTRY_H_
