#!/usr/bin/env bash
# Builds the model repository the integration tests run against, and the real
# bert-base-uncased vocabulary the tokenizer tests read:
#
#   OUTDIR/vocab.txt
#   OUTDIR/models/tt-tuple       token_type_ids, (logits, pooled) output, 3 labels, max length 64
#   OUTDIR/models/nott-dict      no token_type_ids, {"logits": ...} output, 2 labels
#   OUTDIR/models/single-logit   tensor output, 1 label (sigmoid)
#   OUTDIR/models/plain          tensor output, 3 logits, no labels in config (LABEL_i)
#   OUTDIR/models/broken-model   good config, model.pt is not TorchScript
#   OUTDIR/models/broken-config  good model, config.pbtxt has an unknown field `colour`
#
# Weights are random (fixed seeds). Does nothing when OUTDIR is newer than the
# scripts that make it. PYTHON (default /usr/bin/python3) must have torch.
#
# Usage: scripts/make-test-models.sh OUTDIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi

# shellcheck source=scripts/model-makers.sh
source "$(dirname "${BASH_SOURCE[0]}")/model-makers.sh"
model_makers_init make-test-models "$1"
stamp="$out/.complete"

# One builder at a time (ctest -j, or two build trees sharing OUTDIR).
exec 9>"$out/.lock"
flock 9

if [[ -f $out/vocab.txt && -d $out/models ]] &&
   newer_than_inputs "$stamp" "$script_dir/make-test-models.sh" "$script_dir/model-makers.sh" \
     "$script_dir/make_test_model.py" "$script_dir/bert_vocab_from_npm.py"; then
  echo "make-test-models: $out is up to date"
  exit 0
fi

rm -f "$stamp"
staging="$out/.staging.$$"
rm -rf "$staging"
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/models"

write_real_vocab "$staging/vocab.txt"
vocab="$staging/vocab.txt"

make_model() {
  local name=$1
  shift
  "$python" "$script_dir/make_test_model.py" --out "$staging/models/$name" \
    --vocab "$vocab" "$@"
}

make_model tt-tuple --seed 11 --signature with_token_type --output tuple \
  --labels negative,neutral,positive --max-sequence-length 64 \
  --max-client-batch-size 8 --max-batch-tokens 1024
make_model nott-dict --seed 12 --signature no_token_type --output dict \
  --labels negative,positive --max-sequence-length 128
make_model single-logit --seed 13 --signature with_token_type --output tensor \
  --labels relevant --max-sequence-length 128
make_model plain --seed 14 --signature with_token_type --output tensor \
  --num-labels 3 --write-config

broken_model="$staging/models/broken-model"
mkdir -p "$broken_model"
cp "$vocab" "$broken_model/vocab.txt"
cat >"$broken_model/config.pbtxt" <<'EOF'
# A good config next to a model.pt that is not TorchScript.
labels: "negative"
labels: "positive"
max_sequence_length: 128
EOF
for _ in 1 2 3 4 5 6 7 8; do
  printf 'this is not a TorchScript archive, just bytes\n'
done >"$broken_model/model.pt"

broken_config="$staging/models/broken-config"
mkdir -p "$broken_config"
cp "$vocab" "$broken_config/vocab.txt"
cp "$staging/models/plain/model.pt" "$broken_config/model.pt"
cat >"$broken_config/config.pbtxt" <<'EOF'
# An unknown field: the model must go to FAILED naming this file, line and field.
max_sequence_length: 128
colour: "red"
EOF

rm -rf "$out/models" "$out/vocab.txt"
mv "$staging/models" "$out/models"
mv "$staging/vocab.txt" "$out/vocab.txt"
touch "$stamp"
echo "make-test-models: wrote $out/models and $out/vocab.txt"
