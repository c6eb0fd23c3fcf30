#!/usr/bin/python3
"""A BASELINE for scripts/bench.sh, not part of bertserve: the per-request
Python grpcio server a team might write first.

It serves bertserve.v1.Inference/Classify on a model directory of the
repository's layout (model.pt, vocab.txt, config.pbtxt), with one forward per
request and no batching: torch.jit.load of the same model.pt, forwards one at
a time on one forward thread at torch.set_num_threads(usable cores), the
calls themselves on a grpcio thread pool. Forwards are neither run
concurrently nor on the grpcio threads, because each thread that runs one
keeps its own OpenMP team: with more OpenMP threads than cores, libgomp has
every team's workers sleep between parallel regions (a third of the
throughput at one caller on 2 cores). One forward thread is what a careful
per-request server does.

Tokenization is made as cheap as it can be so that it is not what this
baseline measures: lowercase, whitespace split and greedy WordPiece, with
the ids cached per text (the bench repeats its 1024 texts, so after the
first pass it is one dict lookup). No punctuation splitting or Unicode
normalization: on the bench's lowercase plain English words it gives
bertserve's ids, on other text it need not. Only what `bertserve-cli bench` reads is answered: one
result per input with num_tokens and softmax scores, and the timing split
(tokenize, queue = waiting for the forward thread, compute = the forward).

Usage (stubs are generated at run time with the system protoc, as
tests/integration/harness.py does):

  bench/python_baseline_server.py --model DIR [--listen 127.0.0.1:0]

Prints "python baseline listening on HOST:PORT" once it serves; stops on
SIGTERM or SIGINT.
"""

import argparse
import atexit
import concurrent.futures
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import torch

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def inference_messages():
    """Generates bertserve/v1/inference_pb2 into a temporary directory and imports it.

    Debian 12's python3-grpc-tools bundles protoc 3.5, which rejects proto3
    `optional`; the system protoc (matching python3-protobuf) is used, and the
    handler is registered by name instead of through generated stubs.
    """
    out = tempfile.mkdtemp(prefix="bertserve-baseline-pb-")
    atexit.register(shutil.rmtree, out, True)
    protoc = os.environ.get("PROTOC") or shutil.which("protoc") or "protoc"
    proto_dir = os.path.join(SOURCE_DIR, "proto")
    cmd = [protoc, "-I", proto_dir, f"--python_out={out}", "bertserve/v1/inference.proto"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    sys.path.insert(0, out)
    return importlib.import_module("bertserve.v1.inference_pb2")


def usable_cores():
    return max(1, len(os.sched_getaffinity(0)))


def max_sequence_length(model_dir):
    """config.pbtxt's max_sequence_length (bertserve's default, 512, if unset)."""
    try:
        with open(os.path.join(model_dir, "config.pbtxt"), encoding="utf-8") as f:
            found = re.search(r"^\s*max_sequence_length\s*:\s*(\d+)", f.read(), re.M)
    except FileNotFoundError:
        found = None
    return int(found.group(1)) if found else 512


class Baseline:
    """One model, one forward per request; Classify is called on grpcio's threads."""

    def __init__(self, model_dir, pb, threads):
        self.pb = pb
        with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.unk, self.pad = self.vocab["[UNK]"], self.vocab["[PAD]"]
        self.max_length = max_sequence_length(model_dir)
        self.ids_of = {}  # text -> ids; dict reads and writes are atomic under the GIL
        torch.set_num_threads(threads)
        self.model = torch.jit.load(os.path.join(model_dir, "model.pt"), map_location="cpu")
        self.model.eval()
        args = [a.name for a in self.model.forward.schema.arguments[1:]]
        self.token_types = "token_type_ids" in args
        # Every forward runs on this one thread (see the module comment).
        self.forward_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.name = os.path.basename(os.path.normpath(model_dir))
        # The profiling executor optimizes after its first runs.
        for _ in range(3):
            self.forward_thread.submit(self.forward, [[self.cls, self.sep]]).result()

    def encode(self, text):
        ids = self.ids_of.get(text)
        if ids is None:
            words = [i for w in text.lower().split() for i in self.wordpiece(w)]
            ids = [self.cls] + words[: self.max_length - 2] + [self.sep]
            self.ids_of[text] = ids
        return ids

    def wordpiece(self, word):
        """Greedy longest-match-first pieces of `word`, or [UNK]."""
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    pieces.append(self.vocab[piece])
                    start = end
                    break
            else:
                return [self.unk]
        return pieces

    def forward(self, rows):
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad] * (length - len(r)) for r in rows], dtype=torch.long)
        mask = (ids != self.pad).long()
        with torch.inference_mode():
            if self.token_types:
                out = self.model(ids, mask, torch.zeros_like(ids))
            else:
                out = self.model(ids, mask)
        if isinstance(out, dict):
            out = out["logits"]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def classify(self, request, context):
        start = time.perf_counter()
        rows = [self.encode(i.text) for i in request.inputs]
        tokenized = time.perf_counter()
        response = self.pb.ClassifyResponse(model=request.model, request_id=request.request_id)
        if not rows:
            return response
        def run():
            began = time.perf_counter()
            return began, self.forward(rows), time.perf_counter()

        locked, logits, done = self.forward_thread.submit(run).result()
        scores = torch.softmax(logits.float(), dim=-1).tolist()
        for ids, row in zip(rows, scores):
            result = response.results.add(num_tokens=len(ids))
            for index, score in sorted(enumerate(row), key=lambda s: -s[1]):
                result.scores.add(label=f"LABEL_{index}", index=index, score=score)
        response.timing.tokenize_seconds = tokenized - start
        response.timing.queue_seconds = locked - tokenized
        response.timing.compute_seconds = done - locked
        response.timing.total_seconds = time.perf_counter() - start
        return response


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (model.pt, vocab.txt)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port, port 0 for any")
    parser.add_argument("--threads", type=int, default=usable_cores(),
                        help="torch intra-op threads (default: usable cores)")
    parser.add_argument("--workers", type=int, default=2 * usable_cores(),
                        help="grpcio handler threads (default: twice the usable cores)")
    args = parser.parse_args()

    pb = inference_messages()
    baseline = Baseline(args.model, pb, args.threads)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=args.workers))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bertserve.v1.Inference",
        {"Classify": grpc.unary_unary_rpc_method_handler(
            baseline.classify,
            request_deserializer=pb.ClassifyRequest.FromString,
            response_serializer=pb.ClassifyResponse.SerializeToString)}),))
    host = args.listen.rsplit(":", 1)[0]
    port = server.add_insecure_port(args.listen)
    if port == 0:
        sys.exit(f"python baseline: cannot listen on {args.listen}")
    server.start()
    print(f"python baseline listening on {host}:{port} (model {baseline.name}, "
          f"{args.threads} intra-op threads, {args.workers} workers)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
