#ifndef BERTSERVE_SERVER_CORE_THREAD_NAME_H_
#define BERTSERVE_SERVER_CORE_THREAD_NAME_H_

#include "absl/strings/string_view.h"

namespace bertserve::core {

// Names the calling thread `name`, cut to the 15 bytes Linux keeps, as
// `top -H`, `ps -L` and /proc/PID/task/TID/comm show it. A thread started
// from a named one begins with its name (the kernel copies it), so the
// OpenMP workers a device's executor starts carry the executor's name:
//   exec-DEVICE   a device's executor and its forward passes' threads
//   worker        request work: validation, tokenization
//   placement     placements, evictions, swap-ins (and warm-up forwards)
//   model-read    reads of model files from disk
//   metrics-http  the /metrics endpoint
//   deadlines     the deadline timer
// Best effort: a failure leaves the name as it was.
void NameThisThread(absl::string_view name);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_THREAD_NAME_H_
