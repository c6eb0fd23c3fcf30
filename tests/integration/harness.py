"""Shared helpers of the integration tests: protocol stubs, a real server process,
the CLI, and reference logits computed with PyTorch from the same model.pt.

Environment (set by CTest, see CMakeLists.txt):
  BERTSERVE_BIN         the server binary
  BERTSERVE_CLI         the bertserve-cli binary
  BERTSERVE_TEST_DATA   output of scripts/make-test-models.sh (models/, vocab.txt)
  BERTSERVE_SOURCE_DIR  the source tree (default: two levels above this file)
  PROTOC                protoc used for the Python message classes (default: protoc)

Run one file by hand with e.g.
  BERTSERVE_BIN=build/server/bertserve BERTSERVE_CLI=build/client/bertserve-cli \
  BERTSERVE_TEST_DATA=build/testdata /usr/bin/python3 -m unittest -v test_classify
from tests/integration.
"""

import atexit
import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc
from google.protobuf import json_format, symbol_database

SOURCE_DIR = os.environ.get("BERTSERVE_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(SOURCE_DIR, "proto")
PROTO_FILES = [
    "bertserve/v1/config.proto",
    "bertserve/v1/models.proto",
    "bertserve/v1/inference.proto",
    "grpc/health/v1/health.proto",
]

# Generous bounds: a 2-core CI machine may also be building or running other tests.
START_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
RPC_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------
# Protocol: message classes generated at import time, stubs built from the
# service descriptors.
# --------------------------------------------------------------------------

def _generate_messages():
    """Runs protoc --python_out into a temporary directory and imports the result.

    Python message classes only: python3-grpc-tools in Debian 12 bundles protoc
    3.5, which rejects proto3 `optional`, so the system protoc (3.21, matching
    python3-protobuf) is used and the gRPC stubs are built from the service
    descriptors instead of by grpc_python_plugin.
    """
    out = tempfile.mkdtemp(prefix="bertserve-pb-")
    atexit.register(shutil.rmtree, out, True)
    protoc = os.environ.get("PROTOC") or shutil.which("protoc") or "protoc"
    cmd = [protoc, "-I", PROTO_DIR, f"--python_out={out}"] + PROTO_FILES
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    sys.path.insert(0, out)
    modules = {
        "config": importlib.import_module("bertserve.v1.config_pb2"),
        "models": importlib.import_module("bertserve.v1.models_pb2"),
        "inference": importlib.import_module("bertserve.v1.inference_pb2"),
    }
    # grpc/health/v1/health_pb2.py cannot be imported as grpc.health.v1: the
    # `grpc` package (grpcio) shadows the generated directory. Load it by path.
    path = os.path.join(out, "grpc", "health", "v1", "health_pb2.py")
    spec = importlib.util.spec_from_file_location("bertserve_test_health_pb2", path)
    health = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(health)
    modules["health"] = health
    return modules


_PB = _generate_messages()
config_pb2 = _PB["config"]
models_pb2 = _PB["models"]
inference_pb2 = _PB["inference"]
health_pb2 = _PB["health"]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ModelState = models_pb2.ModelState


def state_name(value):
    return models_pb2.ModelState.Name(value)


class Stub:
    """A client stub for one service, built from its descriptor.

    Methods take the request (or an iterator of requests) and the usual grpc
    keyword arguments (timeout, metadata); a default timeout applies.
    """

    def __init__(self, channel, service_descriptor, metadata=None):
        db = symbol_database.Default()
        self.service = service_descriptor.full_name
        for method in service_descriptor.methods:
            path = f"/{service_descriptor.full_name}/{method.name}"
            req = db.GetSymbol(method.input_type.full_name)
            resp = db.GetSymbol(method.output_type.full_name)
            if method.client_streaming and method.server_streaming:
                make = channel.stream_stream
            elif method.client_streaming:
                make = channel.stream_unary
            elif method.server_streaming:
                make = channel.unary_stream
            else:
                make = channel.unary_unary
            callable_ = make(path, request_serializer=req.SerializeToString,
                             response_deserializer=resp.FromString)
            setattr(self, method.name, _with_defaults(callable_, metadata))


def _with_defaults(callable_, metadata):
    """The callable with a default timeout and, unless a call passes its own,
    default metadata (the management token of the harness's servers)."""
    def kw(kwargs):
        if metadata is not None and "metadata" not in kwargs:
            kwargs["metadata"] = metadata
        return kwargs
    def call(request, timeout=RPC_TIMEOUT_S, **kwargs):
        return callable_(request, timeout=timeout, **kw(kwargs))
    call.with_call = lambda request, timeout=RPC_TIMEOUT_S, **k: callable_.with_call(
        request, timeout=timeout, **kw(k))
    call.future = lambda request, timeout=RPC_TIMEOUT_S, **k: callable_.future(
        request, timeout=timeout, **kw(k))
    return call


def text_input(text, pair=""):
    """A TextInput; works whether the text fields are `string` or `bytes`."""
    msg = inference_pb2.TextInput()
    for name, value in (("text", text), ("text_pair", pair)):
        field = msg.DESCRIPTOR.fields_by_name[name]
        if field.type == field.TYPE_BYTES and isinstance(value, str):
            value = value.encode("utf-8")
        setattr(msg, name, value)
    return msg


def classify_request(model, texts, pairs=None, **kwargs):
    pairs = pairs or [""] * len(texts)
    return inference_pb2.ClassifyRequest(
        model=model, inputs=[text_input(t, p) for t, p in zip(texts, pairs)], **kwargs)


# --------------------------------------------------------------------------
# The server process.
# --------------------------------------------------------------------------

_GRPC_LISTEN_RE = re.compile(r"gRPC listening on (\S+):(\d+)")
_ADMIN_LISTEN_RE = re.compile(r"admin listener on (\S+):(\d+)")
_METRICS_LISTEN_RE = re.compile(r"metrics listening on (\S+):(\d+)")
_LIVE_SERVERS = set()


def _kill_leftovers():
    for server in list(_LIVE_SERVERS):
        server.kill()


atexit.register(_kill_leftovers)


def require_env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set; run through ctest "
                           "or see tests/integration/harness.py")
    return value


def test_data_dir():
    return require_env("BERTSERVE_TEST_DATA")


def models_dir():
    return os.path.join(test_data_dir(), "models")


class ServerError(AssertionError):
    pass


class Server:
    """A bertserve process on ephemeral ports, with its log captured.

    stdout and stderr are drained by threads into one buffer for the whole
    life of the process, so the pipes never fill.
    """

    def __init__(self, model_repository, load=None, extra_args=(), management_token=True,
                 admin=False):
        """management_token: the server gets a --management-token-file and
        the harness's stubs and CLI send its token on every call (False: no
        token anywhere, management stays closed). admin: also an
        --admin-listen on a free loopback port (admin_address)."""
        self.model_repository = model_repository
        # None: the server's default (every model); []: none at startup.
        self.load = None if load is None else list(load)
        self.extra_args = list(extra_args)
        self.token = None
        self.token_file = None
        if management_token:
            self.token = os.urandom(16).hex()
            fd, self.token_file = tempfile.mkstemp(prefix="bertserve-token-")
            atexit.register(os.unlink, self.token_file)
            with os.fdopen(fd, "w") as f:
                f.write(self.token + "\n")
        self.admin = admin
        self.admin_port = None
        self.proc = None
        self.grpc_port = None
        self.metrics_port = None
        self.channel = None
        self._lines = []
        self._cond = threading.Condition()
        self._eof = 0
        self._threads = []

    # --- lifecycle --------------------------------------------------------

    def command(self):
        cmd = [require_env("BERTSERVE_BIN"),
               "--model-repository", self.model_repository,
               "--listen", "127.0.0.1:0",
               "--metrics-listen", "127.0.0.1:0"]
        if self.load is not None:
            cmd += ["--load", ",".join(self.load) or "none"]
        if self.token_file:
            cmd += ["--management-token-file", self.token_file]
        if self.admin:
            cmd += ["--admin-listen", "127.0.0.1:0"]
        return cmd + self.extra_args

    def start(self, timeout=START_TIMEOUT_S):
        """Starts the process and waits for both listening lines in its log."""
        cmd = self.command()
        self._append(f"[harness] starting: {' '.join(cmd)}")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _LIVE_SERVERS.add(self)
        for stream, tag in ((self.proc.stderr, ""), (self.proc.stdout, "[stdout] ")):
            t = threading.Thread(target=self._drain, args=(stream, tag), daemon=True)
            t.start()
            self._threads.append(t)

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._scan_ports()
                if self.grpc_port and self.metrics_port and (self.admin_port or not self.admin):
                    break
                if self._eof == 2:
                    self.proc.wait()
                    raise ServerError(
                        f"server exited with code {self.proc.returncode} before listening\n"
                        + self.log_tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise ServerError(f"no listening lines within {timeout:.0f}s\n"
                                      + self.log_tail())
                self._cond.wait(left)
        self.channel = grpc.insecure_channel(self.address)
        metadata = self.auth_metadata()
        self.inference = Stub(self.channel, inference_pb2.DESCRIPTOR.services_by_name["Inference"],
                              metadata)
        self.models = Stub(self.channel, models_pb2.DESCRIPTOR.services_by_name["Models"],
                           metadata)
        self.health = Stub(self.channel, health_pb2.DESCRIPTOR.services_by_name["Health"])
        return self

    def auth_metadata(self, token=None):
        """The metadata that carries `token` (default: the server's management
        token), or None without one."""
        token = token or self.token
        return None if token is None else (("authorization", f"Bearer {token}"),)

    def stop(self, timeout=STOP_TIMEOUT_S, after_signal=None):
        """SIGTERM, wait, and require exit code 0. after_signal() runs right
        after the signal is sent."""
        if self.proc is None:
            return
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if after_signal is not None:
            after_signal()
        code, _ = self.wait_exit(timeout)
        if code != 0:
            raise ServerError(f"server exited with code {code} after SIGTERM\n" + self.log_tail())

    def wait_exit(self, timeout=STOP_TIMEOUT_S):
        """Waits for the process to exit (a signal already sent); returns its
        exit code and the seconds the wait took. Kills it and fails past
        `timeout`."""
        start = time.monotonic()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError(f"server did not exit within {timeout:.0f}s of the signal\n"
                              + self.log_tail())
        finally:
            _LIVE_SERVERS.discard(self)
        seconds = time.monotonic() - start
        for t in self._threads:
            t.join(10)
        return code, seconds

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _LIVE_SERVERS.discard(self)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # --- log --------------------------------------------------------------

    def _append(self, line):
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def _drain(self, stream, tag):
        for raw in iter(stream.readline, b""):
            self._append(tag + raw.decode("utf-8", "replace").rstrip("\n"))
        stream.close()
        with self._cond:
            self._eof += 1
            self._cond.notify_all()

    def _scan_ports(self):
        for line in self._lines:
            m = _GRPC_LISTEN_RE.search(line)
            if m and not self.grpc_port:
                self.grpc_port = int(m.group(2))
            m = _METRICS_LISTEN_RE.search(line)
            if m and not self.metrics_port:
                self.metrics_port = int(m.group(2))
            m = _ADMIN_LISTEN_RE.search(line)
            if m and not self.admin_port:
                self.admin_port = int(m.group(2))

    def log(self):
        with self._cond:
            return "\n".join(self._lines)

    def wait_for_log(self, predicate, what, timeout=RPC_TIMEOUT_S):
        """Waits until predicate(line) holds for a line of the log (which
        reaches us through a pipe, after the server wrote it); returns the
        lines that match."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [line for line in self._lines if predicate(line)]
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self._eof == 2:
                    raise ServerError(f"no log line {what} within {timeout:.0f}s\n"
                                      + self.log_tail())
                self._cond.wait(left)

    def log_tail(self, lines=200):
        with self._cond:
            tail = self._lines[-lines:]
        return "---- server log (last %d lines) ----\n%s\n---- end of server log ----" % (
            len(tail), "\n".join(tail))

    # --- client helpers ---------------------------------------------------

    @property
    def address(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def admin_address(self):
        return f"127.0.0.1:{self.admin_port}"

    def health_check(self, service):
        return self.health.Check(health_pb2.HealthCheckRequest(service=service)).status

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """Watches service "readiness" until SERVING (no polling)."""
        call = self.health.Watch(health_pb2.HealthCheckRequest(service="readiness"),
                                 timeout=timeout)
        seen = []
        try:
            for response in call:
                seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
                if response.status == SERVING:
                    return
        except grpc.RpcError as e:
            raise ServerError(f"Watch(readiness) failed: {e.code().name} {e.details()}; "
                              f"statuses seen {seen}\n" + self.log_tail())
        finally:
            call.cancel()
        raise ServerError(f"Watch(readiness) ended before SERVING; statuses seen {seen}\n"
                          + self.log_tail())

    def cli(self, *args, json_output=True, timeout=CLI_TIMEOUT_S):
        """Runs bertserve-cli against this server; returns the CompletedProcess."""
        cmd = [require_env("BERTSERVE_CLI"), "--server", self.address]
        if self.token_file:
            cmd += ["--token-file", self.token_file]
        if json_output:
            cmd.append("--json")
        cmd += list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def cli_json(self, message_class, *args):
        """Runs the CLI with --json; returns (parsed dict, message) or fails."""
        proc = self.cli(*args)
        if proc.returncode != 0:
            raise AssertionError(f"bertserve-cli {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        try:
            doc = json.loads(proc.stdout)
        except ValueError as e:
            raise AssertionError(f"bertserve-cli {' '.join(args)} printed no single JSON "
                                 f"document ({e}):\n{proc.stdout}")
        message = message_class()
        json_format.ParseDict(doc, message)  # rejects fields not in the protocol
        return doc, message


class ServerTestCase(unittest.TestCase):
    """Base class: prints the server log when a test of the class fails."""

    server = None

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > before and self.server is not None:
            sys.stderr.write(f"\n{self.id()} failed; {self.server.log_tail()}\n")
        return outcome

    def assertRpcError(self, codes, pattern, fn, *args, **kwargs):
        """Calls fn; requires a grpc.RpcError with a code in `codes` and details
        matching `pattern` (case-insensitive regex). Returns the error."""
        if isinstance(codes, grpc.StatusCode):
            codes = (codes,)
        try:
            fn(*args, **kwargs)
        except grpc.RpcError as e:
            self.assertIn(e.code(), codes,
                          f"expected {[c.name for c in codes]}, got {e.code().name}: {e.details()}")
            if pattern:
                self.assertRegex(e.details() or "", re.compile(pattern, re.IGNORECASE),
                                 f"the {e.code().name} message does not name the problem")
            return e
        self.fail(f"expected {[c.name for c in codes]}, the call succeeded")


def copy_models(root, names):
    """A model repository <root>/models holding copies of the test models
    `names` (to edit or break without touching the shared ones)."""
    repo = os.path.join(root, "models")
    for name in names:
        shutil.copytree(os.path.join(models_dir(), name), os.path.join(repo, name))
    return repo


def make_demo_repo(directory):
    """Runs scripts/make-demo-repo.sh into `directory` (the demo models, as
    scripts/demo.sh serves them); returns the model repository inside it."""
    proc = subprocess.run(
        [os.path.join(SOURCE_DIR, "scripts", "make-demo-repo.sh"), directory],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHON=sys.executable), timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"scripts/make-demo-repo.sh failed ({proc.returncode}):\n"
                             f"{proc.stdout}{proc.stderr}")
    return os.path.join(directory, "models")


def start_server(test_class, repository=None, load=None, extra_args=(), **server_args):
    """Starts a server for a TestCase class (call from setUpClass); it is
    stopped (SIGTERM, exit code 0 required) by the class cleanup.
    server_args go to Server (management_token, admin)."""
    server = Server(repository or models_dir(), load=load, extra_args=extra_args, **server_args)
    test_class.addClassCleanup(server.kill)
    server.start()
    test_class.server = server
    return server


class FifoModel:
    """Replaces <repo>/<name>/model.pt by a FIFO, standing in for storage that
    stalls: the server's read blocks until feed() writes the real bytes, or
    for good. release() (register it as a cleanup) lets whichever side is
    still blocked in open() go on."""

    def __init__(self, repo, name):
        self.path = os.path.join(repo, name, "model.pt")
        with open(self.path, "rb") as f:
            self.model_bytes = f.read()
        os.unlink(self.path)
        os.mkfifo(self.path)
        self.writer = None

    def feed(self):
        """Writes the model into the FIFO from a thread; returns the thread."""
        def write():
            try:
                with open(self.path, "wb") as f:  # blocks until the server opens it
                    f.write(self.model_bytes)
            except BrokenPipeError:
                pass  # the test is being torn down
        self.writer = threading.Thread(target=write, daemon=True)
        self.writer.start()
        return self.writer

    def release(self):
        if self.writer is not None and self.writer.is_alive():
            # A writer blocked in open() proceeds and fails with EPIPE.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
            self.writer.join(10)
            return
        try:
            # A reader (the server) blocked in open() proceeds and reads EOF.
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass  # nobody is reading


def rss_bytes(pid):
    """The resident set size of process `pid`, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# --------------------------------------------------------------------------
# Reference: the same model.pt run by PyTorch.
# --------------------------------------------------------------------------

class ReferenceModel:
    """Runs models/<name>/model.pt in fp32 with batch 1 and an all-ones mask."""

    def __init__(self, model_dir):
        import torch  # only the tests that need references pay for the import
        self.torch = torch
        torch.set_num_threads(1)
        self.path = os.path.join(model_dir, "model.pt")
        self.module = torch.jit.load(self.path, map_location="cpu")
        self.module.eval()
        self.arg_names = [a.name for a in self.module.forward.schema.arguments][1:]

    def logits(self, ids, type_ids=None):
        torch = self.torch
        ids_t = torch.tensor([list(ids)], dtype=torch.int64)
        feed = {"input_ids": ids_t, "attention_mask": torch.ones_like(ids_t)}
        if "token_type_ids" in self.arg_names:
            types = list(type_ids) if type_ids is not None else [0] * len(ids)
            feed["token_type_ids"] = torch.tensor([types], dtype=torch.int64)
        with torch.no_grad():
            out = self.module(**{k: feed[k] for k in self.arg_names})
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = out["logits"]
        return [float(x) for x in out[0].tolist()]

    def weight_bytes(self):
        total = sum(t.numel() * t.element_size() for _, t in self.module.named_parameters())
        return total + sum(t.numel() * t.element_size() for _, t in self.module.named_buffers())


def probabilities(logits):
    """What the server returns without raw_scores: softmax, sigmoid for one logit."""
    if len(logits) == 1:
        return [1.0 / (1.0 + math.exp(-logits[0]))]
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def read_vocab():
    with open(os.path.join(test_data_dir(), "vocab.txt"), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def scrape_metrics(port):
    """The text of one /metrics scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def metric_samples(body, name):
    """{labels-string: value} for every sample of metric `name` in a scrape."""
    values = {}
    for line in body.splitlines():
        m = re.match(r"^%s(\{[^}]*\})?\s+(\S+)$" % re.escape(name), line)
        if m:
            values[m.group(1) or ""] = float(m.group(2))
    return values


def scraped_samples(port, name):
    """metric_samples of a fresh scrape of the server on `port`."""
    return metric_samples(scrape_metrics(port), name)


# --------------------------------------------------------------------------
# The simulated device: waiting until the server has seen what a test did.
# --------------------------------------------------------------------------

DEVICE_WAIT_S = 60.0


def _wait_device(server, what, condition, timeout):
    """Polls Models.List until condition(device) holds; returns that device."""
    deadline = time.monotonic() + timeout
    while True:
        device = server.models.List(models_pb2.ListModelsRequest()).device
        if condition(device):
            return device
        if time.monotonic() > deadline:
            raise ServerError(f"the device never showed {what} within {timeout:.0f}s; last: "
                              f"{device}\n" + server.log_tail())
        time.sleep(0.005)


def wait_device_idle(server, timeout=DEVICE_WAIT_S):
    """Waits until the simulated device holds only resident weights: no batch's
    tensors are alive. A reply can reach the client a moment before the forward
    that produced it has freed its tensors, so a test that derives a squeeze
    from allocator_allocated_bytes right after a call would count them."""
    def idle(device):
        listing = server.models.List(models_pb2.ListModelsRequest())
        return device.allocator_allocated_bytes == sum(m.device_bytes for m in listing.models)
    return _wait_device(server, "only resident weights allocated", idle, timeout)


def set_foreign_memory(server, path, foreign_bytes, timeout=DEVICE_WAIT_S):
    """Writes the bytes "other processes" hold on the simulated device
    (--simulated-foreign-memory-file) and waits until the server has read them:
    it re-reads the file every few milliseconds, so a forward started right
    after the write could still run under the old value."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(foreign_bytes))
    os.replace(tmp, path)

    def seen(device):
        room = device.total_bytes - device.allocator_allocated_bytes
        if foreign_bytes >= room:
            return device.free_bytes == 0
        return room - device.free_bytes == foreign_bytes
    return _wait_device(server, f"{foreign_bytes} foreign bytes", seen, timeout)


def leave_free(server, path, free_bytes, timeout=DEVICE_WAIT_S):
    """Lets "other processes" take all of the simulated device but `free_bytes`
    beyond what the resident weights hold, once the device is idle."""
    device = wait_device_idle(server, timeout)
    return set_foreign_memory(
        server, path, device.total_bytes - device.allocator_allocated_bytes - free_bytes, timeout)
