"""Bad requests over real gRPC: the right status code, a message that names the
problem, and a server that keeps serving afterwards. Broken models in the
repository fail alone, with an error that names the file."""

import unittest

import grpc

import harness
from harness import classify_request, inference_pb2, models_pb2, text_input

INVALID = grpc.StatusCode.INVALID_ARGUMENT
STARTUP_MODELS = ["tt-tuple", "nott-dict", "single-logit", "plain"]
MAX_CLIENT_BATCH = 8  # tt-tuple's config
MAX_LEN = 64          # tt-tuple's config
LONG_TEXT = "hello " * 200
BAD_NAMES = ["../etc", "a/b", "x y", "", "../tt-tuple", "tt-tuple/../plain", "/etc/passwd",
             "caf\u00e9", "a\x00b"]


def invalid_utf8_classify_bytes(field):
    """A serialized ClassifyRequest whose `field` (text or text_pair) of input 0
    holds invalid UTF-8. Python refuses such str values, so the wire bytes of a
    placeholder are patched (same length, so no length prefix changes)."""
    placeholder = "QQQQQQQQ"
    inp = text_input("hello", "world")
    setattr(inp, field, placeholder)
    req = inference_pb2.ClassifyRequest(model="tt-tuple", inputs=[inp])
    data = req.SerializeToString()
    bad = b"ab\xff\xfe\xc3(\x80z"  # 0xff, 0xfe never valid; C3 28 a bad continuation
    assert len(bad) == len(placeholder) and data.count(placeholder.encode()) == 1
    return data.replace(placeholder.encode(), bad)


class BadInputTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=STARTUP_MODELS)
        cls.server.wait_ready()
        cls.raw_classify = cls.server.channel.unary_unary(
            "/bertserve.v1.Inference/Classify",
            request_serializer=lambda b: b,
            response_deserializer=inference_pb2.ClassifyResponse.FromString)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def classify(self, request):
        return self.server.inference.Classify(request)

    def assertStillServing(self):
        resp = self.classify(classify_request("tt-tuple", ["still serving"]))
        self.assertEqual(len(resp.results), 1)
        self.assertEqual(len(resp.results[0].scores), 3)

    def expect(self, codes, pattern, fn, *args):
        err = self.assertRpcError(codes, pattern, fn, *args)
        self.assertStillServing()
        return err

    # --- requests ---------------------------------------------------------

    def test_unknown_model(self):
        self.expect(grpc.StatusCode.NOT_FOUND, "no-such-model",
                    self.classify, classify_request("no-such-model", ["hello"]))
        req = inference_pb2.TokenizeRequest(model="no-such-model", input=text_input("hi"))
        self.expect(grpc.StatusCode.NOT_FOUND, "no-such-model",
                    self.server.inference.Tokenize, req)

    def test_no_inputs(self):
        self.expect(INVALID, "input", self.classify, classify_request("tt-tuple", []))

    def test_too_many_inputs(self):
        ok = self.classify(classify_request("tt-tuple", ["t%d" % i for i in range(MAX_CLIENT_BATCH)]))
        self.assertEqual(len(ok.results), MAX_CLIENT_BATCH)
        self.expect(INVALID, str(MAX_CLIENT_BATCH), self.classify,
                    classify_request("tt-tuple", ["t%d" % i for i in range(MAX_CLIENT_BATCH + 1)]))

    def test_invalid_utf8(self):
        for field in ("text", "text_pair"):
            with self.subTest(field=field):
                self.expect(INVALID, r"utf-?8", self.raw_classify,
                            invalid_utf8_classify_bytes(field), harness.RPC_TIMEOUT_S)

    def test_empty_text(self):
        self.expect(INVALID, "empty", self.classify, classify_request("tt-tuple", [""]))
        self.expect(INVALID, "empty", self.classify,
                    classify_request("tt-tuple", ["fine", ""]))
        # An empty pair is a single-text input, not an error.
        self.classify(classify_request("tt-tuple", ["fine"], [""]))

    def test_top_k_range(self):
        for k in (-1, -1000, 1000001, 2**31 - 1):
            with self.subTest(top_k=k):
                self.expect(INVALID, "top_k", self.classify,
                            classify_request("tt-tuple", ["hello"], top_k=k))
        # A k above the number of labels is not an error: all labels come back.
        resp = self.classify(classify_request("tt-tuple", ["hello"], top_k=1000))
        self.assertEqual(len(resp.results[0].scores), 3)

    def test_truncation(self):
        # "hello" is one token: 62 + [CLS] + [SEP] is exactly the limit.
        fits = " ".join(["hello"] * (MAX_LEN - 2))
        too_long = " ".join(["hello"] * (MAX_LEN - 1))
        resp = self.classify(classify_request("tt-tuple", [fits], truncate=False))
        self.assertEqual(resp.results[0].num_tokens, MAX_LEN)
        self.assertFalse(resp.results[0].truncated)

        self.expect(INVALID, r"64|too long|max_sequence_length|exceed", self.classify,
                    classify_request("tt-tuple", [too_long], truncate=False))
        self.expect(INVALID, r"64|too long|max_sequence_length|exceed", self.classify,
                    classify_request("tt-tuple", ["short", LONG_TEXT], truncate=False))
        req = inference_pb2.TokenizeRequest(model="tt-tuple", input=text_input(too_long),
                                            truncate=False)
        self.expect(INVALID, r"64|too long|max_sequence_length|exceed",
                    self.server.inference.Tokenize, req)

        for truncate in (None, True):
            with self.subTest(truncate=truncate):
                kwargs = {} if truncate is None else {"truncate": truncate}
                resp = self.classify(classify_request("tt-tuple", [too_long, LONG_TEXT], **kwargs))
                for r in resp.results:
                    self.assertTrue(r.truncated)
                    self.assertEqual(r.num_tokens, MAX_LEN)

    def test_bad_model_names(self):
        for name in BAD_NAMES:
            with self.subTest(name=name):
                self.expect(INVALID, "name" if name else "", self.classify,
                            classify_request(name, ["hello"]))
                self.expect(INVALID, "", self.server.inference.Tokenize,
                            inference_pb2.TokenizeRequest(model=name, input=text_input("hi")))
                self.expect(INVALID, "name" if name else "", self.server.models.Load,
                            models_pb2.LoadModelRequest(name=name))

    def test_dot_names_are_not_models(self):
        # "." and ".." match [A-Za-z0-9_.-]+ but must never reach the file system.
        for name in (".", ".."):
            with self.subTest(name=name):
                self.expect((INVALID, grpc.StatusCode.NOT_FOUND), "", self.classify,
                            classify_request(name, ["hello"]))
                self.expect((INVALID, grpc.StatusCode.NOT_FOUND), "", self.server.models.Load,
                            models_pb2.LoadModelRequest(name=name))

    # --- broken models ----------------------------------------------------

    def check_broken(self, name, file_pattern, extra_patterns=()):
        err = self.expect((grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INTERNAL),
                          file_pattern, self.server.models.Load,
                          models_pb2.LoadModelRequest(name=name))
        for pattern in extra_patterns:
            self.assertRegex(err.details(), pattern)
        status = self.server.models.Get(models_pb2.GetModelRequest(name=name))
        self.assertEqual(harness.state_name(status.state), "FAILED")
        self.assertRegex(status.last_error, file_pattern)
        for pattern in extra_patterns:
            self.assertRegex(status.last_error, pattern)
        # Asking it to classify fails too, and names the model.
        self.expect((grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE,
                     grpc.StatusCode.INTERNAL), "", self.classify,
                    classify_request(name, ["hello"]))

    def test_broken_model_file(self):
        self.check_broken("broken-model", r"model\.pt")

    def test_broken_config(self):
        self.check_broken("broken-config", r"config\.pbtxt", [r"colour", r"\b3:\d+|line 3"])

    def test_list_after_failures(self):
        for name in ("broken-model", "broken-config"):
            try:
                self.server.models.Load(models_pb2.LoadModelRequest(name=name))
            except grpc.RpcError:
                pass
            else:
                self.fail(f"Load({name}) succeeded")
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        states = {m.name: harness.state_name(m.state) for m in listing.models}
        self.assertEqual(states["broken-model"], "FAILED")
        self.assertEqual(states["broken-config"], "FAILED")
        for name in STARTUP_MODELS:
            self.assertEqual(states[name], "READY", name)
        errors = {m.name: m.last_error for m in listing.models}
        self.assertRegex(errors["broken-model"], r"model\.pt")
        self.assertRegex(errors["broken-config"], r"config\.pbtxt")
        for name in STARTUP_MODELS:
            self.assertEqual(errors[name], "", name)
        self.assertEqual(self.server.health_check(""), harness.SERVING)
        self.assertStillServing()


if __name__ == "__main__":
    unittest.main()
