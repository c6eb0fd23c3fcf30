#!/usr/bin/env bash
# The clang checks of the test command; tests/clang registers each step as a
# test of the default build, so scripts/test.sh runs them all.
#
#   scripts/check-clang.sh [STEP ...]       default: build asan tsan fuzz
#
#   build   clang build in CLANG_BUILD_DIR (default build-clang/) of every
#           target that does not need libtorch (core, tokenizer, grpc,
#           metrics, logging, their tests) with -Wthread-safety -Werror, under
#           AddressSanitizer and UndefinedBehaviorSanitizer, and the libFuzzer
#           targets of tests/fuzz
#   asan    that build's unit tests (core, tokenizer, grpc, metrics, logging)
#   tsan    ThreadSanitizer build in TSAN_BUILD_DIR (default build-tsan/) of
#           the concurrency tests of the registry, placement queue, batcher and
#           classifier (fakes), run TSAN_REPEAT times (default 3), against an
#           Abseil built with ThreadSanitizer so that its Mutex is understood
#   fuzz [TARGET ...]
#           each fuzz target (default: all) for FUZZ_SECONDS (default 20),
#           starting from its committed corpus tests/fuzz/corpus/TARGET/
#
# Installs the Debian packages it needs when they are missing (root or sudo),
# and the first tsan step fetches Debian's Abseil source package (apt-get
# source, from the machine's own Debian mirrors) to build it instrumented.
# Builds run under nice with JOBS (default 2) jobs and ccache.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
clang_dir=${CLANG_BUILD_DIR:-$here/build-clang}
tsan_dir=${TSAN_BUILD_DIR:-$here/build-tsan}
jobs=${JOBS:-2}
fuzz_seconds=${FUZZ_SECONDS:-20}
tsan_repeat=${TSAN_REPEAT:-3}
cxx=${CLANG_CXX:-clang++-14}
export CCACHE_BASEDIR=$here CCACHE_NOHASHDIR=1

log() { echo "check-clang: $*"; }
die() { echo "check-clang: $*" >&2; exit 1; }

# shellcheck source=scripts/debian-packages.sh
source "$here/scripts/debian-packages.sh"
install_missing() { install_missing_packages check-clang "$@"; }

# Configures DIR with the project's clang options plus EXTRA cmake arguments.
configure() {
  local dir=$1
  shift
  nice -n 10 cmake -S "$here" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$cxx" -DBERTSERVE_WITH_TORCH=OFF -DBERTSERVE_BUILD_TESTS=ON \
    -DBERTSERVE_BUILD_BENCHMARKS=OFF -DBERTSERVE_CLANG_CHECKS=OFF "$@" >/dev/null
}

step_build() {
  configure "$clang_dir" -DBERTSERVE_SANITIZERS=address,undefined -DBERTSERVE_BUILD_FUZZERS=ON
  log "building $clang_dir (-Wthread-safety -Werror, ASan, UBSan, fuzz targets)"
  nice -n 10 cmake --build "$clang_dir" -j "$jobs"
}

require_build() {
  [[ -f $clang_dir/build.ninja ]] || die "$clang_dir is not built; run: $0 build"
}

step_asan() {
  require_build
  # The tokenizer tests that need the real vocabulary read it from the build's
  # testdata/, as in the default build; it is written here, so the test
  # models fixture (PyTorch) is left out (-FA).
  if [[ ! -s $clang_dir/testdata/vocab.txt ]]; then
    # shellcheck source=scripts/model-makers.sh
    source "$here/scripts/model-makers.sh"
    model_makers_init check-clang "$clang_dir/testdata"
    write_real_vocab "$clang_dir/testdata/vocab.txt"
  fi
  log "unit tests under ASan and UBSan"
  ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1 \
    UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$clang_dir" -L unit -FA '.*' --output-on-failure -j "$jobs" --timeout 300
}

# Debian's Abseil, built with ThreadSanitizer into $tsan_dir/absl/lib with the
# same sonames: loaded ahead of the system's (LD_LIBRARY_PATH), it lets
# ThreadSanitizer see absl::Mutex, CondVar and Notification synchronize.
absl_lib=$tsan_dir/absl/lib
build_tsan_abseil() {
  local version
  version=$(dpkg-query -W -f='${Version}' libabsl-dev)
  if [[ -f $absl_lib/.version && $(cat "$absl_lib/.version") == "$version" ]]; then
    return 0
  fi
  local work=$tsan_dir/absl
  rm -rf "$work"
  mkdir -p "$work/apt/lists/partial" "$work/apt/parts" "$work/src"
  # deb-src entries for the machine's own deb entries, in a private apt state.
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] && sed -n 's/^deb /deb-src /p' "$f" >>"$work/apt/parts/src.list"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && sed 's/^Types:.*/Types: deb-src/' "$f" >"$work/apt/parts/$(basename "$f")"
  done
  local apt=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$work/apt/parts"
    -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
  log "fetching the source of Debian's abseil $version"
  apt-get "${apt[@]}" update -qq
  (cd "$work/src" && apt-get "${apt[@]}" source -qq --download-only "abseil=$version" &&
    dpkg-source -x --no-check abseil_*.dsc abseil >/dev/null)
  log "building Abseil with ThreadSanitizer"
  nice -n 10 cmake -S "$work/src/abseil" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON \
    -DBUILD_TESTING=OFF -DABSL_PROPAGATE_CXX_STD=ON -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$absl_lib" >/dev/null
  # All of it: a library left uninstrumented (a call_once inlined into it,
  # say) hides synchronization from ThreadSanitizer.
  nice -n 10 cmake --build "$work/build" -j "$jobs"
  echo "$version" >"$absl_lib/.version"
}

tsan_tests=(model_registry_test model_placement_test multi_device_test placement_queue_test batcher_test
  batcher_observer_test classifier_test)

step_tsan() {
  install_missing dpkg-dev
  build_tsan_abseil
  configure "$tsan_dir" -DBERTSERVE_SANITIZERS=thread -DBERTSERVE_BUILD_FUZZERS=OFF
  log "building the concurrency tests with ThreadSanitizer"
  nice -n 10 cmake --build "$tsan_dir" -j "$jobs" --target "${tsan_tests[@]}"
  # The instrumented Abseil must be the one loaded, or every absl::Mutex
  # looks like no synchronization at all.
  local loaded
  loaded=$(LD_LIBRARY_PATH=$absl_lib ldd "$tsan_dir/tests/core/batcher_test" |
    awk '/libabsl_synchronization/ {print $3}')
  [[ $loaded == "$absl_lib/"* ]] || die "batcher_test loads $loaded, not $absl_lib's"
  local regex
  regex="^($(IFS='|'; echo "${tsan_tests[*]}"))\$"
  log "concurrency tests under ThreadSanitizer, each up to $tsan_repeat times"
  LD_LIBRARY_PATH=$absl_lib \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$here/tests/clang/tsan.supp" \
    ctest --test-dir "$tsan_dir" -R "$regex" --output-on-failure -j "$jobs" --timeout 600 \
    --repeat "until-fail:$tsan_repeat"
}

# Runs one fuzz target for $fuzz_seconds from its committed corpus (and what
# earlier runs in this build dir added); a crash fails with the input saved.
fuzz_one() {
  local name=$1
  local binary=$clang_dir/tests/fuzz/$name
  [[ -x $binary ]] || die "no fuzz target $name in $clang_dir/tests/fuzz"
  local work=$clang_dir/fuzz/$name
  mkdir -p "$work/corpus" "$work/artifacts"
  local flags=(-max_total_time="$fuzz_seconds" -print_final_stats=1 -print_funcs=0
    -timeout=25 -rss_limit_mb=2560 -artifact_prefix="$work/artifacts/")
  # The endpoint reads up to kMaxRequestHeadBytes (16 KiB) and a little more.
  [[ $name == http_request_head_fuzzer ]] && flags+=(-max_len=20000)
  # Words of the input format (JSON keys, config field names), which
  # mutations alone rarely spell.
  [[ -f $here/tests/fuzz/$name.dict ]] && flags+=(-dict="$here/tests/fuzz/$name.dict")
  if ! nice -n 10 "$binary" "${flags[@]}" "$work/corpus" "$here/tests/fuzz/corpus/$name" \
    >"$work/log" 2>&1; then
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$work/log" | tail -n 60 >&2
    echo "check-clang: $name failed; the input is in $work/artifacts/." >&2
    echo "  Reproduce: $binary $work/artifacts/<file>" >&2
    echo "  Once fixed, keep it: cp $work/artifacts/<file> tests/fuzz/corpus/$name/" >&2
    return 1
  fi
  local done_line
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n 1)
  log "$name: $(awk '/stat::number_of_executed_units/ {print $2}' "$work/log") runs," \
    "$(awk '/stat::average_exec_per_sec/ {print $2}' "$work/log")/s," \
    "$(echo "$done_line" | grep -o 'cov: [0-9]*'), $(echo "$done_line" | grep -o 'corp: [^ ]*')"
}

step_fuzz() {
  require_build
  local targets=("$@") failed=0 t
  if ((${#targets[@]} == 0)); then
    for t in "$here"/tests/fuzz/*_fuzzer.cc; do targets+=("$(basename "$t" .cc)"); done
  fi
  for t in "${targets[@]}"; do fuzz_one "$t" || failed=1; done
  return "$failed"
}

install_missing clang-14 libclang-rt-14-dev cmake ninja-build ccache

steps=("$@")
((${#steps[@]} > 0)) || steps=(build asan tsan fuzz)
case ${steps[0]} in
  fuzz) step_fuzz "${steps[@]:1}"; exit ;;
esac
for s in "${steps[@]}"; do
  case $s in
    build) step_build ;;
    asan) step_asan ;;
    tsan) step_tsan ;;
    fuzz) step_fuzz ;;
    *) die "unknown step $s (build, asan, tsan, fuzz [TARGET ...])" ;;
  esac
done
