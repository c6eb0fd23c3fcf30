"""Several devices (--device sim:0,sim:1): two simulated devices, each with its
own budget, executor and allocator, in one real server.

- A hot model with max_replicas: 2 under 32 clients gets a replica on the
  other device (throughput before and after is printed); the idle replica is
  the first thing evicted when that device needs room.

- Four models of ~1/3 of one device's budget each (two fit per device, three
  do not), round-robin traffic: every answer has PyTorch's scores, never more
  than two models resident per device, placements spread over both devices.
  Evictions and placements per device are printed.
- A model pinned to a device (config `devices: [1]`) lands there and nowhere
  else; a pin to a device the server lacks fails FAILED_PRECONDITION.
- One device fails for good mid-traffic (the simulated device's fault file):
  only requests in flight on it fail, UNAVAILABLE; its model serves from the
  other device within seconds; readiness stays SERVING, liveness turns
  NOT_SERVING; List and /metrics show the device lost.
"""

import collections
import os
import re
import shutil
import tempfile
import threading
import time
import unittest

import grpc

import harness
from harness import health_pb2, inference_pb2, models_pb2

TEXTS = ("what a lovely day", "the service was slow and the food was cold",
         "premise and hypothesis", "an input")
CALL_TIMEOUT_S = 120.0
SCORE_TOLERANCE = 1e-4
# demo-topics has 8.3 MB of weights; at 1024 tokens per batch its activation
# reserve is ~4.7 MB. Two per device (21 MB) fit a 26 MB budget, three (30 MB)
# do not, and a second fresh model (counted at twice its weights until
# warm-up measures it) still fits beside one.
DEVICE_ARGS = ["--device", "sim:0,sim:1", "--simulated-device-memory", "64MiB",
               "--vram-budget", "26MB"]


def make_copies(repo, names, extra=None):
    """Copies of demo-topics under `names`, with a 1024-token batch limit and
    `extra[name]` appended to each config."""
    source = os.path.join(repo, "demo-topics")
    for name in names:
        target = os.path.join(repo, name)
        shutil.copytree(source, target)
        with open(os.path.join(target, "config.pbtxt"), "a") as f:
            f.write("batch { max_batch_tokens: 1024 }\n")
            f.write((extra or {}).get(name, "") + "\n")


class Traffic:
    """Clients cycling through models, checking every score."""

    def __init__(self, test, models):
        self.test = test
        self.models = models
        self.answers = collections.Counter()
        self.errors = collections.Counter()
        self.mismatches = []
        self.lock = threading.Condition()
        self.stop = threading.Event()
        self.last_error = ""
        # From the config: a model not loaded yet has no labels of its own.
        self.labels = {
            m: list(test.server.models.Get(models_pb2.GetModelRequest(name=m)).config.labels)
            for m in models}

    def client(self, seed):
        with grpc.insecure_channel(self.test.server.address) as channel:
            stub = harness.Stub(channel, inference_pb2.DESCRIPTOR.services_by_name["Inference"])
            i = seed
            while not self.stop.is_set():
                model, text = self.models[i % len(self.models)], TEXTS[i % len(TEXTS)]
                i += 1
                try:
                    reply = stub.Classify(harness.classify_request(model, [text]),
                                          timeout=CALL_TIMEOUT_S)
                except grpc.RpcError as e:
                    with self.lock:
                        self.errors[(e.code().name, model)] += 1
                        self.last_error = e.details()
                    continue
                got = {s.label: s.score for s in reply.results[0].scores}
                expected = self.test.expected[text]
                bad = any(abs(got[self.labels[model][j]] - p) > SCORE_TOLERANCE
                          for j, p in enumerate(expected))
                with self.lock:
                    self.answers[model] += 1
                    if bad:
                        self.mismatches.append(f"{model} {text!r}: {got} vs {expected}")
                    self.lock.notify_all()

    def wait_answers(self, model, count, timeout=CALL_TIMEOUT_S):
        """Waits until `model` has `count` answers in all; returns whether it did."""
        with self.lock:
            return self.lock.wait_for(lambda: self.answers[model] >= count, timeout)

    def run(self, clients):
        self.threads = [threading.Thread(target=self.client, args=(s,)) for s in range(clients)]
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def wait_until(condition, what, timeout=CALL_TIMEOUT_S):
    """Polls `condition` (a call that asks the server) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} within {timeout:.0f} s")
        time.sleep(0.01)  # the poll interval; the condition is what is waited for


def reference_scores(test, repo, model):
    reference = harness.ReferenceModel(os.path.join(repo, model))
    expected = {}
    for text in TEXTS:
        tokens = test.server.inference.Tokenize(inference_pb2.TokenizeRequest(
            model=model, input=harness.text_input(text)))
        expected[text] = harness.probabilities(
            reference.logits([t.id for t in tokens.tokens], [t.type_id for t in tokens.tokens]))
    return expected


class DevicesTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-devices-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.repo = harness.make_demo_repo(os.path.join(cls.tmp, "demo"))
        cls.models = ["m0", "m1", "m2", "m3"]
        make_copies(cls.repo, cls.models + ["pinned", "pinned-nowhere"],
                    {"pinned": "devices: [1]", "pinned-nowhere": "devices: [2]"})
        harness.start_server(cls, repository=cls.repo, load=[], extra_args=DEVICE_ARGS)
        cls.server.wait_ready()
        # Every copy has demo-topics' weights: one reference for all.
        cls.expected = reference_scores(cls, cls.repo, "m0")

    def resident_by_device(self):
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        resident = collections.Counter()
        for m in listing.models:
            if m.state == models_pb2.READY:
                resident[m.device] += 1
        return resident, listing

    def test_1_round_robin_over_two_devices(self):
        traffic = Traffic(self, self.models)
        traffic.run(4)
        most = collections.Counter()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            resident, _ = self.resident_by_device()
            for device, n in resident.items():
                most[device] = max(most[device], n)
            time.sleep(0.05)  # sampling the state while traffic runs, not a wait
        traffic.join()
        answered = sum(traffic.answers.values())
        resident, listing = self.resident_by_device()
        self.assertEqual([d.name for d in listing.devices], ["sim:0", "sim:1"])
        self.assertEqual(listing.device.name, "sim:0")
        for d in listing.devices:
            self.assertEqual(d.budget_bytes, 26_000_000)
            self.assertFalse(d.lost)
            self.assertEqual(d.resident_models, resident[d.name])
        lines = self.server.log().splitlines()
        placed = collections.Counter(m.group(1) for m in (
            re.search(r"placement (?:load|swap_in) of \S+ on (sim:\d)", l) for l in lines) if m)
        evicted = collections.Counter(m.group(1) for m in (
            re.search(r"placement evict of \S+ on (sim:\d)", l) for l in lines) if m)
        print(f"\n4 clients, round robin over 4 models on 2 devices: {answered} answered, "
              f"{sum(traffic.errors.values())} errors; most resident at once {dict(most)}; "
              f"placements {dict(placed)}; evictions {dict(evicted)}", flush=True)
        self.assertFalse(traffic.errors, dict(traffic.errors))
        self.assertFalse(traffic.mismatches, traffic.mismatches[:5])
        for model in self.models:
            self.assertGreater(traffic.answers[model], 0, f"{model} was never answered")
        self.assertLessEqual(max(most.values()), 2, dict(most))
        self.assertGreater(placed["sim:0"], 0, dict(placed))
        self.assertGreater(placed["sim:1"], 0, dict(placed))
        samples = harness.scraped_samples(self.server.metrics_port,
                                          "bertserve_placement_decisions_total")
        by_device = collections.Counter()
        for labels, value in samples.items():
            by_device[re.search(r'device="([^"]*)"', labels).group(1)] += int(value)
        self.assertEqual(by_device, placed, samples)

    def test_2_pinned_model_lands_on_its_device_only(self):
        info = self.server.models.Load(models_pb2.LoadModelRequest(name="pinned"))
        self.assertEqual(info.state, models_pb2.READY)
        self.assertEqual(info.device, "sim:1")
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.models.Load(models_pb2.LoadModelRequest(name="pinned-nowhere"))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("pinned to device 2", caught.exception.details())
        self.assertIn("2 devices", caught.exception.details())


class LostDeviceTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-lost-device-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.repo = harness.make_demo_repo(os.path.join(cls.tmp, "demo"))
        make_copies(cls.repo, ["a", "b"])
        cls.fault_file = os.path.join(cls.tmp, "fault")
        harness.start_server(cls, repository=cls.repo, load=["a", "b"], extra_args=DEVICE_ARGS + [
            "--simulated-device-fault-file", cls.fault_file])
        cls.server.wait_ready()
        cls.expected = reference_scores(cls, cls.repo, "a")

    def device_of(self, name):
        return self.server.models.Get(models_pb2.GetModelRequest(name=name)).device

    def test_lost_device_fails_only_its_requests(self):
        # One model per device: the second went where the budget was free.
        placed = {self.device_of("a"), self.device_of("b")}
        self.assertEqual(placed, {"sim:0", "sim:1"})
        doomed = "a" if self.device_of("a") == "sim:1" else "b"
        survivor = "b" if doomed == "a" else "a"

        traffic = Traffic(self, ["a", "b"])
        traffic.run(4)
        self.assertTrue(traffic.wait_answers(doomed, 5) and traffic.wait_answers(survivor, 5),
                        f"no traffic: {dict(traffic.answers)} {dict(traffic.errors)}")
        with open(self.fault_file, "w") as f:
            f.write("sim:1\n")
        # The device is found lost by the next forward on it.
        self.server.wait_for_log(lambda l: "liveness is now NOT_SERVING" in l, "device lost")
        # Its model is read again onto sim:0 and serves from there.
        self.server.wait_for_log(
            lambda l: f"model {doomed} is ready" in l and "device=sim:0" in l,
            f"{doomed} placed on sim:0")
        with traffic.lock:
            answered_after = dict(traffic.answers)
        served_again = traffic.wait_answers(doomed, answered_after.get(doomed, 0) + 4)
        traffic.join()
        self.assertTrue(served_again, f"{doomed} was not served again: {dict(traffic.answers)}")

        print(f"\nlost sim:1 mid-traffic: answered {dict(traffic.answers)}, failed "
              f"{dict(traffic.errors)}", flush=True)
        self.assertFalse(traffic.mismatches, traffic.mismatches[:5])
        for (code, model), n in traffic.errors.items():
            self.assertEqual(code, "UNAVAILABLE", f"{model}: {traffic.last_error}")
            self.assertEqual(model, doomed, f"{n} requests for {model} failed ({code})")
        self.assertGreater(traffic.answers[doomed], answered_after.get(doomed, 0) + 3)
        self.assertEqual(self.device_of(doomed), "sim:0")
        self.assertEqual(self.device_of(survivor), "sim:0")

        self.assertEqual(self.server.health_check("readiness"),
                         health_pb2.HealthCheckResponse.SERVING)
        self.assertEqual(self.server.health_check(""), health_pb2.HealthCheckResponse.NOT_SERVING)
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        lost = {d.name: d.lost for d in listing.devices}
        self.assertEqual(lost, {"sim:0": False, "sim:1": True})
        samples = {re.search(r'device="([^"]*)"', labels).group(1): value
                   for labels, value in harness.scraped_samples(
                       self.server.metrics_port, "bertserve_device_lost").items()}
        self.assertEqual(samples, {"sim:0": 0, "sim:1": 1})
        # New requests for either model are served.
        for model in ("a", "b"):
            reply = self.server.inference.Classify(harness.classify_request(model, [TEXTS[0]]))
            self.assertEqual(len(reply.results), 1)


class ReplicaTest(harness.ServerTestCase):
    """A hot model allowed two copies (max_replicas: 2) gets a replica on the
    other device under 32 clients; both devices then run its forwards; the
    idle replica is the first thing evicted when that device needs room."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-replica-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.repo = harness.make_demo_repo(os.path.join(cls.tmp, "demo"))
        make_copies(cls.repo, ["hot", "f1", "f2"], {
            "hot": "max_replicas: 2", "f1": "devices: [1]", "f2": "devices: [1]"})
        harness.start_server(cls, repository=cls.repo, load=["hot"], extra_args=DEVICE_ARGS)
        cls.server.wait_ready()
        cls.expected = reference_scores(cls, cls.repo, "hot")

    def device_samples(self, name):
        return {re.search(r'device="([^"]*)"', labels).group(1): value
                for labels, value in harness.scraped_samples(self.server.metrics_port,
                                                            name).items()}

    def test_hot_model_gets_a_replica_that_goes_first_when_room_is_needed(self):
        status = self.server.models.Get(models_pb2.GetModelRequest(name="hot"))
        self.assertEqual([c.device for c in status.copies], ["sim:0"])
        traffic = Traffic(self, ["hot"])
        start = time.monotonic()
        traffic.run(32)
        self.server.wait_for_log(lambda l: "placement replicate of hot on sim:1" in l,
                                 "a replica of hot on sim:1", timeout=CALL_TIMEOUT_S)
        placed = time.monotonic()
        with traffic.lock:
            before = traffic.answers["hot"]
        # Models.Get shows each copy's own queue: both fill under this load.
        queued = {}

        def both_copies_queued():
            status = self.server.models.Get(models_pb2.GetModelRequest(name="hot"))
            for c in status.copies:
                self.assertEqual(c.state, models_pb2.READY)
                queued[c.device] = max(queued.get(c.device, 0), c.queued_inputs)
                if c.queued_inputs:
                    self.assertGreaterEqual(c.queued_tokens, c.queued_inputs)
            return queued.get("sim:0", 0) > 0 and queued.get("sim:1", 0) > 0
        wait_until(both_copies_queued, "inputs queued for both copies of hot")
        # The same clients for as long again (at least 3 s) with both copies.
        window = max(3.0, placed - start)
        traffic.stop.wait(window)  # a measurement window, not a wait for a condition
        traffic.join()
        after = traffic.answers["hot"] - before
        print(f"\nhot model, 32 clients: {before / (placed - start):.1f} answers/s on sim:0 "
              f"alone ({placed - start:.1f} s until the replica), {after / window:.1f}/s with "
              f"the replica on sim:1; {dict(traffic.errors)} errors", flush=True)
        self.assertFalse(traffic.errors, f"{dict(traffic.errors)}: {traffic.last_error}")
        self.assertFalse(traffic.mismatches, traffic.mismatches[:5])

        status = self.server.models.Get(models_pb2.GetModelRequest(name="hot"))
        self.assertEqual([(c.device, c.replica) for c in status.copies],
                         [("sim:0", False), ("sim:1", True)])
        self.assertEqual(harness.scraped_samples(self.server.metrics_port,
                                                 "bertserve_model_replicas")['{model="hot"}'], 2)
        # Forwards ran on sim:1: its allocator peaked above the replica's weights.
        peaks = self.device_samples("bertserve_allocator_peak_bytes")
        self.assertGreater(peaks["sim:1"], status.weight_bytes)

        # sim:1 needs room: the idle replica goes first, and hot serves on.
        for name in ("f1", "f2"):
            info = self.server.models.Load(models_pb2.LoadModelRequest(name=name))
            self.assertEqual(info.device, "sim:1")
        self.server.wait_for_log(lambda l: "placement evict of hot on sim:1" in l,
                                 "the replica evicted")
        status = self.server.models.Get(models_pb2.GetModelRequest(name="hot"))
        self.assertEqual([c.device for c in status.copies], ["sim:0"])
        self.assertEqual(status.state, models_pb2.READY)
        self.assertEqual(harness.scraped_samples(self.server.metrics_port,
                                                 "bertserve_model_replicas")['{model="hot"}'], 1)
        reply = self.server.inference.Classify(harness.classify_request("hot", [TEXTS[0]]))
        self.assertEqual(len(reply.results), 1)


if __name__ == "__main__":
    unittest.main()
