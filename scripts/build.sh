#!/usr/bin/env bash
# Configures and builds bertserve into BUILD_DIR (default build/), as
# BUILD_TYPE (default RelWithDebInfo; the images use Release).
#   scripts/build.sh [extra cmake -D options]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}
jobs=${JOBS:-$(nproc)}
# Paths relative to the checkout in ccache keys, so a fresh clone (CI) reuses
# objects compiled in another one.
export CCACHE_BASEDIR=$here CCACHE_NOHASHDIR=1

cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"
