#include "server/core/batcher.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/thread_name.h"

namespace bertserve::core {
namespace {

constexpr char kDeviceLostPayload[] = "type.bertserve.dev/device-lost";


// Longest an executor waits for idle models to be evicted for one input.
constexpr absl::Duration kEvictionWait = absl::Seconds(2);

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// How long a model's inputs must keep waiting for its device (at nearly
// every batch) before the batcher asks for a replica: long enough that a
// burst the device drains in a few batches does not count.
constexpr absl::Duration kReplicaBacklog = absl::Seconds(1);
// Of the window's batches, at least this many, and at least this share of
// them saturated.
constexpr int kReplicaMinBatches = 8;
constexpr double kReplicaSaturatedShare = 0.8;

// Batcher::mu_ guards most fields of a ModelQueue and an Executor, but the
// thread-safety analysis cannot name an enclosing object's mutex from a nested
// struct. So each keeps a reference to it, `mu`, which its annotations name,
// and a Batcher method holding mu_ calls Guarded(mu_) before touching them:
// the call requires mu_ (checked when compiled) and asserts `mu`, which is
// the same mutex (checked when run). The assertion lasts to the end of the
// calling function: call it only where mu_ stays held that long.
struct GuardedByBatcher {
  explicit GuardedByBatcher(const absl::Mutex* batcher_mu) : mu(*batcher_mu) {}
  void Guarded(const absl::Mutex& held) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(held)
      ABSL_ASSERT_EXCLUSIVE_LOCK(mu) {
    if (&held != &mu) std::abort();
  }
  const absl::Mutex& mu;
};

}  // namespace

InputBatch PadInputs(const std::vector<const EncodedInput*>& rows, int32_t pad_id) {
  InputBatch batch;
  batch.batch_size = static_cast<int64_t>(rows.size());
  for (const EncodedInput* input : rows) {
    batch.sequence_length = std::max<int64_t>(batch.sequence_length, input->ids.size());
  }
  const size_t cells = batch.batch_size * batch.sequence_length;
  batch.input_ids.assign(cells, pad_id);
  batch.attention_mask.assign(cells, 0);
  batch.token_type_ids.assign(cells, 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    const EncodedInput& input = *rows[r];
    const size_t row = r * batch.sequence_length;
    for (size_t t = 0; t < input.ids.size(); ++t) {
      batch.input_ids[row + t] = input.ids[t];
      batch.attention_mask[row + t] = 1;
      batch.token_type_ids[row + t] = input.type_ids[t];
    }
  }
  return batch;
}

bool IsDeviceLost(const absl::Status& status) {
  return status.GetPayload(kDeviceLostPayload).has_value();
}

absl::Status MarkDeviceLost(absl::Status status) {
  status.SetPayload(kDeviceLostPayload, absl::Cord("1"));
  return status;
}

// One Submit's inputs. Touched only by the executor of its model's device
// (and by the destructor once executors are gone), so it needs no lock.
struct Batcher::Request {
  ModelHandle model;
  std::vector<EncodedInput> inputs;
  std::vector<LogitsRow> rows;
  size_t remaining = 0;
  absl::Status error;
  absl::Time first_forward = absl::InfiniteFuture();
  Done done;
};

struct Batcher::Item {
  std::shared_ptr<Request> request;
  size_t index = 0;
  int64_t tokens = 0;
  absl::Time enqueued;
  absl::Time deadline;

  const EncodedInput& input() const { return request->inputs[index]; }
};

struct Batcher::ModelQueue : GuardedByBatcher {
  using GuardedByBatcher::GuardedByBatcher;
  std::string name;  // set before the queue is published, then constant
  // The queue of a replica (LoadedModel::replica), set with `name`. Its
  // depth and token limit are not reported: the model's metrics follow its
  // primary copy.
  bool replica = false;
  // The load over the current window of kReplicaBacklog: batches taken,
  // and those whose oldest input had waited for the device (it arrived
  // before the previous batch ended) or that left a full batch behind.
  absl::Time window_start ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  int window_batches ABSL_GUARDED_BY(mu) = 0;
  int window_saturated ABSL_GUARDED_BY(mu) = 0;
  absl::Time last_batch_end ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  std::string device ABSL_GUARDED_BY(mu);
  std::deque<Item> items ABSL_GUARDED_BY(mu);
  int64_t queued_tokens ABSL_GUARDED_BY(mu) = 0;
  // Tokens (longest x rows) per forward, adaptive.
  int64_t limit ABSL_GUARDED_BY(mu) = 0;
  // The ceiling: the proven limit (configured or lower).
  int64_t max_limit ABSL_GUARDED_BY(mu) = 0;
  int64_t proven ABSL_GUARDED_BY(mu) = 0;  // what the model's placement proved
  int successes ABSL_GUARDED_BY(mu) = 0;   // forwards in a row without OOM
  absl::Duration delay ABSL_GUARDED_BY(mu) = absl::ZeroDuration();
  // Counts changes of `items`, so that depth reports keep their order.
  int64_t depth_version ABSL_GUARDED_BY(mu) = 0;
};

struct Batcher::Executor : GuardedByBatcher {
  using GuardedByBatcher::GuardedByBatcher;
  std::string device;  // set before the executor is published, then constant
  std::vector<ModelQueue*> models ABSL_GUARDED_BY(mu);  // round-robin order
  size_t next ABSL_GUARDED_BY(mu) = 0;
  absl::CondVar wake;
  // Started under mu_ when the executor is made; joined by Stop, outside mu_,
  // once stopping_ keeps anyone else from touching it.
  std::thread thread;
};

// Observer calls decided while mu_ is held and made once it is released, so
// that no observer (metrics, a log line) runs under the batcher's lock. They
// are made by Flush, or by the destructor: declare one before the MutexLock it
// outlives.
class Batcher::ObserverCalls {
 public:
  explicit ObserverCalls(Batcher* batcher) : batcher_(batcher) {}
  ~ObserverCalls() { Flush(); }
  ObserverCalls(const ObserverCalls&) = delete;
  ObserverCalls& operator=(const ObserverCalls&) = delete;

  void TokenLimit(const std::string& model, int64_t tokens, int change) {
    Add(Call{Call::kTokenLimit, model, tokens, change, 0});
  }
  void Queued(const std::string& model, double seconds) {
    Add(Call{Call::kQueued, model, 0, 0, seconds});
  }
  // `version`: the queue's depth_version when it held `inputs`.
  void QueueDepth(const std::string& model, int64_t inputs, int64_t version) {
    Add(Call{Call::kQueueDepth, model, inputs, 0, 0, version});
  }

  void Flush() ABSL_LOCKS_EXCLUDED(batcher_->mu_, batcher_->depth_mu_) {
    BatchObserver* const observer = batcher_->options_.observer;
    for (const Call& call : calls_) {
      switch (call.kind) {
        case Call::kTokenLimit:
          observer->OnTokenLimit(call.model, call.value, call.change);
          break;
        case Call::kQueued:
          observer->OnQueued(call.model, call.seconds);
          break;
        case Call::kQueueDepth: {
          absl::MutexLock lock(&batcher_->depth_mu_);
          int64_t& reported = batcher_->reported_depth_[call.model];
          if (call.version > reported) {
            reported = call.version;
            observer->OnQueueDepth(call.model, call.value);
          }
          break;
        }
      }
    }
    calls_.clear();
  }

 private:
  struct Call {
    enum Kind { kTokenLimit, kQueued, kQueueDepth } kind;
    std::string model;
    int64_t value = 0;  // tokens or inputs
    int change = 0;
    double seconds = 0;
    int64_t version = 0;
  };
  void Add(Call call) {
    if (batcher_->options_.observer != nullptr) calls_.push_back(std::move(call));
  }

  Batcher* const batcher_;
  std::vector<Call> calls_;
};

Batcher::Batcher(ModelRegistry* registry, BatcherOptions options)
    : registry_(registry), options_(std::move(options)) {}

Batcher::~Batcher() { Stop(); }

void Batcher::Stop() {
  std::vector<std::thread*> threads;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [name, executor] : executors_) {
      executor->wake.SignalAll();
      threads.push_back(&executor->thread);
    }
  }
  // No executor is added or removed once stopping_ is set (Submit refuses).
  for (std::thread* thread : threads) thread->join();
  std::vector<Item> left;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, queue] : queues_) {
      queue->Guarded(mu_);
      for (Item& item : queue->items) left.push_back(std::move(item));
      queue->items.clear();
    }
  }
  for (const Item& item : left) Finish(item, absl::UnavailableError("the server is shutting down"));
}

Batcher::Executor* Batcher::ExecutorFor(const std::string& device) {
  std::unique_ptr<Executor>& slot = executors_[device];
  if (slot == nullptr) {
    slot = std::make_unique<Executor>(&mu_);
    slot->device = device;
    Executor* executor = slot.get();
    executor->thread = std::thread([this, executor, device] {
      NameThisThread(absl::StrCat("exec-", device));
      Run(executor);
    });
  }
  return slot.get();
}

absl::Status Batcher::Submit(ModelHandle model, std::vector<EncodedInput> inputs,
                             absl::Time deadline, Done done) {
  if (inputs.empty()) return absl::InvalidArgumentError("no inputs to batch");
  const LoadedModel& loaded = *model;
  int64_t tokens = 0;
  for (const EncodedInput& input : inputs) tokens += static_cast<int64_t>(input.ids.size());
  const int64_t count = static_cast<int64_t>(inputs.size());

  auto request = std::make_shared<Request>();
  request->model = std::move(model);
  request->inputs = std::move(inputs);
  request->rows.resize(request->inputs.size());
  request->remaining = request->inputs.size();
  request->done = std::move(done);

  ObserverCalls calls(this);  // declared before the lock: runs once it is released
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  if (lost_devices_.contains(loaded.model->device())) {
    return absl::UnavailableError(absl::StrCat(
        "the execution device ", loaded.model->device(), " failed; ",
        registry_->device_count() > static_cast<int>(lost_devices_.size())
            ? "its models are being placed on the other devices"
            : "the server is restarting"));
  }
  // A replica has a queue of its own, served by its device's executor (one
  // per model and device, so replicas coming and going add no queues).
  std::unique_ptr<ModelQueue>& slot =
      queues_[loaded.replica == 0 ? loaded.name
                                  : absl::StrCat(loaded.name, "@", loaded.model->device())];
  const bool fresh = slot == nullptr;
  if (fresh) {
    slot = std::make_unique<ModelQueue>(&mu_);
    slot->name = loaded.name;
    slot->replica = loaded.replica != 0;
  }
  ModelQueue& queue = *slot;
  queue.Guarded(mu_);
  if (fresh) queue.device = loaded.model->device();
  // A model placed anew on another device (its config moved it to or from
  // the CPU) changes executor once its queue has drained; until then the
  // old executor finishes what is queued.
  bool moved = false;
  if (!fresh && queue.items.empty() && queue.device != loaded.model->device()) {
    Executor* old = ExecutorFor(queue.device);
    old->Guarded(mu_);
    old->models.erase(std::remove(old->models.begin(), old->models.end(), &queue),
                      old->models.end());
    if (old->next >= old->models.size()) old->next = 0;
    queue.device = loaded.model->device();
    moved = true;
  }
  // The config (and the limit warm-up proved) of the newest placement rule.
  const v1::BatchLimits& batch = loaded.config.batch();
  queue.max_limit = batch.max_batch_tokens();
  // Work-conserving by default (0): an idle executor runs whatever is
  // queued now, and inputs that arrive during a forward form the next batch;
  // a positive delay is an extra wait for fuller batches, asked for.
  queue.delay = absl::Microseconds(std::max<int64_t>(0, batch.max_queue_delay_us()));
  // The ceiling is what warm-up proved (the configured limit, or less). A
  // placement that proved more, or on another device, starts the limit there:
  // the OOMs that lowered it happened under other conditions. One that proved
  // less caps it.
  const int64_t proven = loaded.token_limit > 0 ? std::min(loaded.token_limit, queue.max_limit)
                                                : queue.max_limit;
  if (fresh || moved || proven != queue.proven) {
    const int64_t before = queue.limit;
    if (fresh || moved || proven > queue.proven) {
      queue.limit = proven;
      queue.successes = 0;
    } else {
      queue.limit = std::min(queue.limit, proven);
    }
    queue.proven = proven;
    if (!queue.replica) {
      calls.TokenLimit(queue.name, queue.limit,
                       fresh ? 0 : (queue.limit > before) - (queue.limit < before));
    }
  }
  queue.max_limit = proven;

  // The four bounds: what the queue holds now, what this request adds, the
  // bound and its flag.
  struct Bound {
    std::string what;
    absl::string_view unit;
    int64_t have;
    int64_t want;
    int64_t bound;
    absl::string_view flag;
  };
  const std::string model_queue = absl::StrCat("model \"", queue.name, "\"'s queue");
  const Bound bounds[] = {
      {model_queue, "inputs", static_cast<int64_t>(queue.items.size()), count,
       options_.max_queued_inputs_per_model, "--max-queued-inputs-per-model"},
      {model_queue, "tokens", queue.queued_tokens, tokens, options_.max_queued_tokens_per_model,
       "--max-queued-tokens-per-model"},
      {"the server's queues", "inputs", queued_inputs_, count, options_.max_queued_inputs,
       "--max-queued-inputs"},
      {"the server's queues", "tokens", queued_tokens_, tokens, options_.max_queued_tokens,
       "--max-queued-tokens"},
  };
  // First a request that a bound could never hold, even with the queues
  // empty: retrying it would fail forever, so it is told what would help.
  for (const Bound& b : bounds) {
    if (b.want <= b.bound) continue;
    return absl::ResourceExhaustedError(absl::StrCat(
        "this request alone is too large for ", b.what, ": it adds ", b.want, " ", b.unit,
        " and the bound is ", b.bound, " (", b.flag, "); ",
        count > 1 ? "split it into smaller requests, or raise the bound"
                  : "raise the bound, or send shorter text"));
  }
  for (const Bound& b : bounds) {
    if (b.have + b.want <= b.bound) continue;
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue full: ", b.what, " holds ", b.have, " ", b.unit, " and this request adds ",
        b.want, ", over the bound of ", b.bound, "; retry later"));
  }

  const absl::Time now = absl::Now();
  for (size_t i = 0; i < request->inputs.size(); ++i) {
    Item item;
    item.request = request;
    item.index = i;
    item.tokens = static_cast<int64_t>(request->inputs[i].ids.size());
    item.enqueued = now;
    item.deadline = deadline;
    queue.items.push_back(std::move(item));
  }
  queue.queued_tokens += tokens;
  queued_inputs_ += count;
  queued_tokens_ += tokens;
  if (!queue.replica) {
    calls.QueueDepth(queue.name, static_cast<int64_t>(queue.items.size()),
                     ++queue.depth_version);
  }
  Executor* executor = ExecutorFor(queue.device);
  executor->Guarded(mu_);
  if (std::find(executor->models.begin(), executor->models.end(), &queue) ==
      executor->models.end()) {
    executor->models.push_back(&queue);
  }
  executor->wake.Signal();
  return absl::OkStatus();
}

int64_t Batcher::TokenLimit(const std::string& model) const {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(model);
  if (it == queues_.end()) return 0;
  it->second->Guarded(mu_);
  return it->second->limit;
}

absl::flat_hash_map<std::string, QueuedWork> Batcher::Queued(const std::string& model) const {
  absl::flat_hash_map<std::string, QueuedWork> by_device;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, queue] : queues_) {
    if (queue->name != model) continue;
    queue->Guarded(mu_);
    if (queue->items.empty()) continue;
    QueuedWork& work = by_device[queue->device];
    work.inputs += static_cast<int64_t>(queue->items.size());
    work.tokens += queue->queued_tokens;
  }
  return by_device;
}

void Batcher::Run(Executor* executor) {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time now = absl::Now();
    absl::Time wake = absl::InfiniteFuture();
    ModelQueue* queue = NextDue(executor, now, &wake);
    if (queue == nullptr) {
      executor->wake.WaitWithDeadline(&mu_, wake);
      continue;
    }
    std::vector<Item> expired;
    ObserverCalls calls(this);
    bool wants_replica = false;
    std::vector<Item> batch = TakeBatch(queue, now, &expired, &calls, &wants_replica);
    mu_.Unlock();
    calls.Flush();
    if (wants_replica) registry_->RequestReplica(queue->name);
    for (const Item& item : expired) {
      if (options_.observer) options_.observer->OnExpired(queue->name);
      Finish(item, absl::DeadlineExceededError(
                       "the request deadline passed while it waited for a batch"));
    }
    if (!batch.empty()) Execute(queue, std::move(batch), /*may_evict=*/true);
    // Model handles go back to the registry outside our lock.
    expired.clear();
    batch.clear();
    mu_.Lock();
    queue->Guarded(mu_);
    queue->last_batch_end = absl::Now();
  }
}

Batcher::ModelQueue* Batcher::NextDue(Executor* executor, absl::Time now, absl::Time* wake) {
  executor->Guarded(mu_);
  const size_t n = executor->models.size();
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (executor->next + k) % n;
    ModelQueue* queue = executor->models[i];
    queue->Guarded(mu_);
    if (queue->items.empty()) continue;
    const Item& oldest = queue->items.front();
    // An input whose deadline comes before the delay ends does not wait.
    const absl::Time due = oldest.deadline < oldest.enqueued + queue->delay
                               ? oldest.enqueued
                               : oldest.enqueued + queue->delay;
    // A full batch waits for nothing; neither does one whose wait is over.
    if (queue->queued_tokens >= queue->limit || due <= now) {
      executor->next = (i + 1) % n;
      return queue;
    }
    *wake = std::min(*wake, due);
  }
  return nullptr;
}

std::vector<Batcher::Item> Batcher::TakeBatch(ModelQueue* queue, absl::Time now,
                                              std::vector<Item>* expired, ObserverCalls* calls,
                                              bool* wants_replica) {
  queue->Guarded(mu_);
  std::deque<Item>& items = queue->items;
  auto dequeue = [&](const Item& item) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    queue->Guarded(mu_);
    queue->queued_tokens -= item.tokens;
    queued_tokens_ -= item.tokens;
    --queued_inputs_;
  };
  // Expired inputs leave first, wherever they are in the queue.
  for (auto it = items.begin(); it != items.end();) {
    if (it->deadline <= now) {
      dequeue(*it);
      expired->push_back(std::move(*it));
      it = items.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<Item> batch;
  if (items.empty()) {
    if (!queue->replica) calls->QueueDepth(queue->name, 0, ++queue->depth_version);
    return batch;
  }
  // Saturated: the oldest input had to wait for the device.
  const bool waited = items.front().enqueued < queue->last_batch_end;
  // The oldest input always goes; the rest are picked from the window by
  // closeness of length, from the same placement of the model.
  const Item& oldest = items.front();
  const LoadedModel* model = oldest.request->model.get();
  const size_t window =
      std::min(items.size(), static_cast<size_t>(std::max(1, options_.packing_window)));
  std::vector<size_t> candidates;
  for (size_t i = 1; i < window; ++i) {
    if (items[i].request->model.get() == model) candidates.push_back(i);
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](size_t a, size_t b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue->mu) {
                     return std::llabs(items[a].tokens - oldest.tokens) <
                            std::llabs(items[b].tokens - oldest.tokens);
                   });
  std::vector<bool> chosen(window, false);
  chosen[0] = true;
  int64_t longest = oldest.tokens;
  int64_t rows = 1;
  int64_t real = oldest.tokens;
  for (size_t i : candidates) {
    const int64_t next_longest = std::max(longest, items[i].tokens);
    const int64_t padded = next_longest * (rows + 1);
    if (padded > queue->limit) continue;
    // An input that would pad the batch below the efficiency floor waits
    // for a batch of its own length (the next one, usually).
    if (static_cast<double>(real + items[i].tokens) <
        options_.min_padding_efficiency * static_cast<double>(padded)) {
      continue;
    }
    chosen[i] = true;
    longest = next_longest;
    real += items[i].tokens;
    ++rows;
  }
  std::deque<Item> rest;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i < window && chosen[i]) {
      dequeue(items[i]);
      calls->Queued(queue->name, Seconds(now - items[i].enqueued));
      batch.push_back(std::move(items[i]));
    } else {
      rest.push_back(std::move(items[i]));
    }
  }
  items.swap(rest);
  if (!queue->replica) {
    calls->QueueDepth(queue->name, static_cast<int64_t>(items.size()), ++queue->depth_version);
  }
  // Sustained load, not a spike: when nearly every batch of a window of
  // kReplicaBacklog found inputs waiting for the device (or left a full
  // batch behind), the batcher asks for a replica (the registry decides
  // whether one is allowed and fits).
  if (now - queue->window_start >= kReplicaBacklog) {
    *wants_replica = queue->window_batches >= kReplicaMinBatches &&
                     queue->window_saturated >= kReplicaSaturatedShare * queue->window_batches;
    queue->window_start = now;
    queue->window_batches = 0;
    queue->window_saturated = 0;
  }
  ++queue->window_batches;
  if (waited || queue->queued_tokens >= queue->limit) ++queue->window_saturated;
  return batch;
}

void Batcher::Execute(ModelQueue* queue, std::vector<Item> items, bool may_evict) {
  // Inputs whose deadline passed (during an earlier half, say) never run.
  const absl::Time start = absl::Now();
  std::vector<Item> live;
  for (Item& item : items) {
    if (item.deadline <= start) {
      if (options_.observer) options_.observer->OnExpired(queue->name);
      Finish(item, absl::DeadlineExceededError(
                       "the request deadline passed while it waited for a batch"));
    } else {
      live.push_back(std::move(item));
    }
  }
  if (live.empty()) return;
  // Shortest first, so that halves after an OOM group similar lengths.
  std::stable_sort(live.begin(), live.end(),
                   [](const Item& a, const Item& b) { return a.tokens < b.tokens; });
  const LoadedModel& model = *live.front().request->model;

  std::vector<const EncodedInput*> rows;
  int64_t real_tokens = 0;
  for (const Item& item : live) {
    rows.push_back(&item.input());
    real_tokens += item.tokens;
    item.request->first_forward = std::min(item.request->first_forward, start);
  }
  const InputBatch batch = PadInputs(rows, model.tokenizer->pad_id());
  const int64_t cost = batch.batch_size * batch.sequence_length;

  absl::StatusOr<Logits> logits;
  if (model.execution_mu != nullptr) {
    absl::MutexLock exclusive(model.execution_mu);
    logits = model.model->Forward(batch);
  } else {
    logits = model.model->Forward(batch);
  }
  if (options_.observer) {
    options_.observer->OnBatch(queue->name, static_cast<int>(batch.batch_size), cost, real_tokens,
                               Seconds(absl::Now() - start));
  }

  if (logits.ok()) {
    AdjustLimit(queue, /*oom=*/false, cost);
    for (size_t r = 0; r < live.size(); ++r) {
      const float* row = logits->values.data() + r * logits->cols;
      Finish(live[r], LogitsRow(row, row + logits->cols));
    }
    return;
  }
  const absl::Status& error = logits.status();
  if (absl::IsResourceExhausted(error)) {
    if (options_.observer) options_.observer->OnOom(queue->name, cost, error);
    if (live.size() > 1) {
      // Only a batch's OOM says the limit is too high; one input alone runs
      // whatever the limit.
      AdjustLimit(queue, /*oom=*/true, cost);
      if (options_.observer) options_.observer->OnSplit(queue->name);
      const size_t half = live.size() / 2;
      std::vector<Item> second(std::make_move_iterator(live.begin() + half),
                               std::make_move_iterator(live.end()));
      live.resize(half);
      Execute(queue, std::move(live), may_evict);
      Execute(queue, std::move(second), may_evict);
      return;
    }
    if (may_evict) {
      // One input alone does not fit: give it the whole device and try once
      // more. The wait is bounded: the placement worker may itself be waiting
      // for requests this executor has queued to let go of their models.
      (void)registry_->EvictIdle(model.name, std::min(live.front().deadline,
                                                      absl::Now() + kEvictionWait));
      Execute(queue, std::move(live), /*may_evict=*/false);
      return;
    }
    Finish(live.front(),
           absl::ResourceExhaustedError(absl::StrCat(
               "an input of ", live.front().tokens, " tokens does not fit on ",
               model.model->device(), " even alone, with every idle model evicted: ",
               error.message())));
    return;
  }
  if (IsDeviceLost(error)) {
    const std::string device = model.model->device();
    bool first = false, others = false;
    {
      absl::MutexLock lock(&mu_);
      first = lost_devices_.insert(device).second;
      others = registry_->device_count() > static_cast<int>(lost_devices_.size());
    }
    if (first) {
      registry_->DeviceLost(device, error);
      if (options_.on_device_lost) options_.on_device_lost(error);
    }
    for (const Item& item : live) {
      Finish(item, absl::UnavailableError(absl::StrCat(
                       "the execution device ", device, " failed; ",
                       others ? "the request may be retried (its model is being placed on "
                                "another device)"
                              : "the server is restarting",
                       ": ", error.message())));
    }
    return;
  }
  for (const Item& item : live) Finish(item, error);
}

void Batcher::AdjustLimit(ModelQueue* queue, bool oom, int64_t failed_cost) {
  int64_t limit = 0;
  int change = 0;
  {
    absl::MutexLock lock(&mu_);
    queue->Guarded(mu_);
    if (oom) {
      queue->successes = 0;
      const int64_t lowered = std::max<int64_t>(1, std::min(queue->limit, failed_cost / 2));
      if (lowered < queue->limit) {
        queue->limit = lowered;
        change = -1;
      }
    } else if (queue->limit < queue->max_limit &&
               ++queue->successes >= options_.probe_after_successes) {
      queue->successes = 0;
      queue->limit =
          std::min(queue->max_limit, queue->limit + std::max<int64_t>(1, queue->limit / 4));
      change = 1;
    }
    limit = queue->limit;
  }
  if (change != 0 && options_.observer && !queue->replica) {
    options_.observer->OnTokenLimit(queue->name, limit, change);
  }
}

void Batcher::Finish(const Item& item, absl::StatusOr<LogitsRow> row) {
  Request& request = *item.request;
  if (row.ok()) {
    request.rows[item.index] = *std::move(row);
  } else if (request.error.ok()) {
    request.error = row.status();
  }
  if (--request.remaining > 0) return;
  Done done = std::move(request.done);
  if (!request.error.ok()) {
    done(request.error);
  } else {
    done(BatchResult{std::move(request.rows), request.first_forward});
  }
  // The request (and its model handle) goes with the last item holding it.
}

}  // namespace bertserve::core
