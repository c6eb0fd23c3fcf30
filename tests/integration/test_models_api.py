"""The Models service (List, Get, Load, Unload, also through the CLI) and the
health/readiness contract, including a startup model whose model.pt is a FIFO
so that the test decides when its load can finish."""

import os
import shutil
import tempfile
import time
import unittest

import grpc

import harness
from harness import classify_request, models_pb2

STARTUP_MODELS = ["tt-tuple", "nott-dict", "single-logit", "plain"]
ALL_MODELS = STARTUP_MODELS + ["broken-model", "broken-config"]
EXPECTED = {
    # name: (inputs, labels, num_labels)
    "tt-tuple": (["input_ids", "attention_mask", "token_type_ids"],
                 ["negative", "neutral", "positive"], 3),
    "nott-dict": (["input_ids", "attention_mask"], ["negative", "positive"], 2),
    "single-logit": (["input_ids", "attention_mask", "token_type_ids"], ["relevant"], 1),
    "plain": (["input_ids", "attention_mask", "token_type_ids"], None, 3),
}


def python_weight_bytes(name, repository=None):
    ref = harness.ReferenceModel(os.path.join(repository or harness.models_dir(), name))
    return ref.weight_bytes()


class ModelsApiTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=STARTUP_MODELS)
        cls.server.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def get(self, name):
        return self.server.models.Get(models_pb2.GetModelRequest(name=name))

    def classify(self, model, text="hello there", **kwargs):
        return self.server.inference.Classify(classify_request(model, [text], **kwargs))

    def test_request_for_unloaded_model_loads_it(self):
        self.server.models.Unload(models_pb2.UnloadModelRequest(name="single-logit"))
        self.assertEqual(harness.state_name(self.get("single-logit").state), "UNLOADED")
        reply = self.classify("single-logit")
        self.assertEqual(len(reply.results), 1)
        self.assertEqual(harness.state_name(self.get("single-logit").state), "READY")

    def test_list(self):
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        names = [m.name for m in listing.models]
        self.assertCountEqual(names, ALL_MODELS)
        by_name = {m.name: m for m in listing.models}
        for name in STARTUP_MODELS:
            self.assertEqual(harness.state_name(by_name[name].state), "READY", name)
        for name in ("broken-model", "broken-config"):
            # Never asked to load: not READY; FAILED once it was tried (or its
            # config was read at startup).
            self.assertIn(harness.state_name(by_name[name].state), ("UNLOADED", "FAILED"), name)

    def test_ready_models_report_exact_weight_bytes(self):
        for name, (inputs, labels, num_labels) in EXPECTED.items():
            with self.subTest(model=name):
                status = self.get(name)
                self.assertEqual(status.name, name)
                self.assertEqual(harness.state_name(status.state), "READY")
                expected = python_weight_bytes(name)
                self.assertGreater(status.weight_bytes, 0)
                self.assertEqual(status.weight_bytes, expected,
                                 "weight_bytes must be the parameter + buffer bytes of model.pt")
                self.assertEqual(list(status.inputs), inputs)
                self.assertEqual(status.num_labels, num_labels)
                # Warm-up ran at the configured token limit and it fitted.
                self.assertEqual(status.batch_token_limit, status.config.batch.max_batch_tokens)
                if labels is None:
                    self.assertIn(list(status.labels),
                                  ([], [f"LABEL_{i}" for i in range(num_labels)]))
                else:
                    self.assertEqual(list(status.labels), labels)
                self.assertTrue(status.device, "device must be named")
                self.assertEqual(status.last_error, "")

    def test_config_is_reported(self):
        status = self.get("tt-tuple")
        self.assertEqual(status.config.max_sequence_length, 64)
        self.assertEqual(list(status.config.labels), ["negative", "neutral", "positive"])
        self.assertEqual(status.config.batch.max_client_batch_size, 8)
        self.assertEqual(status.config.batch.max_batch_tokens, 1024)
        # A config that sets no token limit gets the default of where the
        # model runs: 512 on the plain CPU, 8192 on a GPU.
        plain = self.get("plain")
        self.assertEqual(plain.config.batch.max_batch_tokens,
                         512 if plain.device == "cpu" else 8192, plain.device)
        self.assertEqual(plain.batch_token_limit, plain.config.batch.max_batch_tokens)

    def test_last_used(self):
        # single-logit is used by no other test of this class.
        self.assertEqual(self.get("single-logit").last_used_unix_seconds, 0.0)
        before = time.time()
        self.classify("single-logit")
        after = time.time()
        used = self.get("single-logit").last_used_unix_seconds
        self.assertGreaterEqual(used, before - 1.0)
        self.assertLessEqual(used, after + 1.0)

    def test_unknown_names(self):
        for call, req in ((self.server.models.Get, models_pb2.GetModelRequest(name="nope")),
                          (self.server.models.Load, models_pb2.LoadModelRequest(name="nope")),
                          (self.server.models.Unload, models_pb2.UnloadModelRequest(name="nope"))):
            self.assertRpcError(grpc.StatusCode.NOT_FOUND, "nope", call, req)

    def test_load_of_ready_model_is_a_no_op(self):
        status = self.server.models.Load(models_pb2.LoadModelRequest(name="tt-tuple"))
        self.assertEqual(harness.state_name(status.state), "READY")
        self.assertEqual(status.weight_bytes, python_weight_bytes("tt-tuple"))

    def test_unload_and_load_again(self):
        before = self.classify("nott-dict", raw_scores=True)
        expected_bytes = python_weight_bytes("nott-dict")

        status = self.server.models.Unload(models_pb2.UnloadModelRequest(name="nott-dict"))
        self.assertEqual(harness.state_name(status.state), "UNLOADED")
        unloaded = self.get("nott-dict")
        self.assertEqual(harness.state_name(unloaded.state), "UNLOADED")
        self.assertEqual((unloaded.device_bytes, unloaded.host_bytes), (0, 0))
        # Other models are unaffected.
        self.classify("tt-tuple")

        status = self.server.models.Load(models_pb2.LoadModelRequest(name="nott-dict"))
        self.assertEqual(harness.state_name(status.state), "READY")
        self.assertEqual(status.weight_bytes, expected_bytes)
        self.assertEqual(status.loads, unloaded.loads + 1)
        after = self.classify("nott-dict", raw_scores=True)
        want = {s.index: s.score for s in before.results[0].scores}
        got = {s.index: s.score for s in after.results[0].scores}
        self.assertEqual(want.keys(), got.keys())
        for i in want:
            self.assertAlmostEqual(got[i], want[i], delta=1e-5)

    def test_cli_models(self):
        doc, listing = self.server.cli_json(models_pb2.ListModelsResponse, "models", "list")
        self.assertCountEqual([m.name for m in listing.models], ALL_MODELS)
        self.assertIn("weight_bytes", doc["models"][0])  # proto field names

        _, status = self.server.cli_json(models_pb2.ModelStatus, "models", "get", "tt-tuple")
        self.assertEqual(harness.state_name(status.state), "READY")
        self.assertEqual(status.weight_bytes, python_weight_bytes("tt-tuple"))

        _, status = self.server.cli_json(models_pb2.ModelStatus, "models", "unload", "plain")
        self.assertEqual(harness.state_name(status.state), "UNLOADED")
        loads = status.loads
        # A request for an unloaded model loads it again and is answered.
        proc = self.server.cli("classify", "-m", "plain", "hello")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        _, status = self.server.cli_json(models_pb2.ModelStatus, "models", "get", "plain")
        self.assertEqual(harness.state_name(status.state), "READY")
        self.assertEqual(status.loads, loads + 1)

        _, status = self.server.cli_json(models_pb2.ModelStatus, "models", "unload", "plain")
        self.assertEqual(harness.state_name(status.state), "UNLOADED")
        _, status = self.server.cli_json(models_pb2.ModelStatus, "models", "load", "plain")
        self.assertEqual(harness.state_name(status.state), "READY")
        self.classify("plain")

        proc = self.server.cli("models", "get", "nope")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("NOT_FOUND", proc.stderr)


class BestEffortStartupTest(harness.ServerTestCase):
    """Without --load every model is best-effort: a broken one does not keep
    the server unready, and the line that says ready counts it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bertserve-best-effort-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        repo = harness.copy_models(self.tmp, ["tt-tuple", "broken-model"])
        # A model whose directory name is no model name is never served.
        shutil.copytree(os.path.join(repo, "tt-tuple"), os.path.join(repo, "my model"))
        self.server = harness.Server(repo)
        self.addCleanup(self.server.kill)

    def test_ready_names_the_startup_models_that_failed(self):
        server = self.server.start()
        server.wait_ready()
        lines = server.wait_for_log(lambda line: "ready: 2 of 2 startup model(s) settled" in line,
                                    "the ready line")
        self.assertIn("1 of them failed to load", lines[-1])
        self.assertIn("[warning]", lines[-1])
        self.assertEqual(harness.state_name(server.models.Get(
            models_pb2.GetModelRequest(name="broken-model")).state), "FAILED")
        # The directory it could not serve is named, with the reason.
        self.assertIn('directory "my model" is not served: model name "my model" has '
                      "character ' ' at position 2", server.log())


class ReadinessTest(harness.ServerTestCase):
    """Liveness comes first; readiness waits for the startup models. The load
    of `plain` blocks on a FIFO until the test writes the model into it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bertserve-readiness-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.repo = os.path.join(self.tmp, "models")
        for name in ("tt-tuple", "plain"):
            shutil.copytree(os.path.join(harness.models_dir(), name),
                            os.path.join(self.repo, name))
        self.fifo = harness.FifoModel(self.repo, "plain")
        self.addCleanup(self.fifo.release)

        self.server = harness.Server(self.repo, load=["tt-tuple", "plain"])
        self.addCleanup(self.server.kill)

    def test_readiness_waits_for_startup_models(self):
        server = self.server.start()
        # The load of `plain` cannot finish: alive, not ready.
        self.assertEqual(server.health_check(""), harness.SERVING)
        self.assertEqual(server.health_check("readiness"), harness.NOT_SERVING)
        # The Models service answers while a load is in progress.
        status = server.models.Get(models_pb2.GetModelRequest(name="plain"), timeout=10)
        self.assertIn(harness.state_name(status.state), ("UNLOADED", "LOADING"))
        listing = server.models.List(models_pb2.ListModelsRequest(), timeout=10)
        self.assertCountEqual([m.name for m in listing.models], ["tt-tuple", "plain"])

        watch = server.health.Watch(harness.health_pb2.HealthCheckRequest(service="readiness"),
                                    timeout=harness.READY_TIMEOUT_S)
        seen = []
        try:
            first = next(watch)
            seen.append(first.status)
            self.assertEqual(first.status, harness.NOT_SERVING,
                             "Watch must start with the current status")
            writer = self.fifo.feed()
            for response in watch:
                seen.append(response.status)
                if response.status == harness.SERVING:
                    break
        finally:
            watch.cancel()
        self.assertEqual(seen[-1], harness.SERVING, f"statuses seen: {seen}")
        writer.join(30)
        self.assertFalse(writer.is_alive())

        status = server.models.Get(models_pb2.GetModelRequest(name="plain"))
        self.assertEqual(harness.state_name(status.state), "READY")
        self.assertGreater(status.weight_bytes, 0)
        self.assertEqual(status.weight_bytes, python_weight_bytes("plain"))
        resp = server.inference.Classify(classify_request("plain", ["now ready"]))
        self.assertEqual(len(resp.results[0].scores), 3)
        self.assertEqual(server.health_check(""), harness.SERVING)
        server.stop()

    def test_sigterm_during_startup_load_exits_cleanly(self):
        server = self.server.start()
        self.assertEqual(server.health_check("readiness"), harness.NOT_SERVING)

        # The load of `plain` is blocked reading the FIFO. SIGTERM first, then
        # the bytes: the server must finish or abandon that load and exit 0.
        server.stop(after_signal=self.fifo.feed)


if __name__ == "__main__":
    unittest.main()
