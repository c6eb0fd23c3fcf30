#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every
# test (unit, integration, lint, the clang and sanitizer builds, bounded
# fuzzing, the soak), then builds the CPU image and checks it serves
# (scripts/image-check.sh). GPU-labelled tests skip themselves here;
# scripts/gpu-check.sh runs them on a machine with a GPU.
#
#   BERTSERVE_SKIP_IMAGE_CHECK=1 scripts/test.sh   # everything but the image
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}

"$here/scripts/setup.sh"
"$here/scripts/build.sh" -DBERTSERVE_BUILD_TESTS=ON -DBERTSERVE_BUILD_BENCHMARKS=ON
(cd "$build_dir" && ctest --output-on-failure -j "${JOBS:-2}" --timeout 900)

if [[ ${BERTSERVE_SKIP_IMAGE_CHECK:-0} == 1 ]]; then
  echo "test: image check skipped (BERTSERVE_SKIP_IMAGE_CHECK=1)"
elif [[ $(id -u) -ne 0 ]]; then
  echo "test: the image check needs root (buildah); run: sudo scripts/image-check.sh" >&2
  exit 1
else
  "$here/scripts/image-check.sh"
fi
