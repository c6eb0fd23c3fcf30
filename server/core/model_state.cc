#include "server/core/model_state.h"

namespace bertserve::core {

bool IsLegalTransition(ModelState from, ModelState to) {
  if (to == ModelState::kFailed) return true;
  switch (from) {
    case ModelState::kUnloaded:
      return to == ModelState::kLoading;
    case ModelState::kLoading:
      return to == ModelState::kHost;
    case ModelState::kHost:
      return to == ModelState::kPlacing || to == ModelState::kUnloaded;
    case ModelState::kPlacing:
      return to == ModelState::kReady || to == ModelState::kHost;
    case ModelState::kReady:
      return to == ModelState::kEvicting || to == ModelState::kUnloaded;
    case ModelState::kEvicting:
      return to == ModelState::kHost;
    case ModelState::kFailed:
      return to == ModelState::kLoading || to == ModelState::kUnloaded;
  }
  return false;
}

absl::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kUnloaded: return "unloaded";
    case ModelState::kLoading: return "loading";
    case ModelState::kHost: return "host";
    case ModelState::kPlacing: return "placing";
    case ModelState::kReady: return "ready";
    case ModelState::kEvicting: return "evicting";
    case ModelState::kFailed: return "failed";
  }
  return "unknown";
}

}  // namespace bertserve::core
