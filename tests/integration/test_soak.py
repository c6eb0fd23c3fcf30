"""Soak: a bounded run of mixed traffic on the simulated device, sized so that
only two of four models fit at once.

Five clients send Classify and ClassifyStream calls of 1 to 8 random texts
(some of them text pairs) to the four models; some calls are cancelled by the
client mid-flight, some carry deadlines too short to be met. One thread
unloads and reloads models; another lets "other processes" take all but a
quarter of an activation reserve of the device for a while, so that batches
run out of memory and split, and placements must evict to fit.

Every answer is checked against PyTorch on each input alone (1e-5 on scores),
with the token count and truncation the server reports; every stream message
gets exactly one answer, in order; every error is one the README allows for
that call. At the end, with every model unloaded, the Models API's accounted
bytes are back to what they were at start, the server's RSS grew less than a
stated bound after a warm-up phase, the server's own request counts agree
with what the clients saw, and the server exits 0 on SIGTERM. The figures are
printed.

BERTSERVE_SOAK_SECONDS sets the length of the traffic (default 180 s): a
warm-up phase of a fifth of it, then rounds of at most a minute, with the
server brought to rest and measured after each. Under CTest it comes from the
CMake cache variable of the same name, which sets the test's timeout too.
"""

import collections
import math
import os
import random
import re
import shutil
import tempfile
import threading
import time
import traceback
import unittest

import grpc

import harness
from harness import inference_pb2, models_pb2

SOAK_SECONDS = float(os.environ.get("BERTSERVE_SOAK_SECONDS") or 180)
WARMUP_SHARE = 0.2
MODELS = ["tt-tuple", "single-logit", "plain", "nott-dict"]
MAX_SEQUENCE_LENGTH = 64
MAX_INPUTS = 8
TOLERANCE = 1e-5
UNARY_CLIENTS = 3
STREAM_CLIENTS = 2
MAX_STREAM_MESSAGES = 6
# Calls that are neither cancelled nor given a short deadline: long enough
# that only a server that stopped answering misses it.
CALL_TIMEOUT_S = harness.RPC_TIMEOUT_S
SHORT_UNARY_TIMEOUT_S = (0.001, 0.05)
SHORT_STREAM_TIMEOUT_S = (0.005, 0.2)
# The churn and squeeze threads pace themselves by finished calls, not by
# time; this bounds each such wait (no traffic for this long is a failure).
PROGRESS_WAIT_S = 120.0
CALLS_BETWEEN_CHURNS = 15
CALLS_BETWEEN_SQUEEZES = 20
CALLS_PER_SQUEEZE = 30
# Between rounds the server is brought to rest and its RSS measured.
ROUND_SECONDS = 60.0
JOIN_S = 3 * CALL_TIMEOUT_S
QUIESCE_S = 120.0
# RSS may grow by this much from the end of the warm-up phase to the end,
# both measured at rest (every model unloaded, nothing queued), with malloc
# giving big blocks back (MALLOC_TUNABLES). The warm-up phase has grown the
# heap, malloc's arenas and gRPC's buffers to their working size; from there
# RSS at rest moved by about 2 MiB in runs of this test. 32 MiB is four model
# copies (8 MB each; the churn unloads and reloads hundreds of times), sixteen
# batches' activations (up to 2 MB each, thousands of forwards), or a few KiB
# per call over the default run's ~10,000 calls and stream messages. Longer
# runs (BERTSERVE_SOAK_SECONDS) make slower leaks cross it.
RSS_GROWTH_BOUND = 32 << 20
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=131072"
MAX_PROBLEMS = 100
STEADY_STATES = ("UNLOADED", "HOST", "READY")
WORDS = ["hello", "world", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog.",
         "serving", "models", "memory", "caf\u00e9", "na\u00efve", "tokenization",
         "unbelievably", "don't", "GPU", "x86_64", "Hello,", "(again)", "2024", "z\u00fcrich"]

OK = grpc.StatusCode.OK
CANCELLED = grpc.StatusCode.CANCELLED
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# RESOURCE_EXHAUSTED while the device is squeezed, as the README lists it:
# a placement the device has no room for, a warm-up that cannot fit even one
# row, an input that does not fit even alone.
SQUEEZE_ERRORS = re.compile(r"reports only \d+ free|warm-up forward at \d+ tokens failed|"
                            r"does not fit on \S+ even alone|out of memory", re.IGNORECASE)
# RESOURCE_EXHAUSTED, at any time, for a model that cannot fit the budget even
# with every idle model evicted: the others stayed in use while it waited.
HELD_ERRORS = re.compile(r"VRAM budget can be freed: the rest is held by models in use")
# UNAVAILABLE for an Unload that finds the model on its way (DESIGN.md:
# loading is UNAVAILABLE); the churn thread tries another next time.
MOVING_ERRORS = re.compile(r'model "[^"]*" is (loading|placing|evicting)$')
# Codes the server may finish an inference call with, whether or not the
# client was still there to see it: OK, the client's own cancellation or
# deadline, and those above.
SERVER_CODES = ("OK", "CANCELLED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "UNAVAILABLE")


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


class Request:
    """One ClassifyRequest with what the check needs to know about it."""

    def __init__(self, model, inputs, request_id, raw_scores, top_k):
        self.model = model
        self.inputs = inputs  # [(text, pair)]
        self.request_id = request_id
        self.raw_scores = raw_scores
        self.top_k = top_k
        self.message = harness.classify_request(
            model, [t for t, _ in inputs], [p for _, p in inputs], request_id=request_id,
            raw_scores=raw_scores, top_k=top_k)


class Ledger:
    """What the soak's threads record, under one lock: outcomes, problems,
    the windows in which the device was squeezed, and a count of finished
    calls the pacing threads wait on."""

    def __init__(self):
        self.cond = threading.Condition()
        self.outcomes = collections.Counter()  # (method, kind, code name)
        self.problems = []
        self.errors = collections.Counter()  # (method, code name, message without numbers)
        self.problem_count = 0
        self.checked_inputs = 0
        self.finished = 0
        self.windows = []  # [start, end or None] in time.monotonic()
        # For comparing with the server's bertserve_requests_total: calls (or
        # stream messages) sent, answers the client saw from the server, and
        # calls the client gave up on (the server may have finished them any
        # way, or never seen them).
        self.sent = collections.Counter()  # method
        self.seen = collections.Counter()  # (method, code name)
        self.gave_up = collections.Counter()  # method
        self.squeezes = 0
        self.churns = 0
        self.stop = threading.Event()

    def problem(self, text):
        with self.cond:
            self.problem_count += 1
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(text)
            if self.problem_count >= MAX_PROBLEMS:
                self.stop.set()
            self.cond.notify_all()

    def outcome(self, method, kind, code):
        with self.cond:
            self.outcomes[(method, kind, code.name)] += 1
            self.finished += 1
            self.cond.notify_all()

    def account(self, method, sent, seen_codes, gave_up):
        with self.cond:
            self.sent[method] += sent
            for code in seen_codes:
                self.seen[(method, code.name)] += 1
            self.gave_up[method] += gave_up

    def error(self, method, code, details):
        reason = re.sub(r"\d+", "N", re.sub(r'"[^"]*"', "M", details))[:120]
        with self.cond:
            self.errors[(method, code.name, reason)] += 1

    def checked(self, inputs):
        with self.cond:
            self.checked_inputs += inputs

    def wait_progress(self, calls):
        """Waits until `calls` more calls have finished; False when the phase
        is stopping (or traffic stalled, which is recorded as a problem)."""
        deadline = time.monotonic() + PROGRESS_WAIT_S
        with self.cond:
            target = self.finished + calls
            while self.finished < target:
                if self.stop.is_set():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
        if self.finished < target:
            self.problem(f"no {calls} calls finished within {PROGRESS_WAIT_S:.0f} s")
            return False
        return not self.stop.is_set()

    def open_window(self):
        with self.cond:
            self.windows.append([time.monotonic(), None])
            self.squeezes += 1

    def close_window(self):
        with self.cond:
            self.windows[-1][1] = time.monotonic()

    def squeezed(self, start, end):
        """Whether the device was squeezed at any moment of [start, end]."""
        with self.cond:
            return any(w_start <= end and (w_end is None or w_end >= start)
                       for w_start, w_end in self.windows)

    def stop_phase(self):
        with self.cond:
            self.stop.set()
            self.cond.notify_all()


class SoakTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.repo = tempfile.mkdtemp(prefix="bertserve-soak-")
        cls.addClassCleanup(shutil.rmtree, cls.repo, True)
        cls.labels = {}
        for name in MODELS:
            src = os.path.join(harness.models_dir(), name)
            shutil.copytree(src, os.path.join(cls.repo, name))
            with open(os.path.join(src, "config.pbtxt")) as f:
                labels = re.findall(r'labels:\s*"([^"]*)"', f.read())
            with open(os.path.join(cls.repo, name, "config.pbtxt"), "w") as f:
                f.write("".join(f'labels: "{l}"\n' for l in labels)
                        + f"max_sequence_length: {MAX_SEQUENCE_LENGTH}\n"
                        f"batch {{ max_client_batch_size: {MAX_INPUTS} max_batch_tokens: 1024 }}\n")
            cls.labels[name] = labels
        cls.refs = {n: harness.ReferenceModel(os.path.join(cls.repo, n)) for n in MODELS}
        cls.weights = max(r.weight_bytes() for r in cls.refs.values())
        cls.foreign = os.path.join(cls.repo, "foreign-bytes")
        with open(cls.foreign, "w") as f:
            f.write("0")
        # Budget = 3 x weights: two models fit with their activation reserve,
        # three never do, so traffic over four evicts and swaps in. Host
        # budget = 1.5 x weights: host copies are dropped and reloaded too.
        cls.device_bytes = 4 * cls.weights
        cls.budget = 3 * cls.weights
        # malloc's mmap threshold fixed at its initial 128 KiB: model copies
        # and batches' tensors are mapped and given back to the system when
        # freed, so RSS at rest is what the server holds, not what malloc
        # kept for reuse (with the threshold left to adapt, it varied by
        # 120 MiB between two rests of one run).
        saved = os.environ.get("GLIBC_TUNABLES")
        os.environ["GLIBC_TUNABLES"] = MALLOC_TUNABLES
        try:
            harness.start_server(cls, repository=cls.repo, load=[], extra_args=[
                "--device", "sim", "--simulated-device-memory", str(cls.device_bytes),
                "--vram-reserve", "0", "--vram-budget", str(cls.budget),
                "--host-budget", str(int(1.5 * cls.weights)),
                "--simulated-foreign-memory-file", cls.foreign])
        finally:
            if saved is None:
                del os.environ["GLIBC_TUNABLES"]
            else:
                os.environ["GLIBC_TUNABLES"] = saved
        cls.server.wait_ready()
        cls.baseline = cls.server.models.List(models_pb2.ListModelsRequest()).device

    # --- expected answers ---------------------------------------------------

    def learn_tokens(self):
        """Tokenizes every word with each model (Tokenize RPC). The texts are
        words joined by spaces, so a text's tokens are its words' tokens
        between [CLS] and [SEP]; checked here against the server on whole
        texts, truncated ones and pairs included."""
        self.pieces = {}
        self.specials = {}
        for model in MODELS:
            table = {}
            for word in WORDS:
                tokens = self.tokenize(self.server.inference, model, word).tokens
                table[word] = [t.id for t in tokens[1:-1]]
                self.specials[model] = (tokens[0].id, tokens[-1].id)
            self.pieces[model] = table
        rng = random.Random(1)
        for model in MODELS:
            for i in range(12):
                text, pair = self.random_input(rng, model, pair=i % 3 == 2)
                tokens = self.tokenize(self.server.inference, model, text, pair)
                want = self.expected_tokens(model, text, pair)
                got = ([t.id for t in tokens.tokens], [t.type_id for t in tokens.tokens],
                       tokens.truncated)
                self.assertEqual(got, want, f"{model}: tokens of {text!r} / {pair!r}")
        self.reserve = min(
            self.server.models.Get(models_pb2.GetModelRequest(name=m)).activation_reserve_bytes
            for m in MODELS)

    @staticmethod
    def tokenize(stub, model, text, pair="", timeout=CALL_TIMEOUT_S):
        return stub.Tokenize(inference_pb2.TokenizeRequest(
            model=model, input=harness.text_input(text, pair)), timeout=timeout)

    def expected_tokens(self, model, text, pair):
        """(ids, type ids, truncated) the model sees."""
        cls_id, sep_id = self.specials[model]
        first = [i for w in text.split(" ") for i in self.pieces[model][w]]
        if not pair:
            room = MAX_SEQUENCE_LENGTH - 2
            ids = [cls_id] + first[:room] + [sep_id]
            return ids, [0] * len(ids), len(first) > room
        second = [i for w in pair.split(" ") for i in self.pieces[model][w]]
        # random_input keeps pairs short enough that nothing is truncated.
        ids = [cls_id] + first + [sep_id] + second + [sep_id]
        return ids, [0] * (len(first) + 2) + [1] * (len(second) + 1), False

    def random_input(self, rng, model, pair=None):
        if pair is None:
            pair = rng.random() < 0.15
        if not pair:
            return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 60))), ""
        # Both segments within the model's length: [CLS] a [SEP] b [SEP].
        segments, used = [[], []], 3
        for k in (0, 1):
            for _ in range(rng.randint(1, 20)):
                word = rng.choice(WORDS)
                cost = len(self.pieces[model][word])
                if used + cost > MAX_SEQUENCE_LENGTH:
                    break
                segments[k].append(word)
                used += cost
            if not segments[k]:
                segments[k].append("the")
                used += 1
        return " ".join(segments[0]), " ".join(segments[1])

    def reference_logits(self, model, ids, type_ids):
        key = (model, tuple(ids), tuple(type_ids))
        with self.cache_lock:
            hit = self.logits_cache.get(key)
        if hit is None:
            hit = self.refs[model].logits(ids, type_ids)
            with self.cache_lock:
                self.logits_cache[key] = hit
        return hit

    def new_request(self, rng, request_id):
        model = rng.choice(MODELS)
        inputs = [self.random_input(rng, model) for _ in range(rng.randint(1, MAX_INPUTS))]
        raw = rng.random() < 0.75
        top_k = 0 if rng.random() < 0.6 else rng.randint(1, 4)
        return Request(model, inputs, request_id, raw, top_k)

    def check_reply(self, request, reply, where):
        """Records a problem for every way `reply` differs from PyTorch."""
        problems = []
        if reply.model != request.model or reply.request_id != request.request_id:
            problems.append(f"answer for model {reply.model!r}, id {reply.request_id!r}")
        if len(reply.results) != len(request.inputs):
            problems.append(f"{len(reply.results)} results for {len(request.inputs)} inputs")
        for i, ((text, pair), result) in enumerate(zip(request.inputs, reply.results)):
            ids, type_ids, truncated = self.expected_tokens(request.model, text, pair)
            if result.num_tokens != len(ids) or result.truncated != truncated:
                problems.append(f"input {i}: {result.num_tokens} tokens (truncated "
                                f"{result.truncated}), expected {len(ids)} ({truncated})")
            logits = self.reference_logits(request.model, ids, type_ids)
            want = logits if request.raw_scores else harness.probabilities(logits)
            count = request.top_k if 0 < request.top_k < len(want) else len(want)
            indices = [s.index for s in result.scores]
            best = sorted(range(len(want)), key=lambda j: -want[j])[:count]
            if sorted(indices) != sorted(best) or len(set(indices)) != len(indices):
                problems.append(f"input {i}: indices {indices}, the best {count} are {best}")
                continue
            names = self.labels[request.model] or [f"LABEL_{j}" for j in range(len(want))]
            for rank, s in enumerate(result.scores):
                if abs(s.score - want[s.index]) > TOLERANCE or s.label != names[s.index]:
                    problems.append(f"input {i} ({text!r}, {pair!r}): {s.label}={s.score}, "
                                    f"PyTorch {names[s.index]}={want[s.index]}")
                if rank and s.score > result.scores[rank - 1].score + TOLERANCE:
                    problems.append(f"input {i}: scores not best first: {indices}")
        if problems:
            self.ledger.problem(f"{where} {request.request_id} ({request.model}): "
                                + "; ".join(problems[:4]))
        else:
            self.ledger.checked(len(request.inputs))

    def judge_error(self, where, kind, code, details, start, end):
        """Records a problem unless the README allows `code` for this call."""
        details = details or ""
        self.ledger.error(where.split(" ")[0], code, details)
        if code == DEADLINE_EXCEEDED and kind == "short":
            return
        if code == CANCELLED and kind == "cancel":
            return
        if (code == RESOURCE_EXHAUSTED and SQUEEZE_ERRORS.search(details)
                and self.ledger.squeezed(start, end)):
            return
        if code == RESOURCE_EXHAUSTED and HELD_ERRORS.search(details):
            return
        if code == UNAVAILABLE and kind == "unload" and MOVING_ERRORS.search(details):
            return
        self.ledger.problem(f"{where} ({kind} call): {code.name}: {details}")

    # --- the traffic --------------------------------------------------------

    def unary_call(self, stub, rng, tag, kind="normal"):
        request = self.new_request(rng, tag)
        timeout = rng.uniform(*SHORT_UNARY_TIMEOUT_S) if kind == "short" else CALL_TIMEOUT_S
        start = time.monotonic()
        try:
            reply = stub.Classify(request.message, timeout=timeout)
        except grpc.RpcError as e:
            code = e.code()
            self.judge_error(f"Classify {tag}", kind, code, e.details(), start, time.monotonic())
            self.finish_unary(kind, code)
            return
        self.check_reply(request, reply, "Classify")
        self.finish_unary(kind, OK)

    def cancelled_call(self, stub, rng, tag):
        """Cancels a call at once, or after another call made meanwhile has
        been answered (the first is then queued or running on the server)."""
        request = self.new_request(rng, tag)
        start = time.monotonic()
        future = stub.Classify.future(request.message, timeout=CALL_TIMEOUT_S)
        if rng.random() < 0.5:
            self.unary_call(stub, rng, tag + "-meanwhile")
        cancelled = future.cancel()
        try:
            reply = future.result()
        except grpc.FutureCancelledError:
            if not cancelled:
                self.ledger.problem(f"Classify {tag}: cancel() said done, result() cancelled")
            self.finish_unary("cancel", CANCELLED)
            return
        except grpc.RpcError as e:
            code = e.code()
            self.judge_error(f"Classify {tag}", "cancel", code, e.details(), start,
                             time.monotonic())
            self.finish_unary("cancel", code)
            return
        if cancelled:
            self.ledger.problem(f"Classify {tag}: cancelled, yet answered")
        self.check_reply(request, reply, "Classify")
        self.finish_unary("cancel", OK)

    def finish_unary(self, kind, code):
        server_answered = code not in (CANCELLED, DEADLINE_EXCEEDED)
        self.ledger.account("Classify", 1, [code] if server_answered else [],
                            0 if server_answered else 1)
        self.ledger.outcome("Classify", kind, code)

    def tokenize_call(self, stub, rng, tag):
        model = rng.choice(MODELS)
        text, pair = self.random_input(rng, model)
        start = time.monotonic()
        try:
            tokens = self.tokenize(stub, model, text, pair)
        except grpc.RpcError as e:
            self.judge_error(f"Tokenize {tag}", "normal", e.code(), e.details(), start,
                             time.monotonic())
            self.ledger.outcome("Tokenize", "normal", e.code())
            return
        got = ([t.id for t in tokens.tokens], [t.type_id for t in tokens.tokens], tokens.truncated)
        if got != self.expected_tokens(model, text, pair):
            self.ledger.problem(f"Tokenize {tag} ({model}): {got} for {text!r} / {pair!r}")
        self.ledger.outcome("Tokenize", "normal", OK)

    def stream_call(self, stub, rng, tag, kind):
        """One ClassifyStream of 1 to 6 requests (2 to 6 when cancelled after
        the first answers): answers must come one per request, in order."""
        count = rng.randint(2 if kind == "cancel" else 1, MAX_STREAM_MESSAGES)
        requests = [self.new_request(rng, f"{tag}-{i}") for i in range(count)]
        timeout = rng.uniform(*SHORT_STREAM_TIMEOUT_S) if kind == "short" else CALL_TIMEOUT_S
        cancel_after = rng.randint(1, count - 1) if kind == "cancel" else None
        start = time.monotonic()
        call = stub.ClassifyStream(iter([r.message for r in requests]), timeout=timeout)
        answers, end_code, end_details = [], OK, ""
        try:
            for answer in call:
                answers.append(answer)
                if len(answers) == cancel_after:
                    call.cancel()
        except grpc.RpcError as e:
            end_code, end_details = e.code(), e.details()
        end = time.monotonic()
        where = f"ClassifyStream {tag}"
        if len(answers) > count:
            self.ledger.problem(f"{where}: {len(answers)} answers to {count} requests")
        if end_code == OK and len(answers) != count:
            self.ledger.problem(f"{where}: ended OK after {len(answers)} answers to {count}")
        if end_code != OK:
            self.judge_error(where, kind, end_code, end_details, start, end)
        seen = []
        for request, answer in zip(requests, answers):
            if answer.request_id != request.request_id:
                self.ledger.problem(f"{where}: answer {answer.request_id!r} where "
                                    f"{request.request_id!r} was due")
                continue
            code = CODE_BY_NUMBER.get(answer.error_code)
            if code is None:
                self.ledger.problem(f"{where}: error_code {answer.error_code}")
                continue
            seen.append(code)
            if code != OK:
                self.judge_error(f"{where} {request.request_id}", kind, code,
                                 answer.error_message, start, end)
            elif not answer.HasField("response"):
                self.ledger.problem(f"{where} {request.request_id}: no error and no response")
            else:
                self.check_reply(request, answer.response, where)
        self.ledger.account("ClassifyStream", count, seen, count - len(answers))
        self.ledger.outcome("ClassifyStream", kind, end_code)

    def client(self, seed, streaming):
        rng = random.Random(seed)
        channel = grpc.insecure_channel(self.server.address)
        stub = harness.Stub(channel, inference_pb2.DESCRIPTOR.services_by_name["Inference"])
        calls = 0
        try:
            while not self.ledger.stop.is_set():
                calls += 1
                tag = f"c{seed}-{calls}"
                r = rng.random()
                if streaming:
                    kind = "short" if r < 0.15 else "cancel" if r < 0.3 else "normal"
                    self.stream_call(stub, rng, tag, kind)
                elif r < 0.1:
                    self.unary_call(stub, rng, tag, "short")
                elif r < 0.2:
                    self.cancelled_call(stub, rng, tag)
                elif r < 0.25:
                    self.tokenize_call(stub, rng, tag)
                else:
                    self.unary_call(stub, rng, tag)
        except Exception:  # noqa: BLE001 - any failure of the client is the test's
            self.ledger.problem(f"client {seed}: {traceback.format_exc()}")
        finally:
            channel.close()

    def churner(self, seed):
        """Unloads one model (every fifth time, all four) after every few
        calls, and loads one of them back or leaves it to the next request."""
        rng = random.Random(seed)
        models = self.server.models
        try:
            while self.ledger.wait_progress(CALLS_BETWEEN_CHURNS):
                names = list(MODELS) if rng.random() < 0.2 else [rng.choice(MODELS)]
                for name in names:
                    try:
                        models.Unload(models_pb2.UnloadModelRequest(name=name))
                        self.ledger.outcome("Models.Unload", "normal", OK)
                    except grpc.RpcError as e:
                        self.ledger.outcome("Models.Unload", "normal", e.code())
                        self.judge_error(f"Models.Unload {name}", "unload", e.code(), e.details(),
                                         0, 0)
                if rng.random() < 0.6:
                    name = rng.choice(names)
                    start = time.monotonic()
                    try:
                        status = models.Load(models_pb2.LoadModelRequest(name=name))
                        self.ledger.outcome("Models.Load", "normal", OK)
                        if harness.state_name(status.state) == "FAILED":
                            self.ledger.problem(f"Load {name}: FAILED: {status.last_error}")
                    except grpc.RpcError as e:
                        self.ledger.outcome("Models.Load", "normal", e.code())
                        self.judge_error(f"Models.Load {name}", "normal", e.code(), e.details(),
                                         start, time.monotonic())
                with self.ledger.cond:
                    self.ledger.churns += 1
        except Exception:  # noqa: BLE001
            self.ledger.problem(f"churn: {traceback.format_exc()}")

    def squeezer(self):
        """After every few calls, lets other processes take all of the device
        but a quarter of an activation reserve beyond the resident weights,
        for a few calls: batches run out of memory and split, placements
        must evict to fit. The device is free again before it returns."""
        try:
            while self.ledger.wait_progress(CALLS_BETWEEN_SQUEEZES):
                foreign = self.squeeze_bytes()
                if foreign is None:
                    continue
                self.ledger.open_window()
                try:
                    harness.set_foreign_memory(self.server, self.foreign, foreign)
                    self.ledger.wait_progress(CALLS_PER_SQUEEZE)
                finally:
                    harness.set_foreign_memory(self.server, self.foreign, 0)
                    self.ledger.close_window()
        except Exception:  # noqa: BLE001
            self.ledger.problem(f"squeeze: {traceback.format_exc()}")

    def squeeze_bytes(self):
        """Foreign bytes that leave a quarter of an activation reserve free
        beyond the resident weights, from a listing taken while nothing moves:
        no placement under way, no batch's tensors alive. Squeezing from any
        other moment could take bytes the server already holds, which no
        other process on a real device can. None if the phase ends first."""
        deadline = time.monotonic() + PROGRESS_WAIT_S
        while not self.ledger.stop.is_set():
            listing = self.server.models.List(models_pb2.ListModelsRequest())
            device = listing.device
            resident = sum(m.device_bytes for m in listing.models)
            if (device.placement_queue_depth == 0 and resident == device.allocator_allocated_bytes
                    and all(harness.state_name(m.state) in STEADY_STATES for m in listing.models)):
                return max(0, device.total_bytes - resident - self.reserve // 4)
            if time.monotonic() > deadline:
                self.ledger.problem(f"the device never stood still for {PROGRESS_WAIT_S:.0f} s")
                return None
            time.sleep(0.005)
        return None

    def run_phase(self, seconds, seed):
        """Runs the traffic for `seconds` of wall time, then lets every thread
        finish its call."""
        if self.ledger.problem_count >= MAX_PROBLEMS:
            return
        self.ledger.stop.clear()
        threads = [threading.Thread(target=self.client, args=(seed + c, c >= UNARY_CLIENTS))
                   for c in range(UNARY_CLIENTS + STREAM_CLIENTS)]
        threads.append(threading.Thread(target=self.churner, args=(seed + 100,)))
        threads.append(threading.Thread(target=self.squeezer))
        for t in threads:
            t.start()
        # The length of the phase; the threads stop early on too many problems.
        self.ledger.stop.wait(seconds)
        self.ledger.stop_phase()
        deadline = time.monotonic() + JOIN_S
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        self.assertEqual(stuck, [], f"threads still running {JOIN_S:.0f} s after the phase")

    # --- the end state ------------------------------------------------------

    def quiesce(self):
        """Unloads every model until two listings in a row show all of them
        UNLOADED, nothing held or queued for placement, and the same
        accounted bytes: a call the client gave up on may still place a model
        for a while. Returns that device status."""
        deadline = time.monotonic() + QUIESCE_S
        previous = None
        while True:
            for name in MODELS:
                try:
                    self.server.models.Unload(models_pb2.UnloadModelRequest(name=name))
                except grpc.RpcError as e:
                    if e.code() != UNAVAILABLE or not MOVING_ERRORS.search(e.details() or ""):
                        raise
            listing = self.server.models.List(models_pb2.ListModelsRequest())
            d = listing.device
            quiet = (all(harness.state_name(m.state) == "UNLOADED" and m.in_use == 0
                         for m in listing.models) and d.placement_queue_depth == 0)
            figures = (d.reserved_bytes, d.allocator_allocated_bytes, d.host_bytes)
            if quiet and previous == figures:
                return d
            previous = figures if quiet else None
            if time.monotonic() > deadline:
                self.fail(f"the server never went quiet within {QUIESCE_S:.0f} s: {listing}")

    def assertAtBaseline(self, device, when):
        base = self.baseline
        self.assertEqual(
            (device.reserved_bytes, device.allocator_allocated_bytes, device.host_bytes),
            (base.reserved_bytes, base.allocator_allocated_bytes, base.host_bytes),
            f"{when}: reserved, allocator-allocated and host bytes with every model unloaded")

    def metric_sum(self, body, name, **labels):
        total = 0.0
        for key, value in harness.metric_samples(body, name).items():
            if all(f'{k}="{v}"' in key for k, v in labels.items()):
                total += value
        return total

    def server_requests(self, body):
        """{(method, code name): count} from bertserve_requests_total."""
        counts = collections.Counter()
        for key, value in harness.metric_samples(body, "bertserve_requests_total").items():
            method = re.search(r'method="([^"]*)"', key).group(1)
            code = re.search(r'code="([^"]*)"', key).group(1)
            counts[(method, code)] += value
        return counts

    def server_count_failures(self, before, after):
        """Each call (stream message) the server finished is counted once by
        code: at least what the clients saw with that code, at most that
        plus the calls the clients gave up on. Returns what disagrees."""
        ledger, failures = self.ledger, []
        for method in ("Classify", "ClassifyStream"):
            counts = {code: after[(m, code)] - before[(m, code)]
                      for (m, code) in set(after) | set(before) if m == method}
            odd = {code: n for code, n in counts.items() if n and code not in SERVER_CODES}
            if odd:
                failures.append(f"{method}: the server finished calls with {odd}")
            if sum(counts.values()) > ledger.sent[method]:
                failures.append(f"{method}: the server counted {counts}, more than the "
                                f"{ledger.sent[method]} sent")
            for code in set(counts) | {c for (m, c) in ledger.seen if m == method}:
                seen, got = ledger.seen[(method, code)], counts.get(code, 0)
                if not seen <= got <= seen + ledger.gave_up[method]:
                    failures.append(f"{method} {code}: the server counted {got}, the clients "
                                    f"saw {seen} and gave up on {ledger.gave_up[method]}")
        return failures

    # --- the test -----------------------------------------------------------

    def test_soak(self):
        self.ledger = ledger = Ledger()
        self.cache_lock = threading.Lock()
        self.logits_cache = {}
        started = time.monotonic()
        self.learn_tokens()
        self.assertAtBaseline(self.quiesce(), "after setup")
        pid = self.server.proc.pid
        rss_start = harness.rss_bytes(pid)
        metrics_before = self.server_requests(harness.scrape_metrics(self.server.metrics_port))

        # The warm-up phase, then rounds; between them the server is brought
        # to rest (every model unloaded) and measured.
        warmup = SOAK_SECONDS * WARMUP_SHARE
        self.run_phase(warmup, seed=1000)
        self.assertAtBaseline(self.quiesce(), "after the warm-up phase")
        rss = [harness.rss_bytes(pid)]
        rounds = max(1, math.ceil((SOAK_SECONDS - warmup) / ROUND_SECONDS))
        for i in range(rounds):
            if ledger.problem_count >= MAX_PROBLEMS:
                break
            self.run_phase((SOAK_SECONDS - warmup) / rounds, seed=2000 + 100 * i)
            if i + 1 < rounds:
                self.assertAtBaseline(self.quiesce(), f"after round {i + 1}")
                rss.append(harness.rss_bytes(pid))

        # The server still answers every model correctly.
        rng = random.Random(5)
        for model in MODELS:
            request = self.new_request(rng, f"final-{model}")
            request = Request(model, request.inputs, request.request_id, True, 0)
            reply = self.server.inference.Classify(request.message)
            self.check_reply(request, reply, "final Classify")
            self.finish_unary("normal", OK)
        end_device = self.quiesce()
        rss.append(harness.rss_bytes(pid))
        rss_growth = rss[-1] - rss[0]
        body = harness.scrape_metrics(self.server.metrics_port)
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        elapsed = time.monotonic() - started

        api = {k: sum(getattr(m, k) for m in listing.models)
               for k in ("loads", "swap_ins", "evictions", "unloads")}
        placements = collections.Counter()
        for key, value in harness.metric_samples(body, "bertserve_model_placements_total").items():
            kind = re.search(r'kind="([^"]*)"', key).group(1)
            result = re.search(r'result="([^"]*)"', key).group(1)
            placements[f"{kind}/{result}"] += int(value)
        oom = self.metric_sum(body, "bertserve_oom_events_total")
        splits = self.metric_sum(body, "bertserve_batch_splits_total")

        def limit_changes(direction):
            return self.metric_sum(body, "bertserve_batch_token_limit_changes_total",
                                   direction=direction)

        lines = [
            f"soak figures ({SOAK_SECONDS:.0f} s of traffic, warm-up {warmup:.0f} s; "
            f"{elapsed:.0f} s in all):",
            f"  device {self.device_bytes} bytes, budget {self.budget}, weights per model "
            f"{self.weights}, squeeze leaves {self.reserve // 4} free",
            "  calls by method, kind and outcome:"]
        for (method, kind, code), n in sorted(ledger.outcomes.items()):
            lines.append(f"    {method:15} {kind:7} {code:20} {n}")
        lines.append("  errors by method, code and message:")
        for (method, code, reason), n in sorted(ledger.errors.items()):
            lines.append(f"    {method:15} {code:20} {n:5}  {reason}")
        lines += [
            f"  stream messages sent {ledger.sent['ClassifyStream']}, answers checked "
            f"{ledger.checked_inputs} inputs",
            f"  squeezes {ledger.squeezes}, churn cycles {ledger.churns}",
            f"  Models API: {api}",
            f"  placements (metrics): {dict(sorted(placements.items()))}",
            f"  OOM events {oom:.0f}, batch splits {splits:.0f}, token limit down "
            f"{limit_changes('down'):.0f} / up {limit_changes('up'):.0f}, expired inputs "
            f"{self.metric_sum(body, 'bertserve_expired_inputs_total'):.0f}",
            f"  RSS at start {mib(rss_start)}; after the warm-up phase and each round "
            f"{', '.join(mib(r) for r in rss)}: growth {mib(rss_growth)} "
            f"(bound {mib(RSS_GROWTH_BOUND)})",
            f"  accounted bytes at end (reserved, allocated, host): {end_device.reserved_bytes}, "
            f"{end_device.allocator_allocated_bytes}, {end_device.host_bytes}; baseline "
            f"{self.baseline.reserved_bytes}, {self.baseline.allocator_allocated_bytes}, "
            f"{self.baseline.host_bytes}"]
        print("\n".join(lines), flush=True)

        failures = [f"{ledger.problem_count} problems (the first {len(ledger.problems)}):"]
        failures += ledger.problems or ["none"]
        base = self.baseline
        if ((end_device.reserved_bytes, end_device.allocator_allocated_bytes,
             end_device.host_bytes) != (base.reserved_bytes, base.allocator_allocated_bytes,
                                        base.host_bytes)):
            failures.append("accounted bytes not back to baseline at the end")
        if rss_growth >= RSS_GROWTH_BOUND:
            failures.append(f"RSS grew {mib(rss_growth)}, bound {mib(RSS_GROWTH_BOUND)}")
        failures += self.server_count_failures(metrics_before, self.server_requests(body))
        # The soak did what it is for: every kind of event happened.
        codes = collections.Counter()
        for (method, kind, code), n in ledger.outcomes.items():
            codes[(kind, code)] += n
        happened = {
            "answered calls": codes[("normal", "OK")],
            "cancelled calls": codes[("cancel", "CANCELLED")],
            "cancelled streams": ledger.outcomes[("ClassifyStream", "cancel", "CANCELLED")],
            "expired deadlines": codes[("short", "DEADLINE_EXCEEDED")],
            "squeezes": ledger.squeezes,
            "churn cycles": ledger.churns,
            "evictions": api["evictions"],
            "swap-ins": api["swap_ins"],
            "OOM events": oom,
            "batch splits": splits,
        }
        failures += [f"no {what}" for what, n in happened.items() if n == 0]
        # Whatever else went wrong, the server is alive and stops cleanly.
        if self.server.health_check("") != harness.SERVING:
            failures.append("liveness is not SERVING")
        try:
            self.server.stop()
        except harness.ServerError as e:
            failures.append(str(e).splitlines()[0])
        if failures != [failures[0], "none"]:
            # The server logs each failed request once, with its id.
            ids = set(re.findall(r"\b(c\d+-\d+(?:-meanwhile|-\d+)?) ", "\n".join(ledger.problems)))
            odd = [c for c in ("UNKNOWN", "INTERNAL", "ABORTED", "FAILED_PRECONDITION")
                   if c in "\n".join(failures)]
            logged = [line for line in self.server.log().splitlines()
                      if any(f"request_id={i})" in line for i in ids)
                      or any(f"code={c}" in line for c in odd)]
            self.fail("\n".join(failures + ["the server's log of those requests:"] + logged[:40]))


if __name__ == "__main__":
    unittest.main()
