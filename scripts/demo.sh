#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, makes the demo
# model repository (random weights!) and runs the server on it until Ctrl-C.
#   gRPC on 127.0.0.1:50051 (with reflection), model management without a
#   token on the admin listener 127.0.0.1:50052, Prometheus metrics on
#   127.0.0.1:9400/metrics
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}

"$here/scripts/setup.sh"
"$here/scripts/build.sh" -DBERTSERVE_BUILD_TESTS=OFF -DBERTSERVE_BUILD_BENCHMARKS=OFF
"$here/scripts/make-demo-repo.sh" "$here/demo-models"
echo "demo: try   $build_dir/client/bertserve-cli classify -m demo-sentiment 'what a lovely day'"
exec "$build_dir/server/bertserve" --model-repository "$here/demo-models/models" \
  --listen "${LISTEN:-127.0.0.1:50051}" --metrics-listen "${METRICS_LISTEN:-127.0.0.1:9400}" \
  --admin-listen "${ADMIN_LISTEN:-127.0.0.1:50052}" --reflection
