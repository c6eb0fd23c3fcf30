"""Two models that cannot share the simulated device, asked for in turns by
concurrent clients: every request is answered, with PyTorch's scores; the
device is time-sliced between the models (a swap-in serves every request
queued for its model) instead of failing requests.

The setup is the one where requests used to fail (28% with 2 clients, 37% with
8): the demo models on a 256 MiB simulated device with a 165 MB budget; each
fits alone, the two together do not (the larger model's activation reserve).

Printed, for each client count: answered requests per second, swap-ins per
answered request (they fall as load rises: each turn serves more requests),
and the same clients' throughput when each model is served alone in a run of
its own (the two runs one after the other), with the ratio of the two. The
figures are printed for the reader; no assertion depends on timing.

BERTSERVE_CONTENTION_SECONDS (default 10) sets each phase's length.
"""

import collections
import os
import shutil
import tempfile
import threading
import time
import unittest

import grpc

import harness
from harness import inference_pb2, models_pb2

MODELS = ("demo-sentiment", "demo-topics")
TEXTS = ("what a lovely day", "the service was slow and the food was cold",
         "premise and hypothesis", "an input")
SECONDS = float(os.environ.get("BERTSERVE_CONTENTION_SECONDS", "10"))
# Long enough that only a stuck server misses it: a request waits for its
# model's turn, and a turn on a busy 2-core machine can take seconds.
CALL_TIMEOUT_S = 120.0
SCORE_TOLERANCE = 1e-4


class ContentionTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-contention-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.repo = harness.make_demo_repo(os.path.join(cls.tmp, "demo"))
        harness.start_server(cls, repository=cls.repo, load=[], extra_args=[
            "--device", "sim", "--simulated-device-memory", "256MiB",
            "--vram-budget", "165MB"])
        cls.server.wait_ready()
        # What every answer must be: PyTorch on the same model.pt and the
        # server's own token ids (the tokenizer is tested elsewhere).
        cls.expected = {}
        for model in MODELS:
            reference = harness.ReferenceModel(os.path.join(cls.repo, model))
            for text in TEXTS:
                tokens = cls.server.inference.Tokenize(inference_pb2.TokenizeRequest(
                    model=model, input=harness.text_input(text)))
                cls.expected[(model, text)] = harness.probabilities(
                    reference.logits([t.id for t in tokens.tokens],
                                     [t.type_id for t in tokens.tokens]))

    def swap_ins(self):
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        return sum(m.swap_ins + m.loads for m in listing.models if m.name in MODELS)

    def drive(self, clients, models, seconds):
        """`clients` threads, each cycling through `models` (one request per
        model in turn) for `seconds`; returns (answers, errors by code,
        score mismatches, elapsed seconds)."""
        answers = collections.Counter()
        errors = collections.Counter()
        mismatches = []
        lock = threading.Lock()
        labels = {m: list(self.server.models.Get(models_pb2.GetModelRequest(name=m)).labels)
                  for m in models}
        start = time.monotonic()
        stop = start + seconds

        def client(seed):
            with grpc.insecure_channel(self.server.address) as channel:
                stub = harness.Stub(channel,
                                    inference_pb2.DESCRIPTOR.services_by_name["Inference"])
                i = seed
                while time.monotonic() < stop:
                    model, text = models[i % len(models)], TEXTS[i % len(TEXTS)]
                    i += 1
                    try:
                        reply = stub.Classify(harness.classify_request(model, [text]),
                                              timeout=CALL_TIMEOUT_S)
                    except grpc.RpcError as e:
                        with lock:
                            errors[f"{e.code().name}: {e.details()}"] += 1
                        continue
                    got = {s.label: s.score for s in reply.results[0].scores}
                    bad = None
                    for j, p in enumerate(self.expected[(model, text)]):
                        if abs(got[labels[model][j]] - p) > SCORE_TOLERANCE:
                            bad = f"{model} {text!r}: {got} vs {self.expected[(model, text)]}"
                    with lock:
                        answers[model] += 1
                        if bad:
                            mismatches.append(bad)

        threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return answers, errors, mismatches, time.monotonic() - start

    def contend(self, clients):
        # Alone: each model in a run of its own, the same clients.
        alone_answers, alone_seconds = 0, 0.0
        for model in MODELS:
            answers, errors, mismatches, elapsed = self.drive(clients, (model,), SECONDS / 2)
            self.assertFalse(errors, f"{model} alone: {dict(errors)}")
            self.assertFalse(mismatches, mismatches[:5])
            alone_answers += sum(answers.values())
            alone_seconds += elapsed
        before = self.swap_ins()
        answers, errors, mismatches, elapsed = self.drive(clients, MODELS, SECONDS)
        swaps = self.swap_ins() - before
        answered = sum(answers.values())
        shared_rate, alone_rate = answered / elapsed, alone_answers / alone_seconds
        print(f"\n{clients} clients alternating between {' and '.join(MODELS)}: "
              f"{answered} answered in {elapsed:.1f} s ({shared_rate:.1f}/s), "
              f"{sum(errors.values())} errors, {swaps} swap-ins or loads "
              f"({swaps / max(answered, 1):.2f} per answer); each model alone, one run after "
              f"the other: {alone_rate:.1f}/s; ratio {shared_rate / alone_rate:.2f}",
              flush=True)
        self.assertFalse(errors, f"requests failed under contention: {dict(errors)}")
        self.assertFalse(mismatches, mismatches[:5])
        for model in MODELS:
            self.assertGreater(answers[model], 0, f"{model} was never answered")
        return swaps / max(answered, 1)

    def test_1_two_clients(self):
        self.contend(2)

    def test_2_eight_clients(self):
        self.contend(8)


if __name__ == "__main__":
    unittest.main()
