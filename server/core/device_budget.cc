#include "server/core/device_budget.h"

#include <algorithm>

namespace bertserve::core {

int64_t DeviceBudget::admitted_weights() const {
  int64_t sum = 0;
  for (const auto& [name, cost] : admitted_) sum += cost.weights;
  return sum;
}

int64_t DeviceBudget::largest_reserve() const {
  int64_t largest = 0;
  for (const auto& [name, cost] : admitted_) largest = std::max(largest, cost.reserve);
  return largest;
}

int64_t DeviceBudget::ResidentCost() const { return admitted_weights() + largest_reserve(); }

int64_t DeviceBudget::CostWith(int64_t weights, int64_t reserve) const {
  return admitted_weights() + weights + std::max(largest_reserve(), reserve);
}

void DeviceBudget::Admit(const std::string& name, int64_t weights, int64_t reserve) {
  admitted_[name] = Cost{weights, reserve};
}

void DeviceBudget::SetReserve(const std::string& name, int64_t reserve) {
  auto it = admitted_.find(name);
  if (it != admitted_.end()) it->second.reserve = reserve;
}

void DeviceBudget::Release(const std::string& name) { admitted_.erase(name); }

}  // namespace bertserve::core
