#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every
# test (unit, integration, lint). GPU-labelled tests skip themselves here;
# scripts/gpu-check.sh runs them on a machine with a GPU.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}

"$here/scripts/setup.sh"
"$here/scripts/build.sh" -DBERTSERVE_BUILD_TESTS=ON -DBERTSERVE_BUILD_BENCHMARKS=ON
cd "$build_dir"
ctest --output-on-failure -j "${JOBS:-2}" --timeout 900
