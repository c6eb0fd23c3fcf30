#!/usr/bin/env python3
"""Exports a Hugging Face sequence-classification model for bertserve.

    export_hf_model.py MODEL_ID_OR_PATH OUTDIR [--max-sequence-length N] [--dtype fp32|fp16|bf16]

OUTDIR becomes one model directory of a bertserve model repository (its base
name is the model name, [A-Za-z0-9_.-]+):

    OUTDIR/model.pt        TorchScript, forward(input_ids, attention_mask[, token_type_ids]) -> logits
    OUTDIR/config.pbtxt    bertserve.v1.ModelConfig: labels (config.id2label), max_sequence_length,
                           dtype, tokenizer options
    OUTDIR/vocab.txt       WordPiece vocabulary
    OUTDIR/tokenizer.json  when the tokenizer is a fast WordPiece one (the server prefers it)

Needs torch and transformers (not part of bertserve's build). The model is
loaded with eager attention so that the trace uses plain matmul/softmax rather
than scaled_dot_product_attention, which older libtorch versions lack; save
with the same or an older PyTorch than the server's libtorch when you can.

At the end the script prints the logits of a sample text; compare them with
`bertserve-cli classify -m NAME --raw-scores TEXT`.
"""

import argparse
import inspect
import json
import os
import re
import sys

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
SAMPLE_TEXT = "The movie was surprisingly good, I would watch it again."
SAMPLE_PAIR = "Did the reviewer like the film?"


def die(message):
    print(f"export_hf_model: error: {message}", file=sys.stderr)
    sys.exit(1)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="Hugging Face model id or local directory")
    p.add_argument("outdir", help="model directory to write (its name is the model name)")
    p.add_argument("--max-sequence-length", type=int, default=0,
                   help="longest input in tokens (default and cap: max_position_embeddings)")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32",
                   help="dtype to trace at and write to config.pbtxt (fp16 may need CUDA)")
    p.add_argument("--revision", default=None, help="model revision (branch, tag or commit)")
    p.add_argument("--trust-remote-code", action="store_true")
    return p.parse_args(argv)


def load_model(args, transformers):
    common = {"torchscript": True, "revision": args.revision,
              "trust_remote_code": args.trust_remote_code}
    cls = transformers.AutoModelForSequenceClassification
    try:
        model = cls.from_pretrained(args.model, attn_implementation="eager", **common)
    except (TypeError, ValueError) as e:
        # transformers < 4.36 has no attn_implementation; its BERT attention
        # is the eager one anyway.
        print(f"note: loading without attn_implementation=eager ({e})", file=sys.stderr)
        model = cls.from_pretrained(args.model, **common)
    model.eval()
    return model


def tokenizer_facts(tokenizer):
    """Returns (is_fast_wordpiece, tokenizer.json dict or None)."""
    if not getattr(tokenizer, "is_fast", False):
        return False, None
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False, None
    return spec.get("model", {}).get("type") == "WordPiece", spec


def tokenizer_options(tokenizer, spec):
    """Lowercase / strip_accents as the model was trained with."""
    lowercase = None
    strip_accents = None
    normalizer = (spec or {}).get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        lowercase = normalizer.get("lowercase")
        strip_accents = normalizer.get("strip_accents")
    if lowercase is None:
        lowercase = getattr(tokenizer, "do_lower_case", None)
    if strip_accents is None:
        strip_accents = getattr(tokenizer, "strip_accents", None)
    return lowercase, strip_accents


def forward_uses_token_types(model, tokenizer):
    params = inspect.signature(model.forward).parameters
    if "token_type_ids" not in params:
        return False
    if getattr(model.config, "type_vocab_size", 2) <= 1:
        return False
    return "token_type_ids" in getattr(tokenizer, "model_input_names", ["token_type_ids"])


def make_wrapper(torch, model, with_token_types):
    """A module whose forward has bertserve's argument names and returns logits."""

    class WithTokenTypes(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.model = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids)
            return out[0]

    class WithoutTokenTypes(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.model = inner

        def forward(self, input_ids, attention_mask):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return out[0]

    wrapper = WithTokenTypes(model) if with_token_types else WithoutTokenTypes(model)
    return wrapper.eval()


def encode(tokenizer, texts, pairs, max_len, torch):
    """Padded int64 (input_ids, attention_mask, token_type_ids); pairs: None or one per text."""
    enc = tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_len,
                    return_tensors="pt", return_token_type_ids=True)
    ids = enc["input_ids"].to(torch.int64)
    mask = enc["attention_mask"].to(torch.int64)
    types = enc.get("token_type_ids")
    types = torch.zeros_like(ids) if types is None else types.to(torch.int64)
    return ids, mask, types


def feed(ids, mask, types, with_token_types):
    """Positional arguments in the wrapper's order."""
    return (ids, mask, types) if with_token_types else (ids, mask)


def trace_and_save(torch, tokenizer, wrapper, with_token_types, max_len, dtype, outdir):
    """Traces at `dtype`, saves OUTDIR/model.pt, checks it; returns (module, arg names, device).

    A model traced in fp32 and converted to fp16/bf16 afterwards may not run:
    Hugging Face code casts the attention mask to the dtype seen while tracing,
    and the trace keeps that cast. So a non-fp32 export is traced at its dtype
    (on the CPU when it can, else on CUDA).
    """
    texts = [SAMPLE_TEXT, "short"]
    pairs = [SAMPLE_PAIR, "x"]
    devices = ["cpu"]
    if dtype != torch.float32 and torch.cuda.is_available():
        devices.append("cuda")
    last_error = None
    for device in devices:
        try:
            module = wrapper.to(device=device, dtype=dtype)
            # Two inputs of different lengths (one padded): a trace that baked
            # in a shape or ignored the mask shows up in the check below.
            example = [t.to(device) for t in encode(tokenizer, texts, pairs, max_len, torch)]
            with torch.no_grad():
                traced = torch.jit.trace(module, feed(*example, with_token_types))
                check = [t.to(device) for t in encode(
                    tokenizer, [SAMPLE_TEXT, "a", SAMPLE_PAIR], None, max_len, torch)]
                eager_out = module(*feed(*check, with_token_types)).float()
            break
        except RuntimeError as e:  # e.g. fp16 matmul not implemented on this CPU build
            last_error = e
            print(f"note: tracing at {dtype} on {device} failed: {e}", file=sys.stderr)
    else:
        die(f"could not trace at {dtype}: {last_error}")
    if device != "cpu":
        print(f"warning: traced on {device}; the TorchScript may only run on CUDA devices",
              file=sys.stderr)
    model_path = os.path.join(outdir, "model.pt")
    traced.save(model_path)

    loaded = torch.jit.load(model_path, map_location=device)
    loaded.eval()
    schema_args = [a.name for a in loaded.forward.schema.arguments][1:]
    with torch.no_grad():
        traced_out = loaded(*feed(*check, with_token_types)).float()
    diff = (eager_out - traced_out).abs().max().item()
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    if diff > tolerance:
        print(f"warning: traced and eager logits differ by {diff:g} on a new shape; "
              "the trace may have baked in a shape", file=sys.stderr)
    return loaded, schema_args, device


def labels_of(config):
    id2label = getattr(config, "id2label", None) or {}
    by_index = {int(k): str(v) for k, v in id2label.items()}
    n = config.num_labels
    if sorted(by_index) != list(range(n)):
        print(f"note: id2label {id2label} does not cover 0..{n - 1}; using LABEL_i",
              file=sys.stderr)
        return [f"LABEL_{i}" for i in range(n)]
    return [by_index[i] for i in range(n)]


def pbtxt_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def config_text(args, labels, max_len, lowercase, strip_accents):
    lines = [f"# Exported from {args.model} by scripts/export_hf_model.py",
             "# bertserve.v1.ModelConfig in protobuf text format."]
    lines += [f"labels: {pbtxt_string(label)}" for label in labels]
    lines.append(f"max_sequence_length: {max_len}")
    lines.append(f"dtype: {args.dtype.upper()}")
    tok = []
    if lowercase is not None:
        tok.append(f"  lowercase: {'true' if lowercase else 'false'}")
    if strip_accents is not None:
        tok.append(f"  strip_accents: {'true' if strip_accents else 'false'}")
    if tok:
        lines += ["tokenizer {"] + tok + ["}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch
        import transformers
    except ImportError as e:
        die(f"{e}; this script needs torch and transformers (pip install torch transformers)")

    outdir = os.path.abspath(args.outdir)
    name = os.path.basename(outdir)
    if not NAME_RE.match(name):
        die(f"model directory name {name!r} is not a valid model name ([A-Za-z0-9_.-]+)")
    os.makedirs(outdir, exist_ok=True)

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
    is_wordpiece, spec = tokenizer_facts(tokenizer)
    if not is_wordpiece and not hasattr(tokenizer, "wordpiece_tokenizer"):
        die(f"tokenizer {type(tokenizer).__name__} is not WordPiece; "
            "bertserve serves BERT-style WordPiece tokenizers only")
    model = load_model(args, transformers)
    config = model.config

    max_pos = getattr(config, "max_position_embeddings", 512)
    max_len = args.max_sequence_length or max_pos
    if max_len > max_pos:
        print(f"note: --max-sequence-length {max_len} exceeds max_position_embeddings "
              f"{max_pos}; using {max_pos}", file=sys.stderr)
        max_len = max_pos

    with_token_types = forward_uses_token_types(model, tokenizer)
    wrapper = make_wrapper(torch, model, with_token_types)

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    loaded, schema_args, device = trace_and_save(torch, tokenizer, wrapper, with_token_types,
                                                 max_len, dtype, outdir)
    model_path = os.path.join(outdir, "model.pt")
    wrote = [model_path]

    labels = labels_of(config)
    lowercase, strip_accents = tokenizer_options(tokenizer, spec)

    if is_wordpiece:
        tok_path = os.path.join(outdir, "tokenizer.json")
        tokenizer.backend_tokenizer.save(tok_path)
        wrote.append(tok_path)
    saved = tokenizer.save_vocabulary(outdir)
    vocab_path = os.path.join(outdir, "vocab.txt")
    if os.path.exists(vocab_path):
        wrote.append(vocab_path)
    elif not is_wordpiece:
        die(f"save_vocabulary wrote {saved}, not vocab.txt")

    config_path = os.path.join(outdir, "config.pbtxt")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(config_text(args, labels, max_len, lowercase, strip_accents))
    wrote.append(config_path)

    weight_bytes = sum(t.numel() * t.element_size() for _, t in loaded.named_parameters())
    weight_bytes += sum(t.numel() * t.element_size() for _, t in loaded.named_buffers())
    loaded_dtype = next((t.dtype for _, t in loaded.named_parameters()), None)

    print(f"model {name}: forward({', '.join(schema_args)}) -> logits[{config.num_labels}]")
    print(f"labels: {labels}")
    print(f"max_sequence_length: {max_len}  dtype: {args.dtype}  "
          f"weight bytes: {weight_bytes} ({loaded_dtype})")
    for path in wrote:
        print(f"wrote {path}")

    sample = [t.to(device) for t in encode(tokenizer, [SAMPLE_TEXT], None, max_len, torch)]
    with torch.no_grad():
        logits = loaded.to(device)(*feed(*sample, with_token_types))[0].float()
    scores = ", ".join(f"{label}={value:.6f}" for label, value in zip(labels, logits.tolist()))
    print(f"sample: {SAMPLE_TEXT!r}")
    print(f"  tokens: {sample[0].shape[1]}  logits ({args.dtype}): {scores}")
    print(f"  check:  bertserve-cli classify -m {name} --raw-scores {json.dumps(SAMPLE_TEXT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
