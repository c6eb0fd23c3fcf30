#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch (no network needed): builds
# bertserve against that PyTorch's CUDA libtorch, runs the GPU-labelled tests
# (among them the OOM storm with real CUDA OOMs), the placement benchmark
# (swap-in against pinned host-to-device bandwidth), the GPU profile of
# scripts/bench.sh (BERT-Base and BERT-Large shapes in fp16 at 128 and 512
# tokens: bertserve against the raw libtorch loop, model FLOP utilisation,
# the batching storm) and one server on every GPU, and prints a short report.
#
#   scripts/gpu-bundle.sh            # once, on a Debian 12 machine with network
#   scripts/gpu-check.sh             # on the GPU machine (carry .deps/gpu-sysroot.tar.xz)
#   GPU_CHECK_SKIP=bench scripts/gpu-check.sh      # all but the GPU profile
#   GPU_CHECK_SKIP=tests,devices scripts/gpu-check.sh
#
# GPU_CHECK_SKIP: comma-separated parts to leave out (tests, placement,
# bench, devices); the build always runs (a second run reuses it). Uses
# .deps/gpu-sysroot for the non-torch dependencies when the machine lacks
# them, and the python3 that has torch (PYTHON to override).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
build=${BUILD_DIR:-$here/build-gpu}
sysroot=$here/.deps/gpu-sysroot
skip=",${GPU_CHECK_SKIP:-},"
runs() { [[ $skip != *",$1,"* ]]; }

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
read -r torch_version cuda_version cxx11 < <("$python" -c \
  'import torch; print(torch.__version__, torch.version.cuda, int(torch._C._GLIBCXX_USE_CXX11_ABI))')
echo "torch $torch_version, CUDA $cuda_version, cxx11 ABI $cxx11"
if [[ $cxx11 != 1 ]]; then
  echo "gpu-check: this PyTorch uses the pre-C++11 string ABI; Debian's gRPC and" \
       "Abseil use the C++11 one, so they cannot link. Use a cxx11-ABI libtorch." >&2
  exit 1
fi

prefix="$torch_prefix"
if [[ ! -d $sysroot && -f $sysroot.tar.xz ]]; then
  tar -C "$(dirname "$sysroot")" -xJf "$sysroot.tar.xz"
fi
if [[ -d $sysroot ]]; then
  prefix="$prefix;$sysroot/usr;$sysroot/usr/lib/x86_64-linux-gnu/cmake;$sysroot/usr/share/cmake"
  export PATH="$sysroot/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  export PKG_CONFIG_PATH="$sysroot/usr/lib/x86_64-linux-gnu/pkgconfig:$sysroot/usr/share/pkgconfig"
  # The .pc files say prefix=/usr; this puts their paths inside the sysroot.
  export PKG_CONFIG_SYSROOT_DIR=$sysroot
fi
# CMake's CUDA toolkit lookup (libtorch's config needs it) finds nvcc on PATH.
if [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"

echo "== build"
# Another compiler may know warnings ours does not: report, do not fail.
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DBERTSERVE_BUILD_TESTS=ON -DBERTSERVE_BUILD_BENCHMARKS=ON \
  -DBERTSERVE_WERROR=OFF -DBERTSERVE_TEST_PYTHON="$(command -v "$python")" | grep "bertserve:"
cmake --build "$build" -j "$(nproc)" -- -k 0 2>&1 | grep -E "error|warning: |FAILED" -A3 || true
cmake --build "$build" -j "$(nproc)" | tail -1
if ! grep -q "BERTSERVE_WITH_CUDA:INTERNAL=ON" "$build/CMakeCache.txt"; then
  echo "gpu-check: the libtorch found has no CUDA" >&2
  exit 1
fi

echo "== test models"
PYTHON=$python "$here/scripts/make-test-models.sh" "$build/testdata" >/dev/null

# bert-base-sized models (110M parameters, random weights) for the GPU
# memory test and the benchmark.
big=$build/testdata/bert-base-sized
if [[ ! -f $big/plain/model.pt ]]; then
  for name in tt-tuple single-logit plain nott-dict; do
    "$python" "$here/scripts/make_test_model.py" --out "$big/$name" --hidden 768 --layers 12 \
      --heads 12 --intermediate 3072 --max-position 512 --labels a,b --quiet \
      --vocab "$build/testdata/vocab.txt" --seed "${#name}"
  done
fi

tests_ok=1
if runs tests; then
  echo "== GPU tests"
  (cd "$build" && BERTSERVE_MEMORY_MODELS=$big ctest -L gpu --output-on-failure) || tests_ok=0
fi

if runs placement; then
  echo "== placement benchmark (GPU)"
  "$build/bench/placement_bench" --device cuda:0 --model "$build/testdata/models/tt-tuple"
  "$build/bench/placement_bench" --device cuda:0 --model "${BENCH_MODEL:-$big/plain}"
fi

if runs bench; then
  echo "== GPU profile of scripts/bench.sh"
  BENCH_PROFILE=gpu BENCH_SKIP_BUILD=1 BUILD_DIR=$build PYTHON=$python "$here/scripts/bench.sh" ||
    tests_ok=0
fi

if runs devices; then
  echo "== several devices (--device cuda:all, $(nvidia-smi -L | wc -l) GPU(s))"
  # Every GPU as one server's devices, each with a small budget (2 GiB) so that
  # the four bert-base-sized models contend: the policy places them, each must
  # answer.
  devices_log=$build/gpu-devices.log
  "$build/server/bertserve" --model-repository "$big" --device cuda:all --vram-budget 2GiB \
    --listen 127.0.0.1:50071 --metrics-listen 127.0.0.1:9471 --load none >"$devices_log" 2>&1 &
  server_pid=$!
  cli=("$build/client/bertserve-cli" --server 127.0.0.1:50071 --timeout 120)
  for _ in $(seq 1 120); do
    if "${cli[@]}" health 2>/dev/null | grep -q "^readiness *SERVING"; then break; fi
    sleep 1
  done
  for name in tt-tuple single-logit plain nott-dict; do
    if ! "${cli[@]}" classify -m "$name" "a short text on every device" >/dev/null; then
      echo "gpu-check: $name did not answer on cuda:all (see $devices_log)"
      tests_ok=0
    fi
  done
  "${cli[@]}" models list || tests_ok=0
  kill "$server_pid"
  wait "$server_pid" || true
fi

if ((tests_ok)); then
  echo "== gpu-check: done, GPU tests passed"
else
  echo "== gpu-check: done, GPU tests FAILED (see above)"
  exit 1
fi
