# Sanitizer and fuzzer builds (clang only; scripts/check-clang.sh makes them
# in build dirs of their own, never in build/).
#
#   BERTSERVE_SANITIZERS      comma-separated -fsanitize= list for every target,
#                             e.g. "address,undefined" or "thread"; empty: none
#   BERTSERVE_BUILD_FUZZERS   libFuzzer targets under tests/fuzz; every library
#                             gets coverage instrumentation (fuzzer-no-link)
#   BERTSERVE_CLANG_CHECKS    register scripts/check-clang.sh's steps as tests
#                             (tests/clang); off in the builds it makes
set(BERTSERVE_SANITIZERS "" CACHE STRING "-fsanitize= list for every target (clang)")
option(BERTSERVE_BUILD_FUZZERS "Build the libFuzzer targets (clang)" OFF)
option(BERTSERVE_CLANG_CHECKS "Run scripts/check-clang.sh's steps as tests" ON)

if((BERTSERVE_SANITIZERS OR BERTSERVE_BUILD_FUZZERS) AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "BERTSERVE_SANITIZERS and BERTSERVE_BUILD_FUZZERS need clang "
                      "(configure with -DCMAKE_CXX_COMPILER=clang++)")
endif()

if(BERTSERVE_SANITIZERS)
  # Frame pointers for readable stacks; any undefined behaviour is fatal, so a
  # test or fuzz run cannot pass while printing a report.
  add_compile_options(-fsanitize=${BERTSERVE_SANITIZERS} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${BERTSERVE_SANITIZERS})
  message(STATUS "bertserve: sanitizers ${BERTSERVE_SANITIZERS}")
endif()

if(BERTSERVE_BUILD_FUZZERS)
  # Coverage feedback from our code (and the generated protobuf code); only
  # the fuzz targets themselves link libFuzzer's main.
  add_compile_options(-fsanitize=fuzzer-no-link)
  message(STATUS "bertserve: libFuzzer targets")
endif()
