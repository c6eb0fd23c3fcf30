#include "tests/test_util/fake_model.h"

#include <pthread.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "bertserve/v1/config.pb.h"
#include "server/core/batcher.h"

namespace bertserve::testing {

namespace fs = std::filesystem;

core::DeviceMemory FakeDevice::Memory() const {
  absl::MutexLock lock(&mu_);
  core::DeviceMemory m;
  m.total_bytes = capacity_;
  m.free_bytes = capacity_ - allocated_ - foreign_;
  m.allocated_bytes = allocated_;
  m.reserved_bytes = allocated_;
  m.peak_bytes = peak_;
  return m;
}

void FakeDevice::ResetPeak() {
  absl::MutexLock lock(&mu_);
  peak_ = allocated_;
}

absl::Status FakeDevice::Allocate(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (allocated_ + foreign_ + bytes > capacity_) {
    return absl::ResourceExhaustedError(absl::StrCat("fake device out of memory: asked ", bytes,
                                                     ", used ", allocated_ + foreign_,
                                                     ", capacity ", capacity_));
  }
  allocated_ += bytes;
  peak_ = std::max(peak_, allocated_);
  return absl::OkStatus();
}

void FakeDevice::Free(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  allocated_ -= bytes;
}

int64_t FakeDevice::allocated() const {
  absl::MutexLock lock(&mu_);
  return allocated_;
}

void FakeDevice::SetForeignBytes(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  foreign_ = bytes;
}

FakeModel::FakeModel(int num_labels, int64_t weight_bytes, std::vector<FakeDevice*> devices,
                     int64_t activation_bytes_per_token)
    : num_labels_(num_labels),
      weight_bytes_(weight_bytes),
      devices_(std::move(devices)),
      activation_bytes_per_token_(activation_bytes_per_token),
      tier_(devices_.empty() ? core::WeightTier::kDevice : core::WeightTier::kHost) {}

FakeModel::~FakeModel() {
  if (on() != nullptr && tier_.load() == core::WeightTier::kDevice) on()->Free(weight_bytes_);
}

absl::Status FakeModel::MoveToDevice(int device) {
  if (devices_.empty()) return absl::OkStatus();
  if (device < 0 || device >= static_cast<int>(devices_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("fake model: no device ", device));
  }
  if (tier_.load() == core::WeightTier::kDevice) {
    if (device == current_.load()) return absl::OkStatus();
    return absl::FailedPreconditionError("fake model: on another device already");
  }
  if (absl::Status s = devices_[device]->Allocate(weight_bytes_); !s.ok()) return s;
  current_.store(device);
  tier_.store(core::WeightTier::kDevice);
  return absl::OkStatus();
}

absl::Status FakeModel::MoveToHost() {
  if (on() == nullptr || tier_.load() == core::WeightTier::kHost) return absl::OkStatus();
  on()->Free(weight_bytes_);
  tier_.store(core::WeightTier::kHost);
  return absl::OkStatus();
}

void FakeModel::BlockNextForward(absl::Notification* started, absl::Notification* release) {
  block_release_.store(release);
  block_started_.store(started);
}

absl::StatusOr<core::Logits> FakeModel::Forward(const core::InputBatch& batch) {
  if (tier_.load() != core::WeightTier::kDevice) {
    return absl::InternalError("forward on a model whose weights are in the host tier");
  }
  forwards_.fetch_add(1);
  if (absl::Notification* started = block_started_.exchange(nullptr)) {
    started->Notify();
    block_release_.exchange(nullptr)->WaitForNotification();
  }
  FakeDevice* const device = on();
  if (device != nullptr && device->failed()) {
    return core::MarkDeviceLost(absl::InternalError(
        absl::StrCat(device->name(), ": an illegal memory access was encountered")));
  }
  char thread_name[16] = "";
  pthread_getname_np(pthread_self(), thread_name, sizeof(thread_name));
  {
    absl::MutexLock lock(&mu_);
    last_forward_thread_ = thread_name;
    shapes_.emplace_back(batch.batch_size, batch.sequence_length);
    if (!next_failure_.ok()) {
      absl::Status failure = std::move(next_failure_);
      next_failure_ = absl::OkStatus();
      return failure;
    }
  }
  const int64_t activations =
      activation_bytes_per_token_ * batch.batch_size * batch.sequence_length;
  if (device != nullptr && activations > 0) {
    if (absl::Status s = device->Allocate(activations); !s.ok()) return s;
  }
  core::Logits out;
  out.rows = batch.batch_size;
  out.cols = num_labels_;
  out.values.assign(out.rows * out.cols, 0.0f);
  for (int64_t r = 0; r < batch.batch_size; ++r) {
    std::vector<int32_t> ids, types;
    for (int64_t t = 0; t < batch.sequence_length; ++t) {
      const size_t i = r * batch.sequence_length + t;
      if (batch.attention_mask[i] == 0) continue;
      ids.push_back(static_cast<int32_t>(batch.input_ids[i]));
      types.push_back(static_cast<int32_t>(batch.token_type_ids[i]));
    }
    std::vector<float> row = ExpectedRow(ids, types, num_labels_);
    std::copy(row.begin(), row.end(), out.values.begin() + r * num_labels_);
  }
  if (device != nullptr && activations > 0) device->Free(activations);
  return out;
}

void FakeModel::FailNextForward(absl::Status status) {
  absl::MutexLock lock(&mu_);
  next_failure_ = std::move(status);
}

std::string FakeModel::last_forward_thread() const {
  absl::MutexLock lock(&mu_);
  return last_forward_thread_;
}

std::vector<std::pair<int64_t, int64_t>> FakeModel::shapes() const {
  absl::MutexLock lock(&mu_);
  return shapes_;
}

std::vector<float> FakeModel::ExpectedRow(const std::vector<int32_t>& ids,
                                          const std::vector<int32_t>& type_ids, int num_labels) {
  std::vector<float> row(num_labels, 0.0f);
  float type_sum = 0;
  for (int32_t t : type_ids) type_sum += static_cast<float>(t);
  for (int j = 0; j < num_labels; ++j) {
    float sum = 0;
    for (int32_t id : ids) sum += static_cast<float>(id) * static_cast<float>(j + 1) / 1000.0f;
    row[j] = sum + type_sum * 0.5f * static_cast<float>(j);
  }
  return row;
}

void FakeLoader::ReleaseThreadResources() {
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof(name));
  absl::MutexLock lock(&mu_);
  released_on_.push_back(name);
}

std::vector<std::string> FakeLoader::released_on() const {
  absl::MutexLock lock(&mu_);
  return released_on_;
}

absl::StatusOr<std::unique_ptr<core::Model>> FakeLoader::Load(const core::ModelSource& source) {
  std::pair<absl::Notification*, absl::Notification*> block{nullptr, nullptr};
  int labels = 2;
  int64_t weights = 1000;
  int64_t per_token = 0;
  {
    absl::MutexLock lock(&mu_);
    ++loads_;
    ++loads_by_name_[source.name];
    ++running_;
    max_running_ = std::max(max_running_, running_);
    if (auto it = blocks_.find(source.name); it != blocks_.end()) {
      block = it->second;
      blocks_.erase(it);  // one load only: a later read of the model runs freely
    }
    if (auto it = labels_.find(source.name); it != labels_.end()) labels = it->second;
    if (auto it = weights_.find(source.name); it != weights_.end()) weights = it->second;
    per_token = activation_per_token_;
  }
  if (block.first != nullptr) {
    block.first->Notify();
    block.second->WaitForNotification();
  }
  absl::MutexLock lock(&mu_);
  --running_;
  if (auto it = failures_.find(source.name); it != failures_.end()) {
    absl::Status status = it->second;
    failures_.erase(it);
    return status;
  }
  const bool on_cpu = source.config.device() == v1::ModelConfig::DEVICE_CPU;
  auto model = std::make_unique<FakeModel>(
      labels, weights, on_cpu ? std::vector<FakeDevice*>{} : devices_, per_token);
  last_[source.name] = model.get();
  return model;
}

void FakeLoader::SetWeightBytes(const std::string& name, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  weights_[name] = bytes;
}

void FakeLoader::SetActivationBytesPerToken(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  activation_per_token_ = bytes;
}

int FakeLoader::loads_of(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = loads_by_name_.find(name);
  return it == loads_by_name_.end() ? 0 : it->second;
}

FakeModel* FakeLoader::last_model(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = last_.find(name);
  return it == last_.end() ? nullptr : it->second;
}

void FakeLoader::FailNextLoad(const std::string& name, absl::Status status) {
  absl::MutexLock lock(&mu_);
  failures_[name] = std::move(status);
}

void FakeLoader::BlockLoad(const std::string& name, absl::Notification* started,
                           absl::Notification* release) {
  absl::MutexLock lock(&mu_);
  blocks_[name] = {started, release};
}

void FakeLoader::SetNumLabels(const std::string& name, int n) {
  absl::MutexLock lock(&mu_);
  labels_[name] = n;
}

int FakeLoader::loads() const {
  absl::MutexLock lock(&mu_);
  return loads_;
}

int FakeLoader::max_concurrent_loads() const {
  absl::MutexLock lock(&mu_);
  return max_running_;
}

TempRepository::TempRepository() {
  std::string pattern = (fs::temp_directory_path() / "bertserve-test-XXXXXX").string();
  root_ = mkdtemp(pattern.data());
}

TempRepository::~TempRepository() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

void TempRepository::WriteFile(const std::string& relative, const std::string& contents) {
  const fs::path path = fs::path(root_) / relative;
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << contents;
}

void TempRepository::AddModel(const std::string& name, const std::string& config) {
  WriteFile(absl::StrCat(name, "/config.pbtxt"), config);
  WriteFile(absl::StrCat(name, "/vocab.txt"),
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n,\n!\n");
}

}  // namespace bertserve::testing
