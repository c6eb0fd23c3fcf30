"""OOM recovery through a real server: on the simulated device, with "another
process" taking most of the memory after warm-up, 504 requests of random
lengths and counts from 8 concurrent gRPC clients all get the scores PyTorch
gives each input alone; OOMs and splits show in /metrics; the batch token
limit falls, and rises again once the pressure is gone. An input that fits
nowhere fails alone.

scripts/gpu-check.sh runs the storm again on a real GPU (CTest
integration_oom_storm_gpu, label gpu: BERTSERVE_OOM_DEVICE=cuda:0, with the
bert-base-sized model of BERTSERVE_MEMORY_MODELS): there another process,
a PyTorch child holding device memory, takes all but a quarter of a full
batch's activations, and the OOMs are the CUDA caching allocator's own."""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import grpc

import harness
from harness import classify_request, models_pb2

DEVICE = os.environ.get("BERTSERVE_OOM_DEVICE", "sim")
CLIENTS = 8
# The simulated device runs the CPU kernels the reference runs; a GPU sums in
# other orders (as in test_memory).
TOLERANCE = 1e-5 if DEVICE == "sim" else 2e-3
# A full batch, and the part of its activations the squeeze leaves free. On a
# GPU the batch is larger and the part smaller, so that the CUDA allocator's
# 2 MiB pages and 20 MiB segments are small beside what is squeezed.
MAX_SEQUENCE_LENGTH, MAX_BATCH_TOKENS, SQUEEZE = (64, 2048, 4) if DEVICE == "sim" else (128, 8192, 8)
# Requests per client, and at most how many texts of at most how many words
# each carries. A GPU's forwards are so fast that requests seldom share one:
# there a single request must be able to outgrow the squeeze (16 texts of up
# to 128 tokens: 2048 tokens, against 1024 tokens' worth left free), and
# fewer of them keep the CPU reference's time down.
REQUESTS_PER_CLIENT, MAX_TEXTS, MAX_WORDS = (63, 8, 50) if DEVICE == "sim" else (16, 16, 120)
WORDS = ["hello", "world", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
         "serving", "models", "memory", "caf\u00e9"]


def text(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words))


# Another process on a GPU: a PyTorch child that takes device memory until
# the driver reports a given amount free ("leave BYTES"), or gives it all back
# ("leave -1"); it answers each command with the free bytes it left.
_CUDA_HOLDER = r"""
import sys, torch
device = torch.device(sys.argv[1])
torch.cuda.init()
held, step = [], 2 << 20
for line in sys.stdin:
    want = int(line)
    held.clear()
    torch.cuda.empty_cache()
    while want >= 0:
        free = torch.cuda.mem_get_info(device)[0]
        take = min(256 << 20, free - want) // step * step
        if take < step:
            break
        try:
            held.append(torch.empty(take, dtype=torch.uint8, device=device))
        except RuntimeError:  # torch.cuda.OutOfMemoryError in 2.x; someone else took it
            break
    print(torch.cuda.mem_get_info(device)[0], flush=True)
"""


class CudaHolder:
    def __init__(self, device):
        self.proc = subprocess.Popen([sys.executable, "-c", _CUDA_HOLDER, device],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def leave(self, free_bytes):
        """Holds device memory until `free_bytes` are left free (-1: none held);
        returns the free bytes the driver then reports."""
        self.proc.stdin.write(f"{free_bytes}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the CUDA memory holder exited")
        return int(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class OomStormTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        if DEVICE.startswith("cuda"):
            import torch
            if not torch.cuda.is_available():
                raise unittest.SkipTest(f"{DEVICE}: no CUDA GPU here")
        cls.repo = tempfile.mkdtemp(prefix="bertserve-storm-")
        cls.addClassCleanup(shutil.rmtree, cls.repo, True)
        model_dir = os.path.join(cls.repo, "storm")
        src = os.environ.get("BERTSERVE_MEMORY_MODELS") if DEVICE != "sim" else None
        shutil.copytree(os.path.join(src, "plain") if src else
                        os.path.join(harness.models_dir(), "tt-tuple"), model_dir)
        with open(os.path.join(model_dir, "config.pbtxt"), "w") as f:
            labels = "a,b" if src else "a,b,c"  # as the models were made
            f.write("".join(f'labels: "{l}" ' for l in labels.split(",")) +
                    f"\nmax_sequence_length: {MAX_SEQUENCE_LENGTH}\n"
                    f"batch {{ max_client_batch_size: 16 max_batch_tokens: {MAX_BATCH_TOKENS} }}\n")
        cls.reference = harness.ReferenceModel(model_dir)
        cls.wanted = {}
        if DEVICE == "sim":
            cls.foreign = os.path.join(cls.repo, "foreign-bytes")
            with open(cls.foreign, "w") as f:
                f.write("0")
            args = ["--device", "sim", "--simulated-device-memory", str(256 << 20),
                    "--vram-reserve", "0", "--simulated-foreign-memory-file", cls.foreign]
        else:
            cls.holder = CudaHolder(DEVICE)
            cls.addClassCleanup(cls.holder.close)
            args = ["--device", DEVICE]
        harness.start_server(cls, repository=cls.repo, load=["storm"], extra_args=args)
        cls.server.wait_ready()

    def press(self, foreign_bytes):
        """Sets how much of the simulated device other processes hold, and waits
        until the server has seen it. On a GPU only 0 (the holder lets go)."""
        if DEVICE == "sim":
            harness.set_foreign_memory(self.server, self.foreign, foreign_bytes)
        else:
            self.assertEqual(foreign_bytes, 0)
            self.holder.leave(-1)

    def leave_free(self, activation_bytes):
        """Lets other processes take all but `activation_bytes` of the device
        beyond the resident weights (measured once no batch is alive)."""
        if DEVICE == "sim":
            harness.leave_free(self.server, self.foreign, activation_bytes)
            return
        # The caching allocator keeps what warm-up and earlier batches took
        # (no OOM could happen inside it): an unload gives that back to the
        # driver, and the reload reuses warm-up's measurement without a forward.
        self.server.models.Unload(models_pb2.UnloadModelRequest(name="storm"))
        self.server.models.Load(models_pb2.LoadModelRequest(name="storm"))
        free = self.holder.leave(activation_bytes)
        print(f"\n{DEVICE}: {free / 2**20:.0f} MiB left free for activations of up to "
              f"{activation_bytes * SQUEEZE / 2**20:.0f} MiB", file=sys.stderr)

    def metric(self, name, labels=""):
        samples = harness.scraped_samples(self.server.metrics_port, name)
        return sum(v for k, v in samples.items() if labels in k)

    def classify(self, texts):
        return self.server.inference.Classify(classify_request("storm", texts, raw_scores=True))

    def want(self, t):
        if t not in self.wanted:  # a bert-base-sized reference is slow on the CPU
            tok = self.server.inference.Tokenize(harness.inference_pb2.TokenizeRequest(
                model="storm", input=harness.text_input(t)))
            self.wanted[t] = self.reference.logits([x.id for x in tok.tokens],
                                                   [x.type_id for x in tok.tokens])
        return self.wanted[t]

    def test_1_storm_answers_everything_exactly(self):
        status = self.server.models.Get(models_pb2.GetModelRequest(name="storm"))
        self.assertTrue(status.activation_reserve_measured)
        # Proven with the device free.
        self.assertEqual(status.batch_token_limit, MAX_BATCH_TOKENS)
        self.leave_free(status.activation_reserve_bytes // SQUEEZE)
        failures, wrong, answered = [], [], [0]
        lock = threading.Lock()

        def client(seed):
            rng = random.Random(seed)
            for _ in range(REQUESTS_PER_CLIENT):
                texts = [text(rng, rng.randint(1, MAX_WORDS))
                         for _ in range(rng.randint(1, MAX_TEXTS))]
                try:
                    reply = self.classify(texts)
                except grpc.RpcError as e:
                    with lock:
                        failures.append(f"{e.code().name}: {e.details()}")
                    continue
                for t, result in zip(texts, reply.results):
                    want = self.want(t)
                    for s in result.scores:
                        if abs(s.score - want[s.index]) > TOLERANCE:
                            with lock:
                                wrong.append((t, s.index, s.score, want[s.index]))
                with lock:
                    answered[0] += 1

        threads = [threading.Thread(target=client, args=(100 + c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertEqual(wrong, [])
        self.assertEqual(answered[0], CLIENTS * REQUESTS_PER_CLIENT)
        self.assertGreater(self.metric("bertserve_oom_events_total", 'model="storm"'), 0)
        self.assertGreater(self.metric("bertserve_batch_splits_total", 'model="storm"'), 0)
        self.assertGreater(self.metric("bertserve_batch_token_limit_changes_total",
                                       'direction="down"'), 0)

        # The other process leaves: a run of successes raises the limit again.
        self.press(0)
        rng = random.Random(7)
        for _ in range(300):
            if self.metric("bertserve_batch_token_limit_changes_total", 'direction="up"') > 0:
                break
            self.classify([text(rng, 40) for _ in range(16)])
        self.assertGreater(self.metric("bertserve_batch_token_limit_changes_total",
                                       'direction="up"'), 0)

    def test_2_an_input_that_fits_nowhere_fails_alone(self):
        if DEVICE != "sim":
            self.skipTest("the CUDA allocator takes memory in 2 MiB pages and 20 MiB "
                          "segments: a squeeze to less than one row cannot be set exactly")
        status = self.server.models.Get(models_pb2.GetModelRequest(name="storm"))
        long_text = text(random.Random(3), 60)
        # Half of what one 64-token row needs (the reserve covers 32 of them).
        self.leave_free(status.activation_reserve_bytes // 64)
        try:
            self.assertRpcError(
                [grpc.StatusCode.RESOURCE_EXHAUSTED], "even alone", self.server.inference.Classify,
                classify_request("storm", [long_text], request_id="too-long-1"))
            reply = self.classify(["hello"])
            self.assertEqual(len(reply.results), 1)
        finally:
            self.press(0)
        self.assertEqual(len(self.classify([long_text]).results), 1)
        # The failure is logged once, with its model, code and request id.
        # (The log reaches the test through a pipe, after the answer.)
        self.server.wait_for_log(lambda l: "request_id=too-long-1" in l, "for request too-long-1")
        lines = [l for l in self.server.log().splitlines() if "request_id=too-long-1" in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("code=RESOURCE_EXHAUSTED", lines[0])
        self.assertIn("model=storm", lines[0])


if __name__ == "__main__":
    unittest.main()
