#!/usr/bin/python3
"""Writes a tiny random-weight BERT text classifier as TorchScript.

The architecture is BERT's (word + position + token-type embeddings, LayerNorm,
post-norm encoder layers with multi-head self-attention and a GELU feed-forward
block, a tanh pooler on [CLS], a linear classifier), written directly in torch
so that no `transformers` package is needed. Attention uses explicit
matmul/softmax (no scaled_dot_product_attention), so the traced module loads in
libtorch 1.13. Padding is masked additively with -10000, which makes padded
and unpadded inputs give the same logits.

The weights are random (from --seed): the model is for tests and demos, its
labels mean nothing.

Writes OUT/model.pt, and optionally OUT/config.pbtxt (--write-config, or any
of --labels/--max-sequence-length/...) and OUT/vocab.txt (--vocab FILE).
Run with a python that has torch, e.g. Debian's /usr/bin/python3.
"""

import argparse
import math
import os
import shutil
import sys
import tempfile

import torch
from torch import nn
import torch.nn.functional as F


class Embeddings(nn.Module):
    def __init__(self, vocab_size, hidden, max_position, type_vocab_size):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_position, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        # A buffer, as in Hugging Face's BERT: weight_bytes must count buffers.
        self.register_buffer("position_ids", torch.arange(max_position).unsqueeze(0))
        # Segment ids for models without a token_type_ids argument. A buffer
        # rather than zeros_like(): tracing would bake the CPU device into it.
        self.register_buffer(
            "token_type_ids", torch.zeros(1, max_position, dtype=torch.int64))

    def default_token_type_ids(self, input_ids):
        batch, seq_len = input_ids.size(0), input_ids.size(1)
        return self.token_type_ids[:, :seq_len].expand(batch, seq_len)

    def forward(self, input_ids, token_type_ids):
        seq_len = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_len]
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of heads {heads}")
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def split_heads(self, x):
        batch, seq = x.size(0), x.size(1)
        return x.view(batch, seq, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, hidden_states, additive_mask):
        q = self.split_heads(self.query(hidden_states))
        k = self.split_heads(self.key(hidden_states))
        v = self.split_heads(self.value(hidden_states))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores + additive_mask
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        batch, seq = context.size(0), context.size(1)
        context = context.view(batch, seq, self.heads * self.head_dim)
        return self.LayerNorm(self.output(context) + hidden_states)


class EncoderLayer(nn.Module):
    def __init__(self, hidden, heads, intermediate):
        super().__init__()
        self.attention = SelfAttention(hidden, heads)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, hidden_states, additive_mask):
        attended = self.attention(hidden_states, additive_mask)
        ffn = self.output(F.gelu(self.intermediate(attended)))
        return self.LayerNorm(ffn + attended)


class TinyBert(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.embeddings = Embeddings(args.vocab_size, args.hidden, args.max_position, 2)
        self.layers = nn.ModuleList(
            EncoderLayer(args.hidden, args.heads, args.intermediate) for _ in range(args.layers)
        )
        self.pooler = nn.Linear(args.hidden, args.hidden)
        self.classifier = nn.Linear(args.hidden, args.num_labels)

    def encode(self, input_ids, attention_mask, token_type_ids):
        hidden = self.embeddings(input_ids, token_type_ids)
        # [batch, 1, 1, seq]; 0 where attended, -10000 at padding. type_as keeps
        # the traced graph dtype-agnostic, so the server may convert to fp16/bf16.
        mask = attention_mask.unsqueeze(1).unsqueeze(2).type_as(hidden)
        additive_mask = (1.0 - mask) * -10000.0
        for layer in self.layers:
            hidden = layer(hidden, additive_mask)
        pooled = torch.tanh(self.pooler(hidden[:, 0]))
        return self.classifier(pooled), pooled


def _shape_output(logits, pooled, output):
    if output == "tuple":
        return logits, pooled
    if output == "dict":
        return {"logits": logits}
    return logits


class WithTokenType(nn.Module):
    """forward(input_ids, attention_mask, token_type_ids)."""

    def __init__(self, bert, output):
        super().__init__()
        self.bert = bert
        self.output_kind = output

    def forward(self, input_ids, attention_mask, token_type_ids):
        logits, pooled = self.bert.encode(input_ids, attention_mask, token_type_ids)
        return _shape_output(logits, pooled, self.output_kind)


class NoTokenType(nn.Module):
    """forward(input_ids, attention_mask); every token is segment 0."""

    def __init__(self, bert, output):
        super().__init__()
        self.bert = bert
        self.output_kind = output

    def forward(self, input_ids, attention_mask):
        token_type_ids = self.bert.embeddings.default_token_type_ids(input_ids)
        logits, pooled = self.bert.encode(input_ids, attention_mask, token_type_ids)
        return _shape_output(logits, pooled, self.output_kind)


def init_weights(model, generator):
    # Larger than BERT's 0.02 so that different inputs give clearly different
    # logits: the tests compare to 1e-5 and must notice a wrong id, type id or
    # mask. The classifier is scaled for logits of about unit size, so that
    # softmax does not saturate (saturated probabilities hide errors).
    hidden = model.bert.pooler.in_features
    for name, p in model.named_parameters():
        if "LayerNorm" in name:
            continue  # ones and zeros, as initialised
        std = 1.5 / math.sqrt(hidden) if name.startswith("bert.classifier") else 0.1
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=generator) * std)


def example_inputs(args, generator):
    batch, seq = 2, 8
    ids = torch.randint(1000, args.vocab_size, (batch, seq), generator=generator, dtype=torch.int64)
    ids[:, 0] = min(101, args.vocab_size - 1)
    ids[:, -1] = min(102, args.vocab_size - 1)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    types = torch.zeros(batch, seq, dtype=torch.int64)
    types[:, seq // 2:] = 1
    if args.signature == "with_token_type":
        return ids, mask, types
    return ids, mask


def logits_of(output):
    if isinstance(output, (tuple, list)):
        return output[0]
    if isinstance(output, dict):
        return output["logits"]
    return output


def build(args):
    generator = torch.Generator().manual_seed(args.seed)
    bert = TinyBert(args)
    wrapper_cls = WithTokenType if args.signature == "with_token_type" else NoTokenType
    model = wrapper_cls(bert, args.output)
    init_weights(model, generator)
    model.eval()
    inputs = example_inputs(args, generator)
    with torch.no_grad():
        traced = torch.jit.trace(model, inputs, strict=(args.output != "dict"))
    return model, traced


def verify(path, eager, args):
    """Reloads model.pt and checks schema, shapes and padding invariance."""
    loaded = torch.jit.load(path)
    loaded.eval()
    arg_names = [a.name for a in loaded.forward.schema.arguments][1:]
    expected = ["input_ids", "attention_mask"]
    if args.signature == "with_token_type":
        expected.append("token_type_ids")
    if arg_names != expected:
        raise SystemExit(f"{path}: forward arguments are {arg_names}, expected {expected}")

    generator = torch.Generator().manual_seed(args.seed + 1)
    max_len = min(args.max_position, 40)
    lengths = [max_len, 5, 17]
    batch = len(lengths)
    ids = torch.zeros(batch, max_len, dtype=torch.int64)
    mask = torch.zeros(batch, max_len, dtype=torch.int64)
    types = torch.zeros(batch, max_len, dtype=torch.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1000, args.vocab_size, (n,), generator=generator)
        mask[i, :n] = 1
        types[i, n // 2:n] = 1

    def run(m, i, m_, t):
        feed = (i, m_, t) if args.signature == "with_token_type" else (i, m_)
        with torch.no_grad():
            return logits_of(m(*feed))

    batched = run(loaded, ids, mask, types)
    if tuple(batched.shape) != (batch, args.num_labels):
        raise SystemExit(f"{path}: logits shape {tuple(batched.shape)}")
    worst = 0.0
    for i, n in enumerate(lengths):
        one = run(loaded, ids[i:i + 1, :n], mask[i:i + 1, :n], types[i:i + 1, :n])
        ref = run(eager, ids[i:i + 1, :n], mask[i:i + 1, :n], types[i:i + 1, :n])
        worst = max(worst, (one - batched[i:i + 1]).abs().max().item(),
                    (one - ref).abs().max().item())
    # Deeper and wider models add up more float rounding from the different
    # summation orders of padded and unpadded shapes.
    tolerance = 1e-5 if args.layers <= 2 and args.hidden <= 256 else 1e-4
    if worst > tolerance:
        raise SystemExit(f"{path}: padded/unpadded/eager logits differ by {worst}")
    weight_bytes = sum(t.numel() * t.element_size() for _, t in loaded.named_parameters())
    weight_bytes += sum(t.numel() * t.element_size() for _, t in loaded.named_buffers())
    return arg_names, weight_bytes, batched[0].tolist()


def pbtxt_string(s):
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def config_text(args, labels):
    lines = ["# bertserve.v1.ModelConfig (protobuf text format). Random weights: labels mean nothing."]
    for label in labels:
        lines.append(f"labels: {pbtxt_string(label)}")
    lines.append(f"max_sequence_length: {args.max_sequence_length or args.max_position}")
    lines.append(f"dtype: {args.dtype.upper()}")
    lines.append("tokenizer {")
    lines.append("  lowercase: true")
    lines.append("}")
    batch = []
    if args.max_client_batch_size:
        batch.append(f"  max_client_batch_size: {args.max_client_batch_size}")
    if args.max_batch_tokens:
        batch.append(f"  max_batch_tokens: {args.max_batch_tokens}")
    if batch:
        lines += ["batch {"] + batch + ["}"]
    for extra in args.config_line:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def write_atomically(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=128)
    p.add_argument("--max-position", type=int, default=128)
    p.add_argument("--num-labels", type=int, default=None,
                   help="number of logits (default: the number of --labels, else 2)")
    p.add_argument("--signature", choices=["with_token_type", "no_token_type"],
                   default="with_token_type")
    p.add_argument("--output", choices=["tensor", "tuple", "dict"], default="tensor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", default=None,
                   help="comma-separated label names for config.pbtxt")
    p.add_argument("--max-sequence-length", type=int, default=0,
                   help="config max_sequence_length (default: --max-position)")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    p.add_argument("--max-client-batch-size", type=int, default=0)
    p.add_argument("--max-batch-tokens", type=int, default=0)
    p.add_argument("--config-line", action="append", default=[],
                   help="extra raw text-format line appended to config.pbtxt")
    p.add_argument("--write-config", action="store_true",
                   help="write config.pbtxt even without --labels")
    p.add_argument("--vocab", default=None, help="vocab.txt to copy into --out")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else []
    if any(not s for s in labels):
        p.error("--labels has an empty name")
    if args.num_labels is None:
        args.num_labels = len(labels) if labels else 2
    if labels and len(labels) != args.num_labels:
        p.error(f"--labels has {len(labels)} names but --num-labels is {args.num_labels}")
    if args.max_sequence_length > args.max_position:
        p.error("--max-sequence-length exceeds --max-position")
    args.label_list = labels
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    eager, traced = build(args)
    path = os.path.join(args.out, "model.pt")
    # Saved under its final base name (the archive's folder is named after
    # it) in a scratch directory, checked, then moved into place.
    scratch = tempfile.mkdtemp(dir=args.out, prefix=".tmp-")
    try:
        tmp = os.path.join(scratch, "model.pt")
        traced.save(tmp)
        inputs, weight_bytes, logits = verify(tmp, eager, args)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    wrote = [path]
    wants_config = (args.write_config or args.label_list or args.max_sequence_length
                    or args.max_client_batch_size or args.max_batch_tokens or args.config_line)
    if wants_config:
        cfg = os.path.join(args.out, "config.pbtxt")
        write_atomically(cfg, config_text(args, args.label_list).encode("utf-8"))
        wrote.append(cfg)
    if args.vocab:
        dst = os.path.join(args.out, "vocab.txt")
        shutil.copyfile(args.vocab, dst)
        wrote.append(dst)
    if not args.quiet:
        print(f"wrote {', '.join(wrote)}: inputs={inputs} output={args.output} "
              f"labels={args.num_labels} weight_bytes={weight_bytes} "
              f"sample_logits={[round(x, 4) for x in logits]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
