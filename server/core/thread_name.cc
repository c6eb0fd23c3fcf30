#include "server/core/thread_name.h"

#include <pthread.h>

#include <string>

namespace bertserve::core {

void NameThisThread(absl::string_view name) {
  const std::string kept(name.substr(0, 15));  // TASK_COMM_LEN less the NUL
  pthread_setname_np(pthread_self(), kept.c_str());
}

}  // namespace bertserve::core
