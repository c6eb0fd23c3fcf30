"""OOM recovery through a real server: on the simulated device, with "another
process" taking most of the memory after warm-up, 504 requests of random
lengths and counts from 8 concurrent gRPC clients all get the scores PyTorch
gives each input alone; OOMs and splits show in /metrics; the batch token
limit falls, and rises again once the pressure is gone. An input that fits
nowhere fails alone."""

import os
import random
import shutil
import tempfile
import threading
import unittest

import grpc

import harness
from harness import classify_request, models_pb2

CLIENTS = 8
REQUESTS_PER_CLIENT = 63  # 504 requests
TOLERANCE = 1e-5
WORDS = ["hello", "world", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
         "serving", "models", "memory", "caf\u00e9"]


def text(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words))


class OomStormTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="bertserve-storm-")
        cls.addClassCleanup(shutil.rmtree, cls.repo, True)
        model_dir = os.path.join(cls.repo, "storm")
        shutil.copytree(os.path.join(harness.models_dir(), "tt-tuple"), model_dir)
        with open(os.path.join(model_dir, "config.pbtxt"), "w") as f:
            f.write('labels: "a" labels: "b" labels: "c"\nmax_sequence_length: 64\n'
                    "batch { max_client_batch_size: 16 max_batch_tokens: 2048 }\n")
        cls.reference = harness.ReferenceModel(model_dir)
        cls.foreign = os.path.join(cls.repo, "foreign-bytes")
        with open(cls.foreign, "w") as f:
            f.write("0")
        harness.start_server(cls, repository=cls.repo, load=["storm"], extra_args=[
            "--device", "sim", "--simulated-device-memory", str(256 << 20),
            "--vram-reserve", "0", "--simulated-foreign-memory-file", cls.foreign])
        cls.server.wait_ready()

    def press(self, foreign_bytes):
        """Sets how much of the simulated device other processes hold, and waits
        until the server has seen it."""
        harness.set_foreign_memory(self.server, self.foreign, foreign_bytes)

    def leave_free(self, activation_bytes):
        """Lets other processes take all but `activation_bytes` of the device
        beyond the resident weights (measured once no batch is alive)."""
        harness.leave_free(self.server, self.foreign, activation_bytes)

    def metric(self, name, labels=""):
        samples = harness.scraped_samples(self.server.metrics_port, name)
        return sum(v for k, v in samples.items() if labels in k)

    def classify(self, texts):
        return self.server.inference.Classify(classify_request("storm", texts, raw_scores=True))

    def want(self, t):
        tok = self.server.inference.Tokenize(harness.inference_pb2.TokenizeRequest(
            model="storm", input=harness.text_input(t)))
        return self.reference.logits([x.id for x in tok.tokens], [x.type_id for x in tok.tokens])

    def test_1_storm_answers_everything_exactly(self):
        status = self.server.models.Get(models_pb2.GetModelRequest(name="storm"))
        self.assertTrue(status.activation_reserve_measured)
        self.assertEqual(status.batch_token_limit, 2048)  # proven with the device free
        self.leave_free(status.activation_reserve_bytes // 4)
        failures, wrong, answered = [], [], [0]
        lock = threading.Lock()

        def client(seed):
            rng = random.Random(seed)
            for _ in range(REQUESTS_PER_CLIENT):
                texts = [text(rng, rng.randint(1, 50)) for _ in range(rng.randint(1, 8))]
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
