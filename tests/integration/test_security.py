"""Security over real gRPC: TLS and mutual TLS (with certificate rotation),
access control for model management and inference, the admin listener,
reflection off by default, the audit trail, ports in use or out of range, and
model directories or files that leave the repository.

Certificates are throwaway ones made with openssl for each test class.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc

import harness
from harness import inference_pb2, models_pb2

ROTATION_TIMEOUT_S = 120.0


def openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


class Pki:
    """A CA and certificates it signs, as PEM files in a directory."""

    def __init__(self, directory, name):
        self.dir = directory
        self.name = name
        self.ca_key = os.path.join(directory, f"{name}-ca.key")
        self.ca_cert = os.path.join(directory, f"{name}-ca.crt")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN={name} test CA", "-keyout", self.ca_key, "-out", self.ca_cert,
                cwd=directory)

    def issue(self, cn, server):
        """(cert, key) paths for `cn`; a server certificate names localhost and 127.0.0.1."""
        key = os.path.join(self.dir, f"{self.name}-{cn}.key")
        csr = os.path.join(self.dir, f"{self.name}-{cn}.csr")
        cert = os.path.join(self.dir, f"{self.name}-{cn}.crt")
        ext = os.path.join(self.dir, f"{self.name}-{cn}.ext")
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                        "extendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/O=bertserve-test/CN={cn}",
                "-keyout", key, "-out", csr, cwd=self.dir)
        openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert, cwd=self.dir)
        return cert, key


def read(path):
    with open(path, "rb") as f:
        return f.read()


def classify(channel, metadata=None, timeout=30):
    stub = harness.Stub(channel, inference_pb2.DESCRIPTOR.services_by_name["Inference"])
    return stub.Classify(harness.classify_request("tt-tuple", ["hello world"]),
                         timeout=timeout, metadata=metadata)


def secure_channel(address, ca, cert=None, key=None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None)
    return grpc.secure_channel(address, credentials)


def audit_events(server, condition):
    """The JSON audit events of the server's log for which condition(event)
    holds, once there is one (the log arrives through a pipe, after the
    answer the client already has)."""
    def match(line):
        if not line.startswith("{") or '"audit"' not in line:
            return False
        return condition(json.loads(line))
    return [json.loads(line) for line in
            server.wait_for_log(match, "with a matching audit event")]


def access_denied(server, method, code):
    """bertserve_access_denied_total{method, code} (0 when absent)."""
    samples = harness.scraped_samples(server.metrics_port, "bertserve_access_denied_total")
    return sum(value for labels, value in samples.items()
               if f'method="{method}"' in labels and f'code="{code}"' in labels)


class TlsTest(harness.ServerTestCase):
    """Mutual TLS: the Python client and the CLI with a client certificate get
    answers; plaintext, no certificate, or one from another CA get none; a
    rotated server certificate is served to new connections while an open
    one keeps working."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.pki = Pki(cls.tmp, "main")
        cls.other = Pki(cls.tmp, "other")
        server_cert, server_key = cls.pki.issue("server", server=True)
        # The server reads these paths; rotation replaces their contents.
        cls.cert = os.path.join(cls.tmp, "tls.crt")
        cls.key = os.path.join(cls.tmp, "tls.key")
        cls.client_ca = os.path.join(cls.tmp, "ca.crt")
        shutil.copy(server_cert, cls.cert)
        shutil.copy(server_key, cls.key)
        shutil.copy(cls.pki.ca_cert, cls.client_ca)
        cls.client_cert, cls.client_key = cls.pki.issue("client-one", server=False)
        cls.stranger_cert, cls.stranger_key = cls.other.issue("stranger", server=False)
        harness.start_server(cls, load=["tt-tuple"], extra_args=[
            "--tls-cert", cls.cert, "--tls-key", cls.key, "--tls-client-ca", cls.client_ca,
            "--log-format", "json"])
        channel = secure_channel(cls.server.address, cls.pki.ca_cert, cls.client_cert,
                                 cls.client_key)
        cls.addClassCleanup(channel.close)
        cls.channel = channel
        health = harness.Stub(channel, harness.health_pb2.DESCRIPTOR.services_by_name["Health"])
        call = health.Watch(harness.health_pb2.HealthCheckRequest(service="readiness"))
        for response in call:
            if response.status == harness.SERVING:
                break
        call.cancel()

    def test_1_mutual_tls_client_gets_answers(self):
        reply = classify(self.channel)
        self.assertEqual(len(reply.results), 1)

    def test_2_plaintext_and_missing_or_foreign_client_certificates_are_refused(self):
        attempts = {
            "plaintext": grpc.insecure_channel(self.server.address),
            "no client certificate": secure_channel(self.server.address, self.pki.ca_cert),
            "certificate of another CA": secure_channel(
                self.server.address, self.pki.ca_cert, self.stranger_cert, self.stranger_key),
        }
        for what, channel in attempts.items():
            with self.subTest(what), channel:
                with self.assertRaises(grpc.RpcError, msg=f"{what} got an answer") as caught:
                    classify(channel, timeout=10)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE,
                                 f"{what}: {caught.exception.details()}")

    def test_3_cli_over_mutual_tls(self):
        base = [harness.require_env("BERTSERVE_CLI"), "--server", self.server.address]
        ok = subprocess.run(base + ["--tls-ca", self.pki.ca_cert, "--tls-cert", self.client_cert,
                                    "--tls-key", self.client_key, "--json",
                                    "classify", "-m", "tt-tuple", "hello"],
                            capture_output=True, text=True, timeout=harness.CLI_TIMEOUT_S)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(len(json.loads(ok.stdout)["results"]), 1)
        # The same through the environment variables.
        env = dict(os.environ, BERTSERVE_SERVER=self.server.address,
                   BERTSERVE_TLS_CA=self.pki.ca_cert, BERTSERVE_TLS_CERT=self.client_cert,
                   BERTSERVE_TLS_KEY=self.client_key)
        ok = subprocess.run([harness.require_env("BERTSERVE_CLI"), "health"], env=env,
                            capture_output=True, text=True, timeout=harness.CLI_TIMEOUT_S)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        plain = subprocess.run(base + ["--timeout", "10", "classify", "-m", "tt-tuple", "hello"],
                               capture_output=True, text=True, timeout=harness.CLI_TIMEOUT_S)
        self.assertEqual(plain.returncode, 1, plain.stdout)
        self.assertIn("UNAVAILABLE", plain.stderr)

    def test_4_rotated_certificates_serve_new_connections_and_keep_open_ones(self):
        # The open connection: answered before and after the rotation.
        classify(self.channel)
        new_pki = Pki(self.tmp, "rotated")
        cert, key = new_pki.issue("server", server=True)
        # As a Secret update does: new files moved over the watched paths.
        for source, target in ((key, self.key), (cert, self.cert)):
            shutil.copy(source, target + ".next")
            os.replace(target + ".next", target)
        deadline = time.monotonic() + ROTATION_TIMEOUT_S
        while True:
            # A new connection that trusts only the new CA: refused until the
            # server serves the new certificate.
            with secure_channel(self.server.address, new_pki.ca_cert, self.client_cert,
                                self.client_key) as channel:
                try:
                    classify(channel, timeout=10)
                    break
                except grpc.RpcError as e:
                    if time.monotonic() > deadline:
                        self.fail(f"the rotated certificate was not served within "
                                  f"{ROTATION_TIMEOUT_S:.0f} s: {e.code().name} {e.details()}")
            time.sleep(0.5)  # polling the server's file watcher, which runs on its own clock
        classify(self.channel)

    def test_5_audit_names_the_client_certificate(self):
        metadata = (("authorization", f"Bearer {self.server.token}"),)
        models = harness.Stub(self.channel, models_pb2.DESCRIPTOR.services_by_name["Models"])
        models.Load(models_pb2.LoadModelRequest(name="tt-tuple"), metadata=metadata)
        loads = audit_events(self.server, lambda e: e.get("method") == "Models.Load" and
                             e.get("code") == "OK")
        self.assertIn("CN=client-one", loads[-1]["client_subject"])
        self.assertEqual(loads[-1]["model"], "tt-tuple")
        self.assertRegex(loads[-1]["peer"], r"127\.0\.0\.1")


class ServerTlsTest(harness.ServerTestCase):
    """TLS without client certificates: any client that trusts the CA gets
    answers, a plaintext one none."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.pki = Pki(cls.tmp, "server-only")
        cert, key = cls.pki.issue("server", server=True)
        harness.start_server(cls, load=["tt-tuple"], extra_args=["--tls-cert", cert,
                                                                 "--tls-key", key])

    def test_tls_clients_and_a_plaintext_one(self):
        self.assertIn("(TLS)", self.server.log())
        with secure_channel(self.server.address, self.pki.ca_cert) as channel:
            self.assertEqual(len(classify(channel, timeout=60).results), 1)
        proc = subprocess.run([harness.require_env("BERTSERVE_CLI"), "--server",
                               self.server.address, "--tls-ca", self.pki.ca_cert,
                               "--tls-server-name", "localhost", "--json",
                               "classify", "-m", "tt-tuple", "hello"],
                              capture_output=True, text=True, timeout=harness.CLI_TIMEOUT_S)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with grpc.insecure_channel(self.server.address) as channel:
            with self.assertRaises(grpc.RpcError) as caught:
                classify(channel, timeout=10)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)


class ManagementAccessTest(harness.ServerTestCase):
    """Without a token file management is closed; the admin listener serves
    it on loopback; a token file opens it to the right token only."""

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=["tt-tuple", "plain"], management_token=False,
                             admin=True, extra_args=["--log-format", "json"])
        cls.server.wait_ready()

    def cli(self, *args, server=None):
        return subprocess.run([harness.require_env("BERTSERVE_CLI"), "--server",
                               server or self.server.address, *args],
                              capture_output=True, text=True, timeout=harness.CLI_TIMEOUT_S)

    def test_1_unload_without_a_token_file_is_permission_denied(self):
        before = access_denied(self.server, "Models.Unload", "PERMISSION_DENIED")
        proc = self.cli("models", "unload", "plain")
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertIn("PERMISSION_DENIED", proc.stderr)
        self.assertIn("--management-token-file", proc.stderr)
        # Nothing changed, and the refusal is counted and audited.
        status = self.server.models.Get(models_pb2.GetModelRequest(name="plain"))
        self.assertEqual(harness.state_name(status.state), "READY")
        self.assertEqual(access_denied(self.server, "Models.Unload", "PERMISSION_DENIED"),
                         before + 1)
        audit_events(self.server, lambda e: e["method"] == "Models.Unload" and
                     e["model"] == "plain" and e["code"] == "PERMISSION_DENIED" and
                     e["listener"] == "grpc")
        # Inference and the read-only calls stay open.
        self.assertEqual(self.cli("models", "list").returncode, 0)
        self.assertEqual(self.cli("classify", "-m", "plain", "hi").returncode, 0)

    def test_2_the_admin_listener_serves_management_without_a_token(self):
        proc = self.cli("models", "unload", "plain", server=self.server.admin_address)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        proc = self.cli("models", "load", "plain", server=self.server.admin_address)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # It serves management, not inference.
        proc = self.cli("classify", "-m", "plain", "hi", server=self.server.admin_address)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("UNIMPLEMENTED", proc.stderr)
        # The refusal says where to go.
        self.assertIn("/bertserve.v1.Inference/Classify is not served on the admin listener",
                      proc.stderr)
        self.assertIn(f"call it on the gRPC listener (--listen {self.server.address})",
                      proc.stderr)

    def test_4_every_log_line_is_json_whatever_a_client_sends(self):
        # A model name that tries to start a line of its own, and text that
        # is not UTF-8 (protobuf's own complaint about it goes through the
        # server's log too).
        forged = 'x\n{"level":"info","message":"audit: forged"}'
        proc = self.cli("models", "unload", forged)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        with self.assertRaises(grpc.RpcError) as caught:
            self.raw_classify(b"\xff\xfe")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        audit_events(self.server, lambda e: e["method"] == "Models.Unload" and
                     e["model"] == forged and e["code"] == "PERMISSION_DENIED")
        self.server.wait_for_log(lambda line: '"library":"protobuf"' in line,
                                 "protobuf's complaint about the UTF-8, as JSON")
        for line in self.server.log().splitlines():
            if line.strip() and not line.startswith("[harness]"):  # the harness's own notes
                json.loads(line)  # raises on a line that is not one JSON object

    def raw_classify(self, text_bytes):
        """Classify with a text field of raw bytes (no Python client would
        send them): field 1 model, field 2 inputs { field 1 text }."""
        def field(number, payload):
            return bytes([number << 3 | 2, len(payload)]) + payload
        request = field(1, b"plain") + field(2, field(1, text_bytes))
        call = self.server.channel.unary_unary(
            "/bertserve.v1.Inference/Classify",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        return call(request, timeout=30)

    def test_3_reflection_is_off_by_default(self):
        call = self.server.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as caught:
            # list_services: "" (field 7)
            list(call(iter([b"\x3a\x00"]), timeout=10))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNIMPLEMENTED)


class TokenTest(harness.ServerTestCase):
    """A management token file, and an inference token file."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-tokens-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.inference_token = "inference-" + os.urandom(8).hex()
        cls.inference_file = os.path.join(cls.tmp, "inference-token")
        with open(cls.inference_file, "w") as f:
            f.write(cls.inference_token)
        cls.wrong_file = os.path.join(cls.tmp, "wrong-token")
        with open(cls.wrong_file, "w") as f:
            f.write("not-the-token\n")
        harness.start_server(cls, load=["tt-tuple", "plain"], extra_args=[
            "--inference-token-file", cls.inference_file, "--reflection"])
        cls.server.wait_ready()

    def cli(self, *args, token_file=None):
        cmd = [harness.require_env("BERTSERVE_CLI"), "--server", self.server.address]
        if token_file:
            cmd += ["--token-file", token_file]
        return subprocess.run(cmd + list(args), capture_output=True, text=True,
                              timeout=harness.CLI_TIMEOUT_S)

    def test_0_a_model_name_cannot_forge_a_log_line(self):
        forged = ("x\n[2026-12-07 16:07:00.000] [info] audit: Models.Unload of model "
                  "\"plain\" succeeded (event=audit, listener=admin, code=OK)")
        proc = self.cli("models", "load", forged)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertIn("UNAUTHENTICATED", proc.stderr)
        # The refusal's audit line holds the name, escaped, on one line.
        lines = self.server.wait_for_log(
            lambda line: "audit: Models.Load of model \"x\\n[2026-12-07" in line,
            "the audit line of the forged name")
        self.assertIn("code=UNAUTHENTICATED", lines[-1])
        for line in self.server.log().splitlines():
            self.assertFalse(line.startswith("[2026-12-07 16:07:00.000]"), line)

    def test_1_management_needs_the_right_token(self):
        before = access_denied(self.server, "Models.Unload", "UNAUTHENTICATED")
        for token_file in (None, self.wrong_file, self.inference_file):
            with self.subTest(token_file=token_file):
                proc = self.cli("models", "unload", "plain", token_file=token_file)
                self.assertEqual(proc.returncode, 1, proc.stdout)
                self.assertIn("UNAUTHENTICATED", proc.stderr)
        self.assertEqual(access_denied(self.server, "Models.Unload", "UNAUTHENTICATED"),
                         before + 3)
        proc = self.cli("models", "unload", "plain", token_file=self.server.token_file)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        env = dict(os.environ, BERTSERVE_TOKEN_FILE=self.server.token_file)
        proc = subprocess.run([harness.require_env("BERTSERVE_CLI"), "--server",
                               self.server.address, "models", "load", "plain"],
                              env=env, capture_output=True, text=True,
                              timeout=harness.CLI_TIMEOUT_S)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_2_inference_needs_a_token_too(self):
        request = harness.classify_request("tt-tuple", ["hello"])
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.inference.Classify(request, metadata=())
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("--inference-token-file", caught.exception.details())
        stream = self.server.inference.ClassifyStream(
            iter([inference_pb2.ClassifyRequest(model="tt-tuple", inputs=request.inputs)]),
            metadata=(("authorization", "Bearer wrong"),))
        with self.assertRaises(grpc.RpcError) as caught:
            list(stream)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        ok = self.server.inference.Classify(
            request, metadata=self.server.auth_metadata(self.inference_token))
        self.assertEqual(len(ok.results), 1)
        # List and Get follow the inference rule; health stays open.
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.models.List(models_pb2.ListModelsRequest(), metadata=())
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.cli("classify", "-m", "tt-tuple", "hi",
                                  token_file=self.inference_file).returncode, 0)
        self.assertEqual(self.server.health_check("readiness"), harness.SERVING)

    def test_3_reflection_when_asked(self):
        call = self.server.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        answers = list(call(iter([b"\x3a\x00"]), timeout=10))
        self.assertEqual(len(answers), 1)
        self.assertIn(b"bertserve.v1.Inference", answers[0])


class StartupRefusalTest(unittest.TestCase):
    """Configuration errors found before anything serves: exit code 2 and a
    message naming the problem."""

    def run_server(self, *args):
        cmd = [harness.require_env("BERTSERVE_BIN"), "--model-repository", harness.models_dir(),
               "--load", "none", *args]
        if "--metrics-listen" not in args:
            cmd += ["--metrics-listen", "127.0.0.1:0"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def test_a_port_in_use_is_an_error(self):
        server = harness.Server(harness.models_dir(), load=[])
        self.addCleanup(server.kill)
        server.start()
        proc = self.run_server("--listen", server.address)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("address in use", proc.stderr)
        # The first server still answers alone.
        self.assertEqual(server.health_check(""), harness.SERVING)
        proc = self.run_server("--listen", "127.0.0.1:0",
                               "--admin-listen", server.address)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("address in use", proc.stderr)
        server.stop()

    def test_bad_addresses_and_settings_are_refused(self):
        cases = [
            (["--listen", "127.0.0.1:99999"], r"--listen .*port must be a number from 1 to 65535"),
            (["--listen", "127.0.0.1:http"], r"--listen .*port must be a number"),
            (["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:70000"],
             r"--metrics-listen .*65535"),
            (["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:50052"],
             r"--admin-listen .*loopback"),
            (["--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.crt"],
             r"--tls-cert and --tls-key go together"),
            (["--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.crt", "--tls-key", "/x.key"],
             r"--tls-cert /nonexistent.crt"),
            (["--listen", "127.0.0.1:0", "--management-token-file", "/nonexistent-token"],
             r"--management-token-file /nonexistent-token"),
        ]
        for args, pattern in cases:
            with self.subTest(args=args):
                proc = self.run_server(*args)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertRegex(proc.stderr, pattern)


class ConfinementTest(harness.ServerTestCase):
    """A model directory or a file in it that leaves the repository through a
    symbolic link is refused, unless --follow-symlinks."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-confine-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.repo = os.path.join(cls.tmp, "repo")
        outside = os.path.join(cls.tmp, "outside")
        os.makedirs(cls.repo)
        shutil.copytree(os.path.join(harness.models_dir(), "tt-tuple"),
                        os.path.join(outside, "tt-tuple"))
        shutil.copytree(os.path.join(harness.models_dir(), "plain"),
                        os.path.join(cls.repo, "plain"))
        # A whole model directory linked from outside.
        os.symlink(os.path.join(outside, "tt-tuple"), os.path.join(cls.repo, "linked-dir"))
        # One file linked outside (the attack of a vocab.txt -> /etc/passwd).
        shutil.copytree(os.path.join(harness.models_dir(), "plain"),
                        os.path.join(cls.repo, "linked-vocab"))
        vocab = os.path.join(cls.repo, "linked-vocab", "vocab.txt")
        shutil.move(vocab, os.path.join(outside, "vocab.txt"))
        os.symlink(os.path.join(outside, "vocab.txt"), vocab)
        # A link that stays inside is fine (ConfigMap volumes are made of them).
        inner = os.path.join(cls.repo, "plain", "..data")
        os.makedirs(inner)
        shutil.move(os.path.join(cls.repo, "plain", "model.pt"), os.path.join(inner, "model.pt"))
        os.symlink("..data/model.pt", os.path.join(cls.repo, "plain", "model.pt"))

    def test_links_that_leave_the_repository(self):
        server = harness.Server(self.repo, load=[])
        self.addCleanup(server.kill)
        self.server = server
        server.start()
        server.wait_ready()
        for name in ("linked-dir", "linked-vocab"):
            with self.subTest(name):
                with self.assertRaises(grpc.RpcError) as caught:
                    server.models.Load(models_pb2.LoadModelRequest(name=name))
                # A failed load, as for any other broken model: the model is
                # FAILED with the reason, and the others serve.
                self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION,
                                 caught.exception.details())
                self.assertRegex(caught.exception.details(),
                                 r"outside the model repository.*--follow-symlinks")
        self.assertEqual(harness.state_name(
            server.models.Load(models_pb2.LoadModelRequest(name="plain")).state), "READY")
        server.stop()

        followed = harness.Server(self.repo, load=[], extra_args=["--follow-symlinks"])
        self.addCleanup(followed.kill)
        self.server = followed
        followed.start()
        for name in ("linked-dir", "linked-vocab"):
            with self.subTest(name, follow=True):
                status = followed.models.Load(models_pb2.LoadModelRequest(name=name))
                self.assertEqual(harness.state_name(status.state), "READY")
        followed.stop()


if __name__ == "__main__":
    unittest.main()
