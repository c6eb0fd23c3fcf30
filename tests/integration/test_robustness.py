"""Faults from outside, through a real server: a model whose model.pt never
finishes reading (a FIFO nobody writes, standing in for a stalled network
volume) holds no management call, probe or shutdown; SIGTERM under heavy
load with open streams drains within its bound and leaves no accepted call
without an answer; bad numeric flags are refused."""

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import grpc

import harness
from harness import classify_request, copy_models, models_pb2

DRAIN_S = 1.0
# How long the tests wait for an exit they expect; the figures printed are
# what was measured.
EXIT_WAIT_S = 60.0


def edit_config(repo, name, old, new):
    """Replaces `old` (which must be there) by `new` in the model's config."""
    config = os.path.join(repo, name, "config.pbtxt")
    with open(config) as f:
        text = f.read()
    if old not in text:
        raise AssertionError(f"{config} has no {old!r}: {text}")
    with open(config, "w") as f:
        f.write(text.replace(old, new))


class StuckReadTest(harness.ServerTestCase):
    """No --load: every model is best-effort; `plain` never finishes reading."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bertserve-stuck-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.repo = copy_models(self.tmp, ["tt-tuple", "plain"])
        self.fifo = harness.FifoModel(self.repo, "plain")
        self.addCleanup(self.fifo.release)
        self.server = harness.Server(self.repo, extra_args=[
            "--startup-load-timeout", "2", "--drain-timeout", str(DRAIN_S)])
        self.addCleanup(self.server.kill)
        self.server.start()

    def wait_for_count(self, method, code, what, at_least=1):
        """Polls /metrics until requests_total{method, code} reaches
        `at_least` (a call cancelled before it was parsed has model "")."""
        deadline = time.monotonic() + 60
        while True:
            samples = harness.scraped_samples(self.server.metrics_port, "bertserve_requests_total")
            n = sum(v for k, v in samples.items() if method in k and code in k)
            if n >= at_least:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the server never counted {what}: {samples}")
            time.sleep(0.05)

    def test_a_stuck_read_holds_no_call_probe_or_shutdown(self):
        server = self.server
        # Readiness depends on the startup models only: past
        # --startup-load-timeout it turns SERVING while `plain` still reads.
        server.wait_ready()
        get = lambda name: server.models.Get(models_pb2.GetModelRequest(name=name), timeout=10)
        # Logged before readiness turns, but read through a pipe: wait for it.
        server.wait_for_log(lambda l: "still loading after --startup-load-timeout" in l,
                            "saying readiness stopped waiting")
        # Reads take turns, but one that stalls stops holding the others back
        # after a while: tt-tuple loads while plain's read is still stuck.
        deadline = time.monotonic() + 120
        while harness.state_name(get("tt-tuple").state) != "READY":
            self.assertLess(time.monotonic(), deadline, "tt-tuple never loaded\n"
                            + server.log_tail())
            time.sleep(0.1)
        self.assertEqual(harness.state_name(get("plain").state), "LOADING")

        # Two management calls on the stuck model answer at their deadlines...
        started = time.monotonic()
        for _ in range(2):
            self.assertRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "", server.models.Load,
                                models_pb2.LoadModelRequest(name="plain"), timeout=1)
        print(f"\ntwo Models.Load(plain) with 1 s deadlines answered in "
              f"{time.monotonic() - started:.2f} s")
        # ...and hold nothing: more of them in parallel, then everything else.
        futures = [server.models.Load.future(models_pb2.LoadModelRequest(name="plain"),
                                             timeout=30) for _ in range(8)]
        listing = server.models.List(models_pb2.ListModelsRequest(), timeout=10)
        self.assertCountEqual([m.name for m in listing.models], ["tt-tuple", "plain"])
        self.assertEqual(harness.state_name(get("tt-tuple").state), "READY")
        status = server.models.Load(models_pb2.LoadModelRequest(name="tt-tuple"), timeout=10)
        self.assertEqual(harness.state_name(status.state), "READY")
        reply = server.inference.Classify(classify_request("tt-tuple", ["still serving"]),
                                          timeout=30)
        self.assertEqual(len(reply.results), 1)
        # A request for the stuck model fails at its own deadline.
        self.assertRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "", server.inference.Classify,
                            classify_request("plain", ["hello"]), timeout=1)
        self.assertEqual(server.health_check("readiness"), harness.SERVING)
        for f in futures:
            f.cancel()
        # A cancelled call is finished on the server at once, not when the
        # read ends: the server counts it CANCELLED.
        pending = server.inference.Classify.future(classify_request("plain", ["x"]), timeout=600)
        # A call answered later on the same connection means the server has
        # this one (its frames came first); a cancel sent earlier could beat
        # the call itself to the server, which would then never see it.
        get("tt-tuple")
        pending.cancel()
        self.wait_for_count('method="Classify"', 'code="CANCELLED"', "a cancelled Classify")
        self.wait_for_count('method="Models.Load"', 'code="CANCELLED"', "cancelled loads", 8)

        # SIGTERM with the read still stuck: the process exits anyway, code 3.
        server.proc.send_signal(signal.SIGTERM)
        code, seconds = server.wait_exit(EXIT_WAIT_S)
        print(f"exit {code} {seconds:.2f} s after SIGTERM with a read stuck "
              f"(--drain-timeout {DRAIN_S})")
        self.assertEqual(code, 3, server.log_tail())
        self.assertIn("stuck in I/O", server.log())


class DrainTest(harness.ServerTestCase):
    """SIGTERM while 16 clients send 64-input requests and streams (bertserve.v1
    and the Open Inference Protocol's) are open."""

    CLIENTS = 16
    INPUTS = 64
    STREAMS = 2

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bertserve-drain-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        repo = copy_models(self.tmp, ["tt-tuple"])
        edit_config(repo, "tt-tuple", "max_client_batch_size: 8", "max_client_batch_size: 64")
        # Queue bounds above what the clients can have in flight, so that
        # every refusal counted below is the drain's.
        self.server = harness.Server(repo, load=["tt-tuple"], extra_args=[
            "--drain-timeout", str(DRAIN_S), "--max-queued-inputs-per-model", "65536",
            "--max-queued-inputs", "65536"])
        self.addCleanup(self.server.kill)
        self.server.start()
        self.server.wait_ready()

    def test_sigterm_under_load_drains_within_its_bound(self):
        server = self.server
        stop = threading.Event()
        outcomes = queue.Queue()  # (kind, code name) per finished call
        answered_before_signal = threading.Semaphore(0)
        texts = [" ".join(["serving"] * (5 + i % 40)) for i in range(self.INPUTS)]
        # A fresh channel per client: the harness' own channel closes on stop.
        channels = [grpc.insecure_channel(server.address) for _ in range(self.CLIENTS + 1)]
        self.addCleanup(lambda: [c.close() for c in channels])

        def unary_client(i):
            stub = harness.Stub(channels[i],
                                harness.inference_pb2.DESCRIPTOR.services_by_name["Inference"])
            while not stop.is_set():
                try:
                    stub.Classify(classify_request("tt-tuple", texts), timeout=60)
                    outcomes.put(("unary", "OK"))
                    answered_before_signal.release()
                except grpc.RpcError as e:
                    outcomes.put(("unary", e.code().name))
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        return  # the server is gone or refusing: stop this client

        stream_answers = [[] for _ in range(self.STREAMS)]
        stream_errors = []

        def stream_client(i):
            stub = harness.Stub(channels[-1],
                                harness.inference_pb2.DESCRIPTOR.services_by_name["Inference"])
            sent = []

            def requests():
                n = 0
                while not stop.is_set() and n < 100000:
                    rid = f"s{i}-{n}"
                    sent.append(rid)
                    yield classify_request("tt-tuple", texts[:4], request_id=rid)
                    n += 1
            try:
                for answer in stub.ClassifyStream(requests(), timeout=60):
                    stream_answers[i].append((answer.request_id, answer.error_code))
            except grpc.RpcError as e:
                stream_errors.append(e.code().name)

        # The Open Inference Protocol's stream drains the same way.
        v2_answers = []
        v2_answered = threading.Event()

        def v2_stream_client():
            import test_v2  # its stubs
            stub = test_v2.pb_grpc.GRPCInferenceServiceStub(channels[-1])

            def requests():
                n = 0
                while not stop.is_set() and n < 100000:
                    request = test_v2.text_request("tt-tuple", [(t, "") for t in texts[:4]])
                    request.id = f"v2-{n}"
                    yield request
                    n += 1
            try:
                for answer in stub.ModelStreamInfer(requests(), timeout=60):
                    v2_answers.append((answer.infer_response.id, answer.error_message))
                    v2_answered.set()
            except grpc.RpcError as e:
                stream_errors.append(e.code().name)

        threads = [threading.Thread(target=unary_client, args=(i,)) for i in range(self.CLIENTS)]
        threads += [threading.Thread(target=stream_client, args=(i,))
                    for i in range(self.STREAMS)]
        threads.append(threading.Thread(target=v2_stream_client))
        for t in threads:
            t.start()
        try:
            # Traffic flows: some answers are back before the signal.
            for _ in range(self.CLIENTS):
                self.assertTrue(answered_before_signal.acquire(timeout=120),
                                "no traffic answered before the signal")
            # The v2 stream too, which a busy machine may start last.
            self.assertTrue(v2_answered.wait(timeout=120),
                            "the v2 stream got no answer before the signal")
            server.proc.send_signal(signal.SIGTERM)
            code, seconds = server.wait_exit(EXIT_WAIT_S)
        finally:
            stop.set()
            for t in threads:
                t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "a client never got an answer")
        counts = {}
        while not outcomes.empty():
            kind, name = outcomes.get()
            counts[name] = counts.get(name, 0) + 1
        refused_in_stream = sum(1 for a in stream_answers for _, c in a
                                if c == grpc.StatusCode.UNAVAILABLE.value[0])
        print(f"\nexit {code} {seconds:.2f} s after SIGTERM (--drain-timeout {DRAIN_S}); "
              f"unary outcomes {counts}; stream answers "
              f"{[len(a) for a in stream_answers]}, {refused_in_stream} refused UNAVAILABLE "
              f"while draining; streams ended {stream_errors or 'OK'}")
        self.assertEqual(code, 0, server.log_tail())
        # Within the drain timeout plus a second (and some room for a busy
        # machine's scheduling; the figure above is the measurement).
        self.assertLess(seconds, DRAIN_S + 3.0)
        # Every call got an answer: none ran into its own 60 s deadline, and
        # the only failures are the drain's.
        self.assertNotIn("DEADLINE_EXCEEDED", counts)
        self.assertLessEqual(set(counts) - {"OK"}, {"UNAVAILABLE", "CANCELLED"}, counts)
        # In streams, once a message was refused, no later one was served.
        for answers in stream_answers:
            codes = [c for _, c in answers]
            if grpc.StatusCode.UNAVAILABLE.value[0] in codes:
                first = codes.index(grpc.StatusCode.UNAVAILABLE.value[0])
                self.assertEqual(set(codes[first:]), {grpc.StatusCode.UNAVAILABLE.value[0]})
            # Answers come in request order, each exactly once.
            ids = [rid for rid, _ in answers]
            self.assertEqual(len(ids), len(set(ids)))
        self.assertGreater(len(v2_answers), 0, "the v2 stream got no answer")
        print(f"v2 stream: {len(v2_answers)} answers, "
              f"{sum(1 for _, e in v2_answers if 'draining' in e)} refused while draining")
        self.assertEqual([rid for rid, _ in v2_answers],
                         [f"v2-{n}" for n in range(len(v2_answers))])
        errors = [e for _, e in v2_answers]
        refused = [i for i, e in enumerate(errors) if "draining" in e]
        if refused:
            self.assertTrue(all("draining" in e for e in errors[refused[0]:]), errors)
        self.assertLessEqual(set(errors[:refused[0]] if refused else errors), {""})
        self.assertIn("stopped", server.log())


class DrainProbeTest(harness.ServerTestCase):
    """While a drain waits for a call in flight, the probes on the metrics
    port say what Kubernetes needs: not ready (no new traffic), still alive
    (no kill of the drain)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bertserve-drain-probe-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        repo = copy_models(self.tmp, ["tt-tuple"])
        # A lone input waits 5 s for its batch to fill: a call that is in
        # flight when the signal comes, for as long as the test needs.
        edit_config(repo, "tt-tuple", "max_client_batch_size: 8",
                    "max_client_batch_size: 8 max_queue_delay_us: 5000000")
        self.server = harness.Server(repo, load=["tt-tuple"],
                                     extra_args=["--drain-timeout", "60"])
        self.addCleanup(self.server.kill)
        self.server.start()
        self.server.wait_ready()

    def probe(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.server.metrics_port}{path}",
                                        timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def call_in_flight(self):
        """A Classify the server holds: it returns once the server counts the
        call's input queued (a signal sent before that could find the server
        idle and let the drain end at once)."""
        call = self.server.inference.Classify.future(
            classify_request("tt-tuple", ["in flight"]), timeout=60)
        deadline = time.monotonic() + 30
        while not harness.scraped_samples(self.server.metrics_port, "bertserve_queue_depth"
                                          ).get('{model="tt-tuple"}', 0):
            self.assertLess(time.monotonic(), deadline, "the call never reached the queue")
            time.sleep(0.02)
        return call

    def test_a_draining_server_is_not_ready_but_alive(self):
        self.assertEqual((self.probe("/readyz"), self.probe("/healthz")), (200, 200))
        call = self.call_in_flight()
        self.server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.probe("/readyz") != 503:
            self.assertLess(time.monotonic(), deadline, "readiness never turned")
            time.sleep(0.02)
        # Draining, with the call still open: alive.
        self.assertFalse(call.done())
        self.assertEqual(self.probe("/healthz"), 200)
        self.assertEqual(len(call.result().results), 1)
        code, seconds = self.server.wait_exit(EXIT_WAIT_S)
        self.assertEqual(code, 0, self.server.log_tail())

    def test_a_second_signal_ends_the_drain_at_once(self):
        call = self.call_in_flight()
        self.server.proc.send_signal(signal.SIGTERM)
        # The drain has begun (its 60 s would outlast the test's patience).
        self.server.wait_for_log(lambda line: "draining (up to 60" in line, "the drain")
        self.server.proc.send_signal(signal.SIGINT)
        code, seconds = self.server.wait_exit(EXIT_WAIT_S)
        print(f"\nexit {code} {seconds:.2f} s after the second signal")
        self.assertEqual(code, 128 + signal.SIGINT, self.server.log_tail())
        self.assertIn("received SIGINT while draining; exiting now", self.server.log())
        self.assertFalse(call.done() and call.exception() is None, "the call was answered")


class FlagTest(unittest.TestCase):

    def run_server(self, *args):
        return subprocess.run([harness.require_env("BERTSERVE_BIN"), "--model-repository",
                               harness.models_dir(), "--listen", "127.0.0.1:0",
                               "--metrics-listen", "127.0.0.1:0", "--load", "none", *args],
                              capture_output=True, text=True, timeout=60)

    def test_negative_numbers_are_refused(self):
        for flag in ("--worker-threads", "--intra-op-threads", "--drain-timeout",
                     "--startup-load-timeout", "--max-grpc-message-bytes"):
            with self.subTest(flag=flag):
                proc = self.run_server(flag, "-1")
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn(flag, proc.stderr)
                self.assertIn("must be 0", proc.stderr)

    def test_every_usage_error_exits_2_naming_what_was_wrong(self):
        cases = [
            (["--max-queued-inputs", "-3"], "--max-queued-inputs: must be a whole number, 1 or more"),
            (["--max-queued-tokens-per-model", "0"], "--max-queued-tokens-per-model: must be"),
            (["--drain-timeout", "abc"], "--drain-timeout"),
            (["--worker-threads", "1.5"], "--worker-threads"),
            (["--no-such-flag"], "--no-such-flag"),
            (["stray"], "stray"),
            (["--log-format"], "--log-format"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                proc = self.run_server(*args)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn(message, proc.stderr)
        proc = subprocess.run([harness.require_env("BERTSERVE_BIN"), "--help"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("--max-queued-inputs", proc.stdout)


class SequenceLengthTest(harness.ServerTestCase):
    """A config asking for longer inputs than the model's position table."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-seqlen-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        repo = copy_models(cls.tmp, ["plain", "tt-tuple"])
        edit_config(repo, "plain", "max_sequence_length: 128", "max_sequence_length: 512")
        harness.start_server(cls, repository=repo, load=[])
        cls.server.wait_ready()

    def test_is_refused_at_load_naming_both_numbers(self):
        e = self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION,
                                r"max_sequence_length is 512 .* has 128 positions",
                                self.server.models.Load, models_pb2.LoadModelRequest(name="plain"))
        self.assertIn("position_embeddings", e.details())
        status = self.server.models.Get(models_pb2.GetModelRequest(name="plain"))
        self.assertEqual(harness.state_name(status.state), "FAILED")
        reply = self.server.inference.Classify(classify_request("tt-tuple", ["others serve"]))
        self.assertEqual(len(reply.results), 1)


class MessageSizeTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=["tt-tuple"],
                             extra_args=["--max-grpc-message-bytes", "4096"])
        cls.server.wait_ready()

    def test_a_request_over_the_limit_is_refused_and_others_serve(self):
        big = classify_request("tt-tuple", ["word " * 2000])
        self.assertGreater(big.ByteSize(), 4096)
        self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "", self.server.inference.Classify,
                            big)
        reply = self.server.inference.Classify(classify_request("tt-tuple", ["small"]))
        self.assertEqual(len(reply.results), 1)


if __name__ == "__main__":
    unittest.main()
