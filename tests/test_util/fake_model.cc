#include "tests/test_util/fake_model.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace bertserve::testing {

namespace fs = std::filesystem;

absl::StatusOr<core::Logits> FakeModel::Forward(const core::InputBatch& batch) {
  forwards_.fetch_add(1);
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
  return out;
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

absl::StatusOr<std::unique_ptr<core::Model>> FakeLoader::Load(const core::ModelSource& source) {
  std::pair<absl::Notification*, absl::Notification*> block{nullptr, nullptr};
  int labels = 2;
  {
    absl::MutexLock lock(&mu_);
    ++loads_;
    ++running_;
    max_running_ = std::max(max_running_, running_);
    if (auto it = blocks_.find(source.name); it != blocks_.end()) block = it->second;
    if (auto it = labels_.find(source.name); it != labels_.end()) labels = it->second;
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
  return std::make_unique<FakeModel>(labels, 1000);
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
