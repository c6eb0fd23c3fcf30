"""The Open Inference Protocol (KServe v2, inference.GRPCInferenceService) on
a real server, driven by the stubs protoc's Python gRPC plugin generates from
proto/inference/*.proto, the way a KServe or Triton client's stubs are made:
texts as BYTES in both encodings, token ids as INT64 and INT32, batches of
mixed lengths, top_k and raw_scores, streams, errors, model control; every score
checked against bertserve.v1 Classify on the same server for the same inputs.
A second server, on a simulated device that holds one model at a time,
shows that a v2 request for a model that is UNLOADED or in host memory
places it and waits for it, as bertserve.v1 does.
"""

import atexit
import importlib
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import json_format

import harness
from harness import classify_request, inference_pb2, models_pb2, text_input
from test_classify import LONG_TEXT, MODELS

TOLERANCE = 1e-6

# (text, pair): mixed lengths, a pair, non-ASCII text, one input truncated.
INPUTS = [
    ("hello", ""),
    ("The quick brown fox jumps over the lazy dog.", ""),
    ("My name is John", "pair"),
    ("Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u5317\u4eac \U0001F600", ""),
    (LONG_TEXT, "a short second segment"),
]


def _generate_stubs():
    """protoc --python_out --grpc_python_out over the v2 protos; returns the
    message and stub modules."""
    out = tempfile.mkdtemp(prefix="bertserve-v2-pb-")
    atexit.register(shutil.rmtree, out, True)
    protoc = os.environ.get("PROTOC") or shutil.which("protoc") or "protoc"
    plugin = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    cmd = [protoc, "-I", harness.PROTO_DIR, f"--python_out={out}", f"--grpc_python_out={out}",
           f"--plugin=protoc-gen-grpc_python={plugin}",
           "inference/model_config.proto", "inference/grpc_service.proto"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    sys.path.insert(0, out)
    return (importlib.import_module("inference.grpc_service_pb2"),
            importlib.import_module("inference.grpc_service_pb2_grpc"),
            importlib.import_module("inference.model_config_pb2"))


pb, pb_grpc, config_pb = _generate_stubs()


# --- tensors as a client writes and reads them -----------------------------

def raw_bytes(elements):
    """BYTES elements, each after its 4-byte little-endian length."""
    out = b""
    for e in elements:
        e = e.encode("utf-8") if isinstance(e, str) else e
        out += struct.pack("<I", len(e)) + e
    return out


def parse_raw_bytes(raw):
    out, pos = [], 0
    while pos < len(raw):
        (n,) = struct.unpack_from("<I", raw, pos)
        out.append(raw[pos + 4:pos + 4 + n].decode("utf-8"))
        pos += 4 + n
    return out


def text_tensor(name, texts, shape=None):
    t = pb.ModelInferRequest.InferInputTensor(
        name=name, datatype="BYTES", shape=shape or [len(texts)])
    t.contents.bytes_contents.extend(s.encode("utf-8") for s in texts)
    return t


def text_request(model, inputs, outputs=(), raw=False, **parameters):
    """TEXT (and TEXT_PAIR when any input has a pair), in `contents` or raw
    with shape [batch, 1]."""
    texts = [t for t, _ in inputs]
    pairs = [p for _, p in inputs]
    names = [("TEXT", texts)] + ([("TEXT_PAIR", pairs)] if any(pairs) else [])
    request = pb.ModelInferRequest(model_name=model, id="v2-test")
    for name, values in names:
        if raw:
            request.inputs.append(pb.ModelInferRequest.InferInputTensor(
                name=name, datatype="BYTES", shape=[len(values), 1]))
            request.raw_input_contents.append(raw_bytes(values))
        else:
            request.inputs.append(text_tensor(name, values))
    for o in outputs:
        request.outputs.append(pb.ModelInferRequest.InferRequestedOutputTensor(name=o))
    set_parameters(request, parameters)
    return request


def set_parameters(request, parameters):
    for key, value in parameters.items():
        if isinstance(value, bool):
            request.parameters[key].bool_param = value
        else:
            request.parameters[key].int64_param = value


def outputs_of(response):
    """{name: (shape, values)} from contents or raw_output_contents."""
    result = {}
    for i, out in enumerate(response.outputs):
        shape = list(out.shape)
        if response.raw_output_contents:
            raw = response.raw_output_contents[i]
            if out.datatype == "FP32":
                values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
            else:
                values = parse_raw_bytes(raw)
        elif out.datatype == "FP32":
            values = list(out.contents.fp32_contents)
        else:
            values = [b.decode("utf-8") for b in out.contents.bytes_contents]
        result[out.name] = (shape, values)
    return result


class V2Test(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=list(MODELS))
        cls.server.wait_ready()
        cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.server.channel)
        cls.token = cls.server.auth_metadata()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def infer(self, request, **kwargs):
        return self.stub.ModelInfer(request, timeout=harness.RPC_TIMEOUT_S, **kwargs)

    def classify(self, model, inputs, **kwargs):
        return self.server.inference.Classify(classify_request(
            model, [t for t, _ in inputs], [p for _, p in inputs], **kwargs))

    def v1_rows(self, model, inputs, raw_scores=False):
        """Per input, the scores by label index, from bertserve.v1."""
        reply = self.classify(model, inputs, raw_scores=raw_scores)
        rows = []
        for result in reply.results:
            row = [None] * len(MODELS[model])
            for s in result.scores:
                row[s.index] = s.score
            rows.append(row)
        return rows, [r.scores[0].label for r in reply.results]

    def assertRowsEqual(self, got, shape, want, what):
        self.assertEqual(shape, [len(want), len(want[0])], f"{what}: shape")
        flat = [v for row in want for v in row]
        self.assertEqual(len(got), len(flat), what)
        for i, (g, w) in enumerate(zip(got, flat)):
            self.assertAlmostEqual(g, w, delta=TOLERANCE, msg=f"{what}: element {i}")

    def check_against_v1(self, model, inputs, response):
        outs = outputs_of(response)
        probabilities, labels = self.v1_rows(model, inputs)
        logits, _ = self.v1_rows(model, inputs, raw_scores=True)
        self.assertRowsEqual(outs["PROBABILITIES"][1], outs["PROBABILITIES"][0], probabilities,
                             f"{model} PROBABILITIES")
        self.assertRowsEqual(outs["LOGITS"][1], outs["LOGITS"][0], logits, f"{model} LOGITS")
        self.assertEqual(outs["LABEL"], ([len(inputs)], labels), f"{model} LABEL")

    # --- health and metadata ----------------------------------------------

    def test_server_calls(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest()).ready)
        meta = self.stub.ServerMetadata(pb.ServerMetadataRequest())
        self.assertEqual(meta.name, "bertserve")
        self.assertIn("model_repository", meta.extensions)
        self.assertIn("model_configuration", meta.extensions)

    def test_model_metadata_and_config(self):
        meta = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="tt-tuple"))
        self.assertEqual(meta.name, "tt-tuple")
        self.assertEqual(list(meta.versions), ["1"])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in meta.inputs], [
            ("TEXT", "BYTES", [-1]), ("TEXT_PAIR", "BYTES", [-1]),
            ("input_ids", "INT64", [-1, -1]), ("attention_mask", "INT64", [-1, -1]),
            ("token_type_ids", "INT64", [-1, -1])])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in meta.outputs], [
            ("LOGITS", "FP32", [-1, 3]), ("PROBABILITIES", "FP32", [-1, 3]),
            ("LABEL", "BYTES", [-1])])
        config = self.stub.ModelConfig(pb.ModelConfigRequest(name="tt-tuple")).config
        self.assertEqual(config.name, "tt-tuple")
        self.assertEqual(config.platform, "pytorch_libtorch")
        self.assertEqual(config.max_batch_size, 8)  # its batch.max_client_batch_size
        self.assertEqual([(i.name, i.data_type, list(i.dims), i.optional) for i in config.input],
                         [("TEXT", config_pb.TYPE_STRING, [1], False),
                          ("TEXT_PAIR", config_pb.TYPE_STRING, [1], True),
                          ("input_ids", config_pb.TYPE_INT64, [-1], True),
                          ("attention_mask", config_pb.TYPE_INT64, [-1], True),
                          ("token_type_ids", config_pb.TYPE_INT64, [-1], True)])
        self.assertEqual([(o.name, o.data_type, list(o.dims)) for o in config.output],
                         [("LOGITS", config_pb.TYPE_FP32, [3]),
                          ("PROBABILITIES", config_pb.TYPE_FP32, [3]),
                          ("LABEL", config_pb.TYPE_STRING, [1])])
        self.assertTrue(config.HasField("dynamic_batching"))
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name="tt-tuple")).ready)
        index = {m.name: m for m in self.stub.RepositoryIndex(pb.RepositoryIndexRequest()).models}
        self.assertEqual(index["tt-tuple"].state, "READY")
        self.assertEqual(index["broken-config"].state, "UNAVAILABLE")
        self.assertIn("colour", index["broken-config"].reason)
        ready = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models
        self.assertNotIn("broken-config", [m.name for m in ready])
        for call, request in ((self.stub.ModelMetadata, pb.ModelMetadataRequest(name="nope")),
                              (self.stub.ModelReady, pb.ModelReadyRequest(name="nope")),
                              (self.stub.ModelConfig, pb.ModelConfigRequest(name="nope"))):
            self.assertRpcError(grpc.StatusCode.NOT_FOUND, "nope", call, request)

    # --- inference: the same answers as bertserve.v1 ---------------------

    def test_text_in_contents_matches_v1(self):
        for model in MODELS:
            response = self.infer(text_request(model, INPUTS,
                                               outputs=("LOGITS", "PROBABILITIES", "LABEL")))
            self.assertEqual(response.model_name, model)
            self.assertEqual(response.id, "v2-test")
            self.assertFalse(response.raw_output_contents)
            self.check_against_v1(model, INPUTS, response)

    def test_text_raw_matches_v1(self):
        for model in MODELS:
            response = self.infer(text_request(model, INPUTS, raw=True,
                                               outputs=("LOGITS", "PROBABILITIES", "LABEL")))
            self.assertEqual(len(response.raw_output_contents), 3, "raw in, raw out")
            self.check_against_v1(model, INPUTS, response)

    def test_binary_data_asks_for_raw_output(self):
        request = text_request("plain", INPUTS[:2])
        out = request.outputs.add(name="PROBABILITIES")
        out.parameters["binary_data"].bool_param = True
        response = self.infer(request)
        self.assertEqual(len(response.raw_output_contents), 1)
        probabilities, _ = self.v1_rows("plain", INPUTS[:2])
        shape, values = outputs_of(response)["PROBABILITIES"]
        self.assertRowsEqual(values, shape, probabilities, "binary_data PROBABILITIES")

    def pretokenized(self, model, inputs, datatype):
        """input_ids / attention_mask / token_type_ids padded to the longest,
        from the server's own Tokenize; raw for INT32."""
        rows = []
        for text, pair in inputs:
            tok = self.server.inference.Tokenize(inference_pb2.TokenizeRequest(
                model=model, input=text_input(text, pair)))
            rows.append(([t.id for t in tok.tokens], [t.type_id for t in tok.tokens]))
        longest = max(len(ids) for ids, _ in rows)
        self.assertGreater(longest, min(len(ids) for ids, _ in rows), "lengths must differ")
        ids = [v for r, _ in rows for v in r + [0] * (longest - len(r))]
        mask = [v for r, _ in rows for v in [1] * len(r) + [0] * (longest - len(r))]
        types = [v for _, t in rows for v in t + [0] * (longest - len(t))]
        request = pb.ModelInferRequest(model_name=model)
        shape = [len(rows), longest]
        for name, values in (("input_ids", ids), ("attention_mask", mask),
                             ("token_type_ids", types)):
            tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
            if datatype == "INT64":
                tensor.contents.int64_contents.extend(values)
            else:
                request.raw_input_contents.append(struct.pack(f"<{len(values)}i", *values))
        for o in ("LOGITS", "PROBABILITIES", "LABEL"):
            request.outputs.add(name=o)
        return request

    def test_pretokenized_matches_text(self):
        for model in MODELS:
            for datatype in ("INT64", "INT32"):
                response = self.infer(self.pretokenized(model, INPUTS, datatype))
                self.check_against_v1(model, INPUTS, response)

    def test_top_k_and_raw_scores(self):
        reply = self.classify("tt-tuple", INPUTS, top_k=2)
        response = self.infer(text_request("tt-tuple", INPUTS, top_k=2,
                                           outputs=("PROBABILITIES", "LABEL")))
        outs = outputs_of(response)
        self.assertEqual(outs["LABEL"][0], [len(INPUTS), 2])
        self.assertEqual(outs["LABEL"][1], [s.label for r in reply.results for s in r.scores])
        self.assertRowsEqual(outs["PROBABILITIES"][1], outs["PROBABILITIES"][0],
                             [[s.score for s in r.scores] for r in reply.results], "top_k 2")
        # No outputs named: LABEL and the scores raw_scores picks.
        response = self.infer(text_request("tt-tuple", INPUTS, raw_scores=True))
        self.assertEqual([o.name for o in response.outputs], ["LABEL", "LOGITS"])
        logits, _ = self.v1_rows("tt-tuple", INPUTS, raw_scores=True)
        self.assertRowsEqual(outputs_of(response)["LOGITS"][1], outputs_of(response)["LOGITS"][0],
                             logits, "raw_scores LOGITS")
        response = self.infer(text_request("tt-tuple", INPUTS))
        self.assertEqual([o.name for o in response.outputs], ["LABEL", "PROBABILITIES"])

    def test_stream_in_order_with_errors(self):
        """ModelStreamInfer as Triton's stream clients use it: one answer per
        request in request order, an error answering only its own request."""
        requests = []
        for i, (text, pair) in enumerate(INPUTS * 3):
            model = "nope" if i == 4 else "tt-tuple"
            request = text_request(model, [(text, pair)], raw=i % 2 == 1,
                                   outputs=("PROBABILITIES", "LABEL"))
            request.id = f"s-{i}"
            requests.append(request)
        answers = list(self.stub.ModelStreamInfer(iter(requests), timeout=harness.RPC_TIMEOUT_S))
        self.assertEqual([a.infer_response.id for a in answers], [r.id for r in requests])
        for i, (answer, (text, pair)) in enumerate(zip(answers, INPUTS * 3)):
            if i == 4:
                self.assertIn("nope", answer.error_message)
                continue
            self.assertEqual(answer.error_message, "", f"answer {i}")
            probabilities, labels = self.v1_rows("tt-tuple", [(text, pair)])
            outs = outputs_of(answer.infer_response)
            self.assertRowsEqual(outs["PROBABILITIES"][1], outs["PROBABILITIES"][0],
                                 probabilities, f"stream answer {i}")
            self.assertEqual(outs["LABEL"][1], labels)

    # --- errors: bertserve.v1's codes and messages ------------------------

    def assertSameError(self, v2_call, v1_call, code):
        e2 = self.assertRpcError(code, None, v2_call)
        e1 = self.assertRpcError(code, None, v1_call)
        self.assertEqual(e2.details(), e1.details())

    def test_errors_as_v1(self):
        self.assertSameError(lambda: self.infer(text_request("nope", [("hi", "")])),
                             lambda: self.classify("nope", [("hi", "")]),
                             grpc.StatusCode.NOT_FOUND)
        self.assertSameError(lambda: self.infer(text_request("tt-tuple", [("hi", ""), ("", "")])),
                             lambda: self.classify("tt-tuple", [("hi", ""), ("", "")]),
                             grpc.StatusCode.INVALID_ARGUMENT)
        self.assertSameError(lambda: self.infer(text_request("../x", [("hi", "")])),
                             lambda: self.classify("../x", [("hi", "")]),
                             grpc.StatusCode.INVALID_ARGUMENT)
        many = [("hi", "")] * 65
        self.assertSameError(lambda: self.infer(text_request("plain", many)),
                             lambda: self.classify("plain", many),
                             grpc.StatusCode.INVALID_ARGUMENT)
        self.assertSameError(
            lambda: self.infer(text_request("tt-tuple", [(LONG_TEXT, "")], truncate=False)),
            lambda: self.classify("tt-tuple", [(LONG_TEXT, "")], truncate=False),
            grpc.StatusCode.INVALID_ARGUMENT)
        self.assertSameError(lambda: self.infer(text_request("plain", [("hi", "")], top_k=-1)),
                             lambda: self.classify("plain", [("hi", "")], top_k=-1),
                             grpc.StatusCode.INVALID_ARGUMENT)

    def test_tensor_errors(self):
        bad = grpc.StatusCode.INVALID_ARGUMENT
        request = text_request("plain", [("hello", "")], raw=True)
        request.raw_input_contents[0] = request.raw_input_contents[0][:3]
        self.assertRpcError(bad, "truncated length prefix", self.infer, request)
        request.raw_input_contents[0] = struct.pack("<I", 50) + b"hello"
        self.assertRpcError(bad, "declares 50 bytes but only 5 remain", self.infer, request)
        request = text_request("plain", [("hello", "")])
        request.inputs[0].datatype = "FP32"
        self.assertRpcError(bad, r'datatype "FP32"; it must be BYTES', self.infer, request)
        request = text_request("plain", [("hello", "")])
        request.inputs[0].shape[:] = [1, 2]
        self.assertRpcError(bad, r"shape \[1, 2\]", self.infer, request)
        request = text_request("plain", [("hello", "")])
        request.raw_input_contents.append(raw_bytes(["hello"]))
        self.assertRpcError(bad, "contents and the request has raw_input_contents",
                            self.infer, request)
        request = text_request("plain", [("hello", "")], outputs=("EMBEDDING",))
        self.assertRpcError(bad, 'unknown output "EMBEDDING"', self.infer, request)
        request = self.pretokenized("plain", INPUTS[:2], "INT64")
        request.inputs[0].contents.int64_contents[1] = 10 ** 6
        self.assertRpcError(bad, r"inputs\[0\] token 1 has id 1000000; the vocabulary",
                            self.infer, request)
        # The server still serves.
        self.infer(text_request("plain", [("hello", "")]))

    def test_readme_grpcurl_example(self):
        """The README's grpcurl request parses as a ModelInferRequest and is
        answered (sent here to a test model instead of the demo's)."""
        with open(os.path.join(harness.SOURCE_DIR, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        section = readme.split("## Open Inference Protocol (KServe v2)", 1)[1].split("\n## ", 1)[0]
        commands = [c for c in re.findall(r"```sh\n(.*?)```", section, re.S) if "grpcurl" in c]
        self.assertEqual(len(commands), 1, "one grpcurl example")
        words = shlex.split(commands[0].replace("\\\n", " "))
        self.assertEqual(words[-1], "inference.GRPCInferenceService/ModelInfer")
        self.assertIn("inference/grpc_service.proto", words)
        request = json_format.Parse(words[words.index("-d") + 1], pb.ModelInferRequest())
        self.assertEqual(request.model_name, "demo-sentiment")
        request.model_name = "tt-tuple"
        outs = outputs_of(self.infer(request))
        self.assertEqual(outs["LABEL"][0], [1, 2])
        self.assertEqual(outs["LABEL"][1],
                         [s.label for s in self.classify("tt-tuple", [("what a lovely day", "")],
                                                         top_k=2).results[0].scores])

    # --- model control ----------------------------------------------------

    def test_repository_load_unload(self):
        unload = pb.RepositoryModelUnloadRequest(model_name="single-logit")
        self.assertRpcError(grpc.StatusCode.UNAUTHENTICATED, "token",
                            self.stub.RepositoryModelUnload, unload)
        self.stub.RepositoryModelUnload(unload, metadata=self.token)
        self.server.wait_for_log(
            lambda line: "audit: v2.RepositoryModelUnload of model \"single-logit\" succeeded"
            in line, "the unload's audit event")
        state = self.server.models.Get(models_pb2.GetModelRequest(name="single-logit")).state
        self.assertEqual(harness.state_name(state), "UNLOADED")
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="single-logit")).ready)
        self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="single-logit"),
                                      metadata=self.token)
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name="single-logit")).ready)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, "nope", self.stub.RepositoryModelLoad,
                            pb.RepositoryModelLoadRequest(model_name="nope"), metadata=self.token)


class V2PlacementTest(harness.ServerTestCase):
    """A simulated device whose budget (2.5 model weights) holds one test
    model with the activation reserve estimated before its warm-up (its
    weight bytes), never two: the first request for the second model moves
    the first to host memory."""

    FIRST, SECOND = "tt-tuple", "plain"

    @classmethod
    def setUpClass(cls):
        repo = tempfile.mkdtemp(prefix="bertserve-v2-placement-")
        cls.addClassCleanup(shutil.rmtree, repo, True)
        for name in (cls.FIRST, cls.SECOND):
            shutil.copytree(os.path.join(harness.models_dir(), name), os.path.join(repo, name))
            # A small token budget keeps the measured activation reserve
            # (warm-up at the limit) well below the weights.
            labels = "".join(f'labels: "{label}" ' for label in MODELS[name]
                             if not label.startswith("LABEL_"))
            with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
                f.write(f"{labels}\nmax_sequence_length: 64\n"
                        "batch { max_client_batch_size: 8 max_batch_tokens: 256 }\n")
        weights = max(harness.ReferenceModel(os.path.join(repo, n)).weight_bytes()
                      for n in (cls.FIRST, cls.SECOND))
        harness.start_server(cls, repository=repo, load=[], extra_args=[
            "--device", "sim", "--simulated-device-memory", str(8 * weights),
            "--vram-reserve", "0", "--vram-budget", str(int(2.5 * weights))])
        cls.server.wait_ready()
        cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.server.channel)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def state(self, model):
        info = self.server.models.Get(models_pb2.GetModelRequest(name=model))
        return harness.state_name(info.state)

    def infer(self, model):
        response = self.stub.ModelInfer(
            text_request(model, INPUTS[:3], outputs=("PROBABILITIES",)),
            timeout=harness.RPC_TIMEOUT_S)
        return outputs_of(response)["PROBABILITIES"][1]

    def test_unloaded_and_host_models_are_placed(self):
        self.assertEqual(self.state(self.FIRST), "UNLOADED")
        first = self.infer(self.FIRST)
        self.assertEqual(self.state(self.FIRST), "READY")
        self.assertEqual(self.state(self.SECOND), "UNLOADED")
        second = self.infer(self.SECOND)
        self.assertEqual(self.state(self.SECOND), "READY")
        self.assertEqual(self.state(self.FIRST), "HOST")
        self.assertEqual(self.infer(self.FIRST), first, "the same scores after the swap-in")
        self.assertEqual(self.state(self.FIRST), "READY")
        info = self.server.models.Get(models_pb2.GetModelRequest(name=self.FIRST))
        self.assertEqual((info.loads, info.swap_ins), (1, 1))
        # And bertserve.v1 agrees on both.
        for model, got in ((self.FIRST, first), (self.SECOND, second)):
            reply = self.server.inference.Classify(classify_request(
                model, [t for t, _ in INPUTS[:3]], [p for _, p in INPUTS[:3]]))
            want = [s.score for r in reply.results for s in sorted(r.scores, key=lambda s: s.index)]
            for g, w in zip(got, want):
                self.assertAlmostEqual(g, w, delta=TOLERANCE, msg=model)


if __name__ == "__main__":
    import unittest
    unittest.main()
