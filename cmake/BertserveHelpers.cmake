# bertserve_library(NAME SOURCES ... DEPS ...): a static library of our own
# code with the project's warnings.
function(bertserve_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${BERTSERVE_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# bertserve_test(SOURCE DEPS ... [LABELS ...]): one test binary per *_test.cc,
# registered with CTest under the file's base name.
function(bertserve_test source)
  cmake_parse_arguments(ARG "" "" "DEPS;LABELS" ${ARGN})
  get_filename_component(name ${source} NAME_WE)
  add_executable(${name} ${source})
  target_compile_options(${name} PRIVATE ${BERTSERVE_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    LABELS "unit;${ARG_LABELS}"
    ENVIRONMENT "BERTSERVE_TEST_DATA=${CMAKE_BINARY_DIR}/testdata;BERTSERVE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
