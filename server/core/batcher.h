#ifndef BERTSERVE_SERVER_CORE_BATCHER_H_
#define BERTSERVE_SERVER_CORE_BATCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/model_registry.h"
#include "server/core/model_runtime.h"

namespace bertserve::core {

// One tokenized input: what a batch row is made of.
struct EncodedInput {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
};

// `rows` padded with `pad_id` to the longest (attention mask 0 on padding):
// the batch a forward runs.
InputBatch PadInputs(const std::vector<const EncodedInput*>& rows, int32_t pad_id);

// One input's raw output row (fp32 logits).
using LogitsRow = std::vector<float>;

// What a request gets back: a row per input, in input order.
struct BatchResult {
  std::vector<LogitsRow> rows;
  absl::Time first_forward;  // when the first forward holding one of its inputs began
};

// What the batcher tells metrics. Every method may be called from executor
// threads and from Submit's callers, concurrently with the others;
// implementations must be thread-safe. The batcher never holds its lock while
// calling one (a call may log), but a call must not call back into the batcher.
// OnQueueDepth calls are serialized, so that the last one reports the newest
// depth: a slow one delays the others.
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // A forward that ran (or failed): rows, padded tokens (rows x longest) and
  // real tokens, and its seconds.
  virtual void OnBatch(const std::string& model, int rows, int64_t padded_tokens,
                       int64_t real_tokens, double seconds) = 0;
  // An input left its queue for a batch after `seconds` waiting.
  virtual void OnQueued(const std::string& model, double seconds) = 0;
  // A forward of `padded_tokens` ran out of memory with `error`.
  virtual void OnOom(const std::string& model, int64_t padded_tokens,
                     const absl::Status& error) = 0;
  virtual void OnSplit(const std::string& model) = 0;
  // The model's adaptive batch token limit: `change` < 0 lowered after an
  // OOM, > 0 raised after a run of successes, 0 first set.
  virtual void OnTokenLimit(const std::string& model, int64_t tokens, int change) = 0;
  // Inputs queued for the model now.
  virtual void OnQueueDepth(const std::string& model, int64_t inputs) = 0;
  // An input whose deadline passed while queued, dropped before any forward.
  virtual void OnExpired(const std::string& model) = 0;
  // A request's inputs were tokenized in `seconds` (reported by the Classifier).
  virtual void OnTokenized(const std::string& model, double seconds) = 0;
  // A request waited `seconds` for its model to be placed (loaded, swapped
  // in, or its turn on a device it shares with models that do not fit
  // beside it) before it could queue (reported by the Classifier; only for
  // requests that waited).
  virtual void OnModelWait(const std::string& model, double seconds) {}
};

struct BatcherOptions {
  // Admission bounds, in inputs and in tokens (unpadded), per model and for
  // the whole server. Past any of them Submit is ResourceExhausted at once.
  int64_t max_queued_inputs_per_model = 1024;
  int64_t max_queued_tokens_per_model = 1 << 20;
  int64_t max_queued_inputs = 4096;
  int64_t max_queued_tokens = 4 << 20;
  // Inputs, oldest first, among which a batch picks similar lengths.
  int packing_window = 64;
  // A batch takes an input only if its real tokens stay at least this share
  // of its padded tokens (longest x rows) with it.
  double min_padding_efficiency = 0.8;
  // After this many successful forwards in a row at a lowered token limit,
  // the limit is raised by a quarter (up to the configured maximum).
  int probe_after_successes = 32;
  // Called once per device, from an executor thread, when a forward fails
  // with an error that leaves the device unusable (Model::Forward's sticky
  // errors), after the registry was told (ModelRegistry::DeviceLost).
  std::function<void(const absl::Status&)> on_device_lost;
  BatchObserver* observer = nullptr;  // may be null
};

// Dynamic batching with OOM recovery, one executor thread per execution
// device.
//
// Requests hand in their tokenized inputs with a held model handle (so the
// model stays READY while they wait) and a callback. Each model has a FIFO
// queue; each device one executor that runs one forward at a time, taking
// models that have work in turn (round robin).
//
// A batch costs its longest input times its size (padded execution) and
// stays within the model's token limit. It always includes the oldest queued
// input, so nothing starves, and fills up with the inputs closest to its
// length among the oldest `packing_window`, as long as real tokens stay at
// least `min_padding_efficiency` of padded ones; the rest wait for the next
// batch. A model's batch
// is run once its queue holds a full batch or its oldest input has waited
// the model's max_queue_delay_us.
//
// Out of memory (ResourceExhausted from the forward): the batch is split into
// halves (shortest inputs together) and each is retried, recursively. The
// model's token limit drops to half the failed batch's cost and, after
// `probe_after_successes` forwards in a row succeed, rises by a quarter, up to
// the configured max_batch_tokens. A single input that still does not fit is
// retried once after every idle model has been evicted from the device; if
// that fails too, that input alone fails ResourceExhausted.
//
// An input whose deadline has passed is dropped before it reaches a forward
// (DeadlineExceeded). Thread-safe.
class Batcher {
 public:
  // Rows in input order, or the first error.
  using Done = std::function<void(absl::StatusOr<BatchResult>)>;

  // `registry` outlives the batcher.
  Batcher(ModelRegistry* registry, BatcherOptions options);
  // Stop(), then destroys.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues `inputs` (at least one) of one request; `done` then runs exactly
  // once, on an executor thread, and `model` is held until it has. Errors
  // (and `done` never runs): ResourceExhausted past an admission bound,
  // naming it; Unavailable while shutting down or after the model's device
  // was lost.
  absl::Status Submit(ModelHandle model, std::vector<EncodedInput> inputs, absl::Time deadline,
                      Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Lets each executor finish the forward it is running (a forward cannot be
  // interrupted), then fails everything still queued Unavailable without
  // running it, and joins the executors; later Submits are Unavailable.
  // Idempotent. For the end of a drain: nothing queued outlives it.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The model's batch token limit now (its configured or warm-up-proven
  // limit until the first batch), for tests and the Models API.
  int64_t TokenLimit(const std::string& model) const ABSL_LOCKS_EXCLUDED(mu_);

  // Inputs queued for `model` and not yet in a forward, by the device of the
  // copy they wait for (its primary's queue and each replica's); devices
  // with nothing queued are absent. For the Models API.
  absl::flat_hash_map<std::string, QueuedWork> Queued(const std::string& model) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Request;
  struct Item;
  struct ModelQueue;
  struct Executor;
  class ObserverCalls;  // observer calls made once mu_ is released

  Executor* ExecutorFor(const std::string& device) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(Executor* executor) ABSL_LOCKS_EXCLUDED(mu_);
  // Picks the next model with a batch to run on `executor`, or the time to
  // wait until one is due.
  ModelQueue* NextDue(Executor* executor, absl::Time now, absl::Time* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets `wants_replica` when the queue has stayed over a full batch long
  // enough to ask the registry for a replica (ModelRegistry::RequestReplica).
  std::vector<Item> TakeBatch(ModelQueue* queue, absl::Time now, std::vector<Item>* expired,
                              ObserverCalls* calls, bool* wants_replica)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Execute(ModelQueue* queue, std::vector<Item> items, bool may_evict)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Finish(const Item& item, absl::StatusOr<LogitsRow> row) ABSL_LOCKS_EXCLUDED(mu_);
  void AdjustLimit(ModelQueue* queue, bool oom, int64_t failed_cost) ABSL_LOCKS_EXCLUDED(mu_);

  ModelRegistry* const registry_;
  const BatcherOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Devices that failed for good (by name); their models' work is refused.
  absl::flat_hash_set<std::string> lost_devices_ ABSL_GUARDED_BY(mu_);
  int64_t queued_inputs_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, std::unique_ptr<ModelQueue>> queues_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Executor>> executors_ ABSL_GUARDED_BY(mu_);

  // Queue depths are reported after mu_ is released, so two reports of one
  // model can arrive out of order; each carries the version of the queue it
  // read, and an older one than the last reported is dropped.
  absl::Mutex depth_mu_;
  absl::flat_hash_map<std::string, int64_t> reported_depth_ ABSL_GUARDED_BY(depth_mu_);
};

// True for a status Model::Forward returns when the device is broken for
// good (CUDA illegal memory access and the like); see MarkDeviceLost.
bool IsDeviceLost(const absl::Status& status);
// `status` marked as a device-lost error.
absl::Status MarkDeviceLost(absl::Status status);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_BATCHER_H_
