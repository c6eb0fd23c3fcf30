#ifndef BERTSERVE_SERVER_CORE_DEVICE_BUDGET_H_
#define BERTSERVE_SERVER_CORE_DEVICE_BUDGET_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace bertserve::core {

// The VRAM accounting of one device. A model admitted to the device costs its
// weight bytes; activations cost only the largest reserve among admitted
// models, because one batch executes per device at a time. All in bytes.
//
// Not thread-safe: the registry uses it under its own lock.
class DeviceBudget {
 public:
  explicit DeviceBudget(int64_t budget_bytes) : budget_(budget_bytes) {}

  int64_t budget() const { return budget_; }
  // Sum of admitted weights + the largest admitted activation reserve.
  int64_t ResidentCost() const;
  // ResidentCost() if `weights` and `reserve` were admitted as well.
  int64_t CostWith(int64_t weights, int64_t reserve) const;
  // Cost of admitting a model alone (what it needs with every other model
  // gone).
  static int64_t CostAlone(int64_t weights, int64_t reserve) { return weights + reserve; }

  // Records `name` as resident (replacing an earlier record of it).
  void Admit(const std::string& name, int64_t weights, int64_t reserve);
  // Changes the activation reserve of an admitted model (after warm-up).
  void SetReserve(const std::string& name, int64_t reserve);
  void Release(const std::string& name);
  bool Contains(const std::string& name) const { return admitted_.contains(name); }
  int64_t admitted_weights() const;
  int64_t largest_reserve() const;

 private:
  struct Cost {
    int64_t weights = 0;
    int64_t reserve = 0;
  };
  int64_t budget_;
  absl::flat_hash_map<std::string, Cost> admitted_;
};

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_DEVICE_BUDGET_H_
