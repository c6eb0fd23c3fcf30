"""Classify, Tokenize and ClassifyStream against PyTorch references, over gRPC
and through bertserve-cli --json.

The server tokenizes (checked against known bert-base-uncased ids), then the
same model.pt is run here with torch.jit.load on the ids the server reports;
logits and probabilities must agree to 1e-5.
"""

import os
import unittest

import grpc

import harness
from harness import classify_request, inference_pb2, text_input

TOLERANCE = 1e-5

# name -> (label names the server must report, number of logits)
MODELS = {
    "tt-tuple": ["negative", "neutral", "positive"],
    "nott-dict": ["negative", "positive"],
    "single-logit": ["relevant"],
    "plain": ["LABEL_0", "LABEL_1", "LABEL_2"],
}
MAX_LEN = {"tt-tuple": 64, "nott-dict": 128, "single-logit": 128, "plain": 128}

LONG_TEXT = " ".join(
    "The quick brown fox number %d jumps over the lazy dog and keeps running." % i
    for i in range(40))
UNICODE_TEXT = "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u5317\u4eac \U0001F600"

# (text, pair) inputs every model is checked on.
INPUTS = [
    ("hello", ""),
    ("The quick brown fox jumps over the lazy dog.", ""),
    ("My name is John", "pair"),
    (UNICODE_TEXT, ""),
    ("Is this a question?", "Yes, it is an answer \u2014 with punctuation!"),
    (LONG_TEXT, ""),
    (LONG_TEXT, "a short second segment"),
]


class ClassifyTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=list(MODELS))
        cls.server.wait_ready()
        cls.refs = {name: harness.ReferenceModel(os.path.join(harness.models_dir(), name))
                    for name in MODELS}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    # --- helpers ----------------------------------------------------------

    def tokenize(self, model, text, pair="", truncate=None):
        req = inference_pb2.TokenizeRequest(model=model, input=text_input(text, pair))
        if truncate is not None:
            req.truncate = truncate
        return self.server.inference.Tokenize(req)

    def reference(self, model, text, pair=""):
        """(logits, num_tokens, truncated) for one input, via the server's tokens."""
        tok = self.tokenize(model, text, pair)
        ids = [t.id for t in tok.tokens]
        types = [t.type_id for t in tok.tokens]
        return self.refs[model].logits(ids, types), len(ids), tok.truncated

    def assertScoresMatch(self, model, classification, expected, top_k=0, what=""):
        """Scores best first, labels by index, values within TOLERANCE."""
        labels = MODELS[model]
        n = len(labels)
        want = min(top_k, n) if top_k else n
        scores = list(classification.scores)
        self.assertEqual(len(scores), want, f"{what}: number of scores")
        values = [s.score for s in scores]
        self.assertEqual(values, sorted(values, reverse=True), f"{what}: not best first")
        for s in scores:
            self.assertTrue(0 <= s.index < n, f"{what}: index {s.index}")
            self.assertEqual(s.label, labels[s.index], f"{what}: label of index {s.index}")
            self.assertAlmostEqual(s.score, expected[s.index], delta=TOLERANCE,
                                   msg=f"{what}: score of {s.label}")
        # The top-k are the k best of the reference.
        best = sorted(range(n), key=lambda i: expected[i], reverse=True)[:want]
        self.assertEqual(sorted(s.index for s in scores), sorted(best), f"{what}: top-k set")

    # --- tokenizer, through the server ------------------------------------

    def test_tokenize_known_ids(self):
        tok = self.tokenize("tt-tuple", "My name is John", "pair")
        self.assertEqual([t.id for t in tok.tokens], [101, 2026, 2171, 2003, 2198, 102, 3940, 102])
        self.assertEqual([t.type_id for t in tok.tokens], [0, 0, 0, 0, 0, 0, 1, 1])
        self.assertEqual([t.sequence for t in tok.tokens], [-1, 0, 0, 0, 0, -1, 1, -1])
        self.assertEqual([t.token for t in tok.tokens],
                         ["[CLS]", "my", "name", "is", "john", "[SEP]", "pair", "[SEP]"])
        self.assertEqual([(t.start, t.end) for t in tok.tokens],
                         [(0, 0), (0, 2), (3, 7), (8, 10), (11, 15), (0, 0), (0, 4), (0, 0)])
        self.assertFalse(tok.truncated)

    def test_tokenize_unicode(self):
        tok = self.tokenize("nott-dict", UNICODE_TEXT)
        self.assertEqual([t.token for t in tok.tokens],
                         ["[CLS]", "cafe", "naive", "resume", "\u5317", "\u4eac", "[UNK]", "[SEP]"])
        self.assertEqual([t.id for t in tok.tokens],
                         [101, 7668, 15743, 13746, 1781, 1755, 100, 102])
        # Offsets are code points of the original text (accents included).
        self.assertEqual([(t.start, t.end) for t in tok.tokens],
                         [(0, 0), (0, 4), (5, 10), (11, 17), (18, 19), (19, 20), (21, 22), (0, 0)])
        vocab = harness.read_vocab()
        for t in tok.tokens:
            self.assertEqual(vocab[t.id], t.token)

    def test_tokenize_truncates_longest_first(self):
        pair = "a short second segment"
        alone = self.tokenize("tt-tuple", pair)
        pair_tokens = len(alone.tokens) - 2
        tok = self.tokenize("tt-tuple", LONG_TEXT, pair)
        self.assertTrue(tok.truncated)
        self.assertEqual(len(tok.tokens), MAX_LEN["tt-tuple"])
        self.assertEqual(sum(1 for t in tok.tokens if t.sequence == 1), pair_tokens,
                         "longest-first truncation must keep the short pair whole")
        self.assertEqual(tok.tokens[-1].id, 102)

    # --- Classify against the reference -----------------------------------

    def test_classify_matches_reference(self):
        for model in MODELS:
            for text, pair in INPUTS:
                what = f"{model} {text[:30]!r}+{pair[:20]!r}"
                with self.subTest(model=model, text=text[:30], pair=pair[:20]):
                    logits, num_tokens, truncated = self.reference(model, text, pair)
                    raw = self.server.inference.Classify(classify_request(
                        model, [text], [pair], raw_scores=True))
                    self.assertEqual(raw.model, model)
                    self.assertEqual(len(raw.results), 1)
                    self.assertEqual(raw.results[0].num_tokens, num_tokens, what)
                    self.assertEqual(raw.results[0].truncated, truncated, what)
                    self.assertScoresMatch(model, raw.results[0], logits, what=what + " raw")

                    probs = self.server.inference.Classify(classify_request(model, [text], [pair]))
                    self.assertScoresMatch(model, probs.results[0], harness.probabilities(logits),
                                           what=what + " probabilities")

    def test_long_input_is_truncated_to_max_length(self):
        for model in MODELS:
            with self.subTest(model=model):
                resp = self.server.inference.Classify(classify_request(model, [LONG_TEXT]))
                self.assertTrue(resp.results[0].truncated)
                self.assertEqual(resp.results[0].num_tokens, MAX_LEN[model])

    def test_batch_with_padding_matches_single_inputs(self):
        texts = [t for t, _ in INPUTS]
        pairs = [p for _, p in INPUTS]
        for model in MODELS:
            with self.subTest(model=model):
                refs = [self.reference(model, t, p) for t, p in INPUTS]
                lengths = {r[1] for r in refs}
                self.assertGreater(len(lengths), 3, "inputs must differ in length")
                resp = self.server.inference.Classify(classify_request(
                    model, texts, pairs, raw_scores=True))
                self.assertEqual(len(resp.results), len(texts))
                for i, (result, (logits, num_tokens, truncated)) in enumerate(
                        zip(resp.results, refs)):
                    self.assertEqual(result.num_tokens, num_tokens, f"input {i}")
                    self.assertEqual(result.truncated, truncated, f"input {i}")
                    self.assertScoresMatch(model, result, logits, what=f"{model} batch input {i}")

    def test_top_k(self):
        text = "top k ordering"
        logits, _, _ = self.reference("tt-tuple", text)
        probs = harness.probabilities(logits)
        for k in (1, 2, 3, 10):
            with self.subTest(top_k=k):
                resp = self.server.inference.Classify(classify_request(
                    "tt-tuple", [text], top_k=k))
                self.assertScoresMatch("tt-tuple", resp.results[0], probs, top_k=k,
                                       what=f"top_k={k}")
        resp = self.server.inference.Classify(classify_request(
            "tt-tuple", [text], top_k=1, raw_scores=True))
        best = max(range(3), key=lambda i: logits[i])
        self.assertEqual(resp.results[0].scores[0].index, best)

    def test_probabilities_sum_to_one(self):
        for model in ("tt-tuple", "nott-dict", "plain"):
            resp = self.server.inference.Classify(classify_request(model, ["sums to one"]))
            self.assertAlmostEqual(sum(s.score for s in resp.results[0].scores), 1.0, delta=1e-5)

    def test_timing_and_request_id(self):
        resp = self.server.inference.Classify(classify_request(
            "nott-dict", ["timing", "two inputs"], request_id="req-42"))
        self.assertEqual(resp.request_id, "req-42")
        self.assertTrue(resp.HasField("timing"))
        t = resp.timing
        for field in ("tokenize_seconds", "queue_seconds", "compute_seconds", "total_seconds"):
            self.assertGreaterEqual(getattr(t, field), 0.0, field)
        self.assertGreater(t.total_seconds, 0.0)
        self.assertGreater(t.compute_seconds, 0.0)
        self.assertGreaterEqual(t.total_seconds + 1e-6, t.compute_seconds)
        self.assertLess(t.total_seconds, 60.0)

    # --- ClassifyStream ---------------------------------------------------

    def test_stream_answers_in_request_order(self):
        # The first request is the slowest (a full batch of long inputs) and the
        # errors are instant: answers that follow completion order show up.
        requests = [
            classify_request("tt-tuple", [LONG_TEXT + str(i) for i in range(8)],
                             raw_scores=True, request_id="r1"),
            classify_request("no-such-model", ["hello"], request_id="r2"),
            classify_request("nott-dict", ["hello"], raw_scores=True, request_id="r3"),
            classify_request("tt-tuple", ["hello"], top_k=-1, request_id="r4"),
            classify_request("plain", ["My name is John"], ["pair"], raw_scores=True,
                             request_id="r5"),
        ]
        answers = list(self.server.inference.ClassifyStream(iter(requests)))
        self.assertEqual([a.request_id for a in answers], ["r1", "r2", "r3", "r4", "r5"])

        self.assertEqual(answers[1].error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertIn("no-such-model", answers[1].error_message)
        self.assertFalse(answers[1].HasField("response"))
        self.assertEqual(answers[3].error_code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        self.assertRegex(answers[3].error_message.lower(), "top_k")

        for i, req in ((0, requests[0]), (2, requests[2]), (4, requests[4])):
            a = answers[i]
            self.assertEqual(a.error_code, 0, a.error_message)
            self.assertTrue(a.HasField("response"))
            self.assertEqual(a.response.request_id, req.request_id)
            self.assertEqual(a.response.model, req.model)
            self.assertEqual(len(a.response.results), len(req.inputs))
            for j, inp in enumerate(req.inputs):
                logits, _, _ = self.reference(req.model, inp.text, inp.text_pair)
                self.assertScoresMatch(req.model, a.response.results[j], logits,
                                       what=f"stream {req.request_id} input {j}")

    # --- the CLI ----------------------------------------------------------

    def test_cli_classify_json(self):
        text, pair = "My name is John", "pair"
        logits, num_tokens, _ = self.reference("tt-tuple", text, pair)
        # Positional text first: --pair may take several values.
        doc, resp = self.server.cli_json(inference_pb2.ClassifyResponse, "classify",
                                         "-m", "tt-tuple", "--raw-scores", text, "--pair", pair)
        # Proto field names, defaults printed.
        self.assertIn("num_tokens", doc["results"][0])
        self.assertIn("truncated", doc["results"][0])
        self.assertIn("request_id", doc)
        self.assertIn("compute_seconds", doc["timing"])
        self.assertEqual(resp.results[0].num_tokens, num_tokens)
        self.assertScoresMatch("tt-tuple", resp.results[0], logits, what="cli raw")

        texts = ["first text", LONG_TEXT]
        doc, resp = self.server.cli_json(inference_pb2.ClassifyResponse, "classify",
                                         "-m", "plain", "--top-k", "2", *texts)
        self.assertEqual(len(resp.results), 2)
        for i, t in enumerate(texts):
            logits, num_tokens, truncated = self.reference("plain", t)
            self.assertEqual(resp.results[i].truncated, truncated)
            self.assertScoresMatch("plain", resp.results[i], harness.probabilities(logits),
                                   top_k=2, what=f"cli plain input {i}")

    def test_cli_single_logit_sigmoid(self):
        logits, _, _ = self.reference("single-logit", "sigmoid please")
        _, resp = self.server.cli_json(inference_pb2.ClassifyResponse, "classify",
                                       "-m", "single-logit", "sigmoid please")
        self.assertScoresMatch("single-logit", resp.results[0], harness.probabilities(logits),
                               what="cli sigmoid")

    def test_cli_no_truncate(self):
        proc = self.server.cli("classify", "-m", "tt-tuple", "--no-truncate", LONG_TEXT)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("INVALID_ARGUMENT", proc.stderr)
        proc = self.server.cli("tokenize", "-m", "tt-tuple", "--no-truncate", LONG_TEXT)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("INVALID_ARGUMENT", proc.stderr)

    def test_cli_tokenize_json(self):
        doc, resp = self.server.cli_json(inference_pb2.TokenizeResponse, "tokenize",
                                         "-m", "tt-tuple", "My name is John", "--pair", "pair")
        self.assertEqual([t.id for t in resp.tokens], [101, 2026, 2171, 2003, 2198, 102, 3940, 102])
        self.assertEqual([t.type_id for t in resp.tokens], [0, 0, 0, 0, 0, 0, 1, 1])
        self.assertIn("type_id", doc["tokens"][1])
        self.assertIn("truncated", doc)

    def test_cli_error_exit(self):
        proc = self.server.cli("classify", "-m", "no-such-model", "hello")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("NOT_FOUND", proc.stderr)
        self.assertIn("no-such-model", proc.stderr)


if __name__ == "__main__":
    unittest.main()
