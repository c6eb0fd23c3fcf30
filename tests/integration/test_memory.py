"""The VRAM budget, offload to host memory and the host budget, on the
simulated device (real tensors counted against a capacity), through a real
server: scores stay right while models move, the budget holds, and every
move shows in the Models API and in /metrics."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import grpc

import harness
from harness import classify_request, models_pb2

# "sim" in CI; scripts/gpu-check.sh runs the same test on "cuda:0" (CTest
# label gpu), with bert-base-sized models when BERTSERVE_MEMORY_MODELS names
# a directory holding the four model names below.
DEVICE = os.environ.get("BERTSERVE_MEMORY_DEVICE", "sim")
# Four test models of ~8.13 MB each (weights + int64 buffers).
ROUND_ROBIN = ["tt-tuple", "single-logit", "plain"]
SPARE = "nott-dict"
TEXTS = ["hello there", "The quick brown fox jumps over the lazy dog.", "caf\u00e9 na\u00efve"]
# The simulated device runs the CPU kernels the reference runs; a GPU sums in
# other orders (12 layers of them with bert-base-sized models).
TOLERANCE = 1e-5 if DEVICE == "sim" else 2e-3


class MemoryTest(harness.ServerTestCase):
    """Budget = 3 model weights: two models fit with their activation reserve,
    even before warm-up has measured it (the estimate until then is the
    weight bytes), three never do. Host budget = 1.5 models."""

    @classmethod
    def setUpClass(cls):
        if DEVICE.startswith("cuda"):
            import torch
            if not torch.cuda.is_available():
                raise unittest.SkipTest(f"{DEVICE}: no CUDA GPU here")
        cls.repo = tempfile.mkdtemp(prefix="bertserve-memory-")
        cls.addClassCleanup(shutil.rmtree, cls.repo, True)
        src = os.environ.get("BERTSERVE_MEMORY_MODELS") or harness.models_dir()
        for name in ROUND_ROBIN + [SPARE]:
            shutil.copytree(os.path.join(src, name), os.path.join(cls.repo, name))
            # Small token budget: warm-up (and so the reserve) stays small.
            labels = "".join(f'labels: "{l}" ' for l in cls._labels(os.path.join(src, name)))
            with open(os.path.join(cls.repo, name, "config.pbtxt"), "w") as f:
                f.write(f"{labels}\nmax_sequence_length: 64\n"
                        "batch { max_client_batch_size: 8 max_batch_tokens: 256 }\n")
        cls.refs = {n: harness.ReferenceModel(os.path.join(cls.repo, n)) for n in ROUND_ROBIN + [SPARE]}
        cls.weights = max(r.weight_bytes() for r in cls.refs.values())
        # A model bigger than the whole budget (3 x weights): 31 MB next to
        # the 8 MB test models, bert-large-sized next to bert-base-sized ones.
        shape = (["--hidden", "256", "--heads", "4", "--intermediate", "512", "--layers", "1"]
                 if cls.weights < 100e6 else
                 ["--hidden", "1024", "--heads", "16", "--intermediate", "4096", "--layers", "24"])
        subprocess.run([sys.executable, os.path.join(harness.require_env("BERTSERVE_SOURCE_DIR"),
                                                     "scripts", "make_test_model.py"),
                        "--out", os.path.join(cls.repo, "huge"), *shape,
                        "--vocab", os.path.join(harness.test_data_dir(), "vocab.txt"),
                        "--max-sequence-length", "64", "--quiet"], check=True)
        cls.budget = int(3 * cls.weights)
        cls.host_budget = int(1.5 * cls.weights)
        harness.start_server(cls, repository=cls.repo, load=[], extra_args=[
            "--device", DEVICE, "--simulated-device-memory", str(4 * cls.weights),
            "--vram-reserve", "0",
            "--vram-budget", str(cls.budget), "--host-budget", str(cls.host_budget)])
        cls.server.wait_ready()

    @staticmethod
    def _labels(model_dir):
        with open(os.path.join(model_dir, "config.pbtxt")) as f:
            return re.findall(r'labels:\s*"([^"]*)"', f.read())

    def listing(self):
        return self.server.models.List(models_pb2.ListModelsRequest())

    def states(self):
        return {m.name: harness.state_name(m.state) for m in self.listing().models}

    def check_scores(self, model, text):
        tok = self.server.inference.Tokenize(harness.inference_pb2.TokenizeRequest(
            model=model, input=harness.text_input(text)))
        want = self.refs[model].logits([t.id for t in tok.tokens], [t.type_id for t in tok.tokens])
        reply = self.server.inference.Classify(classify_request(model, [text], raw_scores=True))
        got = {s.index: s.score for s in reply.results[0].scores}
        for i, w in enumerate(want):
            self.assertAlmostEqual(got[i], w, delta=TOLERANCE, msg=f"{model} logit {i}")

    def check_budget(self):
        device = self.listing().device
        self.assertEqual(device.budget_bytes, self.budget)
        self.assertLessEqual(device.reserved_bytes, device.budget_bytes)
        # What the simulated device really holds stays inside the budget too.
        self.assertLessEqual(device.allocator_allocated_bytes, device.budget_bytes)
        self.assertLessEqual(device.host_bytes, self.host_budget)
        resident = [m for m in self.listing().models if harness.state_name(m.state) == "READY"]
        self.assertLessEqual(len(resident), 2, [m.name for m in resident])
        return device

    def test_1_round_robin_three_models(self):
        for i in range(12):
            model = ROUND_ROBIN[i % 3]
            self.check_scores(model, TEXTS[i % len(TEXTS)])
            self.check_budget()
        models = {m.name: m for m in self.listing().models}
        evictions = sum(models[n].evictions for n in ROUND_ROBIN)
        swap_ins = sum(models[n].swap_ins for n in ROUND_ROBIN)
        self.assertGreater(evictions, 0)
        self.assertGreater(swap_ins, 0)
        for n in ROUND_ROBIN:
            self.assertEqual(models[n].loads, 1, f"{n} was read from disk more than once")
            self.assertTrue(models[n].activation_reserve_measured, n)
            self.assertLess(models[n].activation_reserve_bytes, self.weights)
        placements = harness.scraped_samples(self.server.metrics_port,
                                             "bertserve_model_placements_total")
        metric_swaps = sum(v for k, v in placements.items()
                           if 'kind="swap_in"' in k and 'result="ok"' in k)
        metric_evictions = sum(v for k, v in placements.items()
                               if 'kind="evict"' in k and 'result="ok"' in k)
        self.assertEqual(metric_swaps, swap_ins)
        self.assertEqual(metric_evictions, evictions)
        budget = harness.scraped_samples(self.server.metrics_port, "bertserve_vram_budget_bytes")
        self.assertEqual(list(budget.values()), [float(self.budget)])

    def test_2_model_larger_than_budget_is_refused(self):
        e = self.assertRpcError([grpc.StatusCode.RESOURCE_EXHAUSTED], r"needs \d+ bytes.*at most \d+",
                                self.server.models.Load, models_pb2.LoadModelRequest(name="huge"))
        self.assertIn(str(self.budget), e.details())
        # Nothing of it reached the device; the others keep serving.
        huge = self.server.models.Get(models_pb2.GetModelRequest(name="huge"))
        self.assertEqual(huge.device_bytes, 0)
        self.check_scores("tt-tuple", TEXTS[0])
        self.check_budget()

    def test_3_host_budget_drops_oldest_copy(self):
        # Four models: two resident, two offloaded would be 2 x weights of host
        # memory, over the 1.5 x budget, so the older host copy is dropped.
        for model in ROUND_ROBIN + [SPARE]:
            self.check_scores(model, TEXTS[1])
            self.check_budget()
        dropped = [m for m in self.listing().models
                   if m.name in ROUND_ROBIN + [SPARE] and harness.state_name(m.state) == "UNLOADED"]
        self.assertTrue(dropped, self.states())
        name = dropped[0].name
        loads_before = dropped[0].loads
        self.check_scores(name, TEXTS[2])  # reloaded from disk, correctly
        after = self.server.models.Get(models_pb2.GetModelRequest(name=name))
        self.assertEqual(after.loads, loads_before + 1)
        self.assertEqual(harness.state_name(after.state), "READY")

    def test_4_load_unload_cycles_return_to_baseline(self):
        for model in ROUND_ROBIN + [SPARE]:
            self.server.models.Unload(models_pb2.UnloadModelRequest(name=model))
        base = self.listing().device
        # Warm up allocator caches and one-time libtorch state first.
        for _ in range(5):
            self.server.models.Load(models_pb2.LoadModelRequest(name="plain"))
            self.server.models.Unload(models_pb2.UnloadModelRequest(name="plain"))
        rss_before = harness.rss_bytes(self.server.proc.pid)
        for _ in range(50):
            status = self.server.models.Load(models_pb2.LoadModelRequest(name="plain"))
            self.assertEqual(harness.state_name(status.state), "READY")
            self.server.models.Unload(models_pb2.UnloadModelRequest(name="plain"))
        rss_growth = harness.rss_bytes(self.server.proc.pid) - rss_before
        after = self.listing().device
        self.assertEqual(after.reserved_bytes, base.reserved_bytes)
        self.assertEqual(after.allocator_allocated_bytes, base.allocator_allocated_bytes)
        self.assertEqual(after.host_bytes, base.host_bytes)
        # A leak of one model copy per cycle would be 50 x 8 MB = 400 MB; two
        # models' worth covers allocator and heap fragmentation noise.
        self.assertLess(rss_growth, 2 * self.weights,
                        f"RSS grew {rss_growth} bytes over 50 load/unload cycles")


if __name__ == "__main__":
    unittest.main()
