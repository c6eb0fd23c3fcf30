#ifndef BERTSERVE_TESTS_FUZZ_FUZZ_CHECK_H_
#define BERTSERVE_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

// A property the code under fuzzing promises. A broken one aborts, which
// libFuzzer reports as a crash and saves the input that caused it.
#define BERTSERVE_FUZZ_CHECK(condition, ...)                                         \
  do {                                                                               \
    if (!(condition)) {                                                              \
      std::fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__, __LINE__,       \
                   #condition);                                                      \
      std::fprintf(stderr, __VA_ARGS__);                                             \
      std::fprintf(stderr, "\n");                                                    \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#endif  // BERTSERVE_TESTS_FUZZ_FUZZ_CHECK_H_
