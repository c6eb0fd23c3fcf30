#ifndef BERTSERVE_SERVER_CORE_MODEL_STATE_H_
#define BERTSERVE_SERVER_CORE_MODEL_STATE_H_

#include <array>
#include "absl/strings/string_view.h"

namespace bertserve::core {

// Where a model is in its life. Legal transitions (IsLegalTransition):
//
//   UNLOADED -> LOADING -> HOST -> PLACING -> READY
//   READY -> EVICTING -> HOST            (cold, or room needed)
//   HOST -> UNLOADED                     (host budget exceeded, or unload)
//   READY -> UNLOADED                    (unload of a resident model)
//   HOST -> PLACING                      (swap-in)
//   PLACING -> HOST                      (no room after all; weights stay in host)
//   any -> FAILED                        (reason kept)
//   FAILED -> LOADING | UNLOADED         (a later load retries; unload clears)
//
// The values match bertserve.v1.ModelState.
enum class ModelState {
  kUnloaded = 1,
  kLoading = 2,
  kHost = 3,
  kPlacing = 4,
  kReady = 5,
  kEvicting = 6,
  kFailed = 7,
};

inline constexpr std::array<ModelState, 7> kAllModelStates = {
    ModelState::kUnloaded, ModelState::kLoading,  ModelState::kHost,
    ModelState::kPlacing,  ModelState::kReady,    ModelState::kEvicting,
    ModelState::kFailed};

bool IsLegalTransition(ModelState from, ModelState to);

// Lowercase name used in metrics labels and logs ("ready").
absl::string_view ModelStateName(ModelState state);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_MODEL_STATE_H_
