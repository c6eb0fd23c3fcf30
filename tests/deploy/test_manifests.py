"""The Kubernetes manifests agree with the binary, for every overlay with every
set of components: every flag they pass is one `bertserve --help` documents
(with $(VAR) references expanded as the kubelet does), every port they name is
one the server really listens on with the ConfigMap's config and the cpu
overlay's arguments, the probes ask health services (gRPC) or endpoints
(HTTP, with the tls component) the server really answers, the threads are the
ones the server reports, and the drain and memory settings fit. The
components that add arguments (management-token, tls) run for real too, with
their Secrets' files from a test CA laid out as the kubelet lays them out.
(test_kustomize.py checks the layout itself.)"""

import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
import kustomize_renders as kr  # noqa: E402

ROOT = harness.require_env("BERTSERVE_SOURCE_DIR")


def pbtxt_fields(text):
    """{field: value} of a flat protobuf text message (the server config)."""
    fields = {}
    for line in text.splitlines():
        m = re.match(r'^\s*([a-z_]+)\s*:\s*"?([^"]*)"?\s*$', line)
        if m:
            fields[m.group(1)] = m.group(2)
    return fields


def port_of(address):
    return int(address.rsplit(":", 1)[1])


# The metrics port's HTTP endpoint that answers as each gRPC health service
# does: the tls component's probes ask these instead.
HTTP_HEALTH = {"": "/healthz", "readiness": "/readyz"}


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_http_ok(port, path, timeout=harness.READY_TIMEOUT_S):
    """Polls an HTTP endpoint, as the kubelet's probe does, until 200."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        try:
            status = http_status(port, path)
        except OSError as e:
            status = e
        if status == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"{path} answered {status}, not 200, for {timeout:.0f}s")


def make_pki(directory):
    """A test CA, a server certificate for localhost and 127.0.0.1 and a
    client certificate, both signed by the CA: {file name: PEM text}."""
    def openssl(*args):
        proc = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=bertserve test CA")
    extensions = {
        "server": "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, ext in extensions.items():
        with open(os.path.join(directory, f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("req", "-new", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=bertserve test {name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    pki = {}
    for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key"):
        with open(os.path.join(directory, name)) as f:
            pki[name] = f.read()
    return pki


def kubelet_volume(directory, files, mode):
    """Writes {path: text} as the kubelet lays out a Secret or ConfigMap
    volume: the files in a timestamped directory, `..data` a symlink to it,
    and each file a symlink through `..data` (an update makes a new directory
    and swaps `..data`). The server reads every such file through symlinks."""
    stamp = "..2025_01_01_00_00_00.000000001"
    os.makedirs(os.path.join(directory, stamp))
    for path, text in files.items():
        target = os.path.join(directory, stamp, path)
        with open(target, "w") as f:
            f.write(text)
        os.chmod(target, mode)
    os.symlink(stamp, os.path.join(directory, "..data"))
    for path in files:
        os.symlink(os.path.join("..data", path), os.path.join(directory, path))


class ManifestsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        help_text = subprocess.run([harness.require_env("BERTSERVE_BIN"), "--help"], check=True,
                                   capture_output=True, text=True).stdout
        cls.flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
        cls.rendered = {kr.name(o, c): kr.render(o, c) for o, c in kr.combinations()}
        assert set(kr.OVERLAYS) <= set(cls.rendered)

    def parts(self, combination):
        objects = self.rendered[combination]
        deployment = objects[("Deployment", "bertserve")]
        container = kr.server_container(objects)
        config = pbtxt_fields(objects[("ConfigMap", "bertserve-config")]["data"]["bertserve.pbtxt"])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        return objects, deployment, container, config, ports

    def args(self, container):
        """The container's arguments as the process gets them."""
        values = kr.env_values(container)
        return [kr.expand(a, values) for a in container["args"]]

    def test_every_flag_is_one_the_binary_has(self):
        for combination in self.rendered:
            _, _, container, _, _ = self.parts(combination)
            for arg in self.args(container):
                flag = arg.split("=", 1)[0]
                self.assertIn(flag, self.flags, f"{combination}: {arg} is not in bertserve --help")

    def arg_components(self):
        """The components that change the server container's arguments."""
        base = kr.server_container(self.rendered["cpu"])["args"]
        return tuple(c for c in kr.COMPONENTS
                     if kr.server_container(self.rendered[kr.name("cpu", (c,))])["args"] != base)

    def test_config_ports_match_container_ports_and_probes(self):
        for combination in self.rendered:
            _, _, container, config, ports = self.parts(combination)
            self.assertEqual(ports["grpc"], port_of(config["listen"]), combination)
            self.assertEqual(ports["metrics"], port_of(config["metrics_listen"]), combination)
            for probe, service in (("livenessProbe", harness_liveness()),
                                   ("readinessProbe", harness_readiness()),
                                   ("startupProbe", harness_readiness())):
                where = f"{combination}: {probe}"
                handler = container[probe]
                if "grpc" in handler:
                    self.assertEqual(handler["grpc"]["port"], ports["grpc"], where)
                    self.assertEqual(handler["grpc"].get("service", ""), service, where)
                else:
                    http = handler["httpGet"]
                    self.assertEqual(kr.container_port(container, http["port"]), ports["metrics"],
                                     where)
                    self.assertEqual(http["path"], HTTP_HEALTH[service], where)

    def test_services_and_monitor_point_at_real_ports(self):
        monitors = 0
        for overlay in self.rendered:
            objects, deployment, _, _, ports = self.parts(overlay)
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            services = [o for (kind, _), o in objects.items() if kind == "Service"]
            self.assertEqual(len(services), 2)
            for service in services:
                for key, value in service["spec"]["selector"].items():
                    self.assertEqual(pod_labels.get(key), value, service["metadata"]["name"])
                for port in service["spec"]["ports"]:
                    self.assertIn(port["targetPort"], ports)
                    self.assertEqual(port["port"], ports[port["targetPort"]])
            monitor = objects.get(("ServiceMonitor", "bertserve"))
            if monitor is None:
                continue
            monitors += 1
            main = objects[("Service", "bertserve")]
            names = {p["name"]: p["targetPort"] for p in main["spec"]["ports"]}
            self.assertEqual(names[monitor["spec"]["endpoints"][0]["port"]], "metrics")
            for key, value in monitor["spec"]["selector"]["matchLabels"].items():
                self.assertEqual(main["metadata"]["labels"].get(key), value)
        self.assertGreater(monitors, 0)

    def test_drain_and_memory_fit(self):
        for overlay in self.rendered:
            _, deployment, container, config, _ = self.parts(overlay)
            pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
            grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            self.assertGreaterEqual(grace, float(config["drain_timeout_seconds"]) + pre_stop + 5)
            limit = kr.byte_size(container["resources"]["limits"]["memory"])
            self.assertGreaterEqual(limit, kr.byte_size(config["host_budget"]) + (2 << 30), overlay)
            sc = container["securityContext"]
            self.assertTrue(sc["readOnlyRootFilesystem"])
            self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
            self.assertTrue(deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"])

    def test_overlay_devices(self):
        for combination in self.rendered:
            _, _, container, _, _ = self.parts(combination)
            limits = container["resources"]["limits"]
            if combination.split("+")[0] == "gpu":
                self.assertIn("--device=cuda:0", container["args"], combination)
                self.assertEqual(limits["nvidia.com/gpu"], "1", combination)
            else:
                self.assertIn("--device=cpu", container["args"], combination)
                self.assertNotIn("nvidia.com/gpu", limits, combination)

    def test_images_match_the_manifests(self):
        _, deployment, _, _, ports = self.parts("cpu")
        uid = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
            with open(os.path.join(ROOT, "docker", name)) as f:
                text = f.read()
            final = text[text.rindex("\nFROM "):]  # the runtime stage
            exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", final, re.M)
                       for p in line.split()}
            self.assertEqual(exposed, set(ports.values()), name)
            self.assertIn(f"USER {uid}:", final, name)
            self.assertIn('ENTRYPOINT ["/usr/local/bin/bertserve"]', final, name)
            for flag in re.findall(r'"(--[a-z-]+)=', re.search(r"^CMD (.+)$", final, re.M).group(1)):
                self.assertIn(flag, self.flags, name)

    def start_on_manifest_ports(self, args, ports):
        """Starts the test models under `args` (a manifest's arguments) and
        checks it listens on the manifest's container ports."""
        server = ManifestServer(args + ["--model-repository", harness.models_dir(),
                                        "--load", "tt-tuple"])
        server.start()
        try:
            self.assertEqual(server.grpc_port, ports["grpc"])
            self.assertEqual(server.metrics_port, ports["metrics"])
        except AssertionError:
            server.kill()
            raise
        return server

    def test_server_listens_where_the_manifests_say(self):
        """The cpu overlay's args (env references expanded) and ConfigMap, run
        for real (the model repository path swapped for the test models). The
        components change neither but for the arguments of management-token
        and tls (run in test_secret_components_run), so this run and that
        one stand for every cpu combination."""
        _, _, container, config, ports = self.parts("cpu")
        arg_components = self.arg_components()
        self.assertEqual(set(arg_components), {"management-token", "tls"})
        for combination in self.rendered:
            overlay, *components = combination.split("+")
            if overlay != "cpu":
                continue
            _, _, other, other_config, _ = self.parts(combination)
            _, _, same, _, _ = self.parts(
                kr.name("cpu", tuple(c for c in arg_components if c in components)))
            self.assertEqual((other["args"], other.get("env"), other_config),
                             (same["args"], container.get("env"), config), combination)
        cpus = math.ceil(kr.cpu_cores(container["resources"]["requests"]["cpu"]))
        with tempfile.TemporaryDirectory() as tmp:
            config_path = os.path.join(tmp, "bertserve.pbtxt")
            with open(config_path, "w") as f:
                f.write(self.rendered["cpu"][("ConfigMap", "bertserve-config")]["data"][
                    "bertserve.pbtxt"])
            args = [a.replace("/etc/bertserve/bertserve.pbtxt", config_path)
                    for a in self.args(container)]
            server = self.start_on_manifest_ports(args, ports)
            try:
                server.wait_ready()
                self.assertEqual(server.health_check(harness_liveness()), 1)  # SERVING
                self.assertEqual(server.health_check(harness_readiness()), 1)
                body = harness.scrape_metrics(ports["metrics"])
                self.assertIn("bertserve_ready 1", body)
                for path in HTTP_HEALTH.values():
                    self.assertEqual(http_status(ports["metrics"], path), 200, path)
                # The pod's CPU request, not this machine's cores.
                self.assertIn(f"{cpus} worker threads, {cpus} intra-op threads", server.log())
            finally:
                server.stop()

    def test_secret_components_run(self):
        """The cpu overlay with the components that add arguments
        (management-token and tls), run for real: every ConfigMap and Secret
        volume of the server container is laid out as the kubelet does
        (symlinks through ..data, the volume's mode), the Secrets holding a
        fresh token and the certificates of a test CA, and the arguments
        point into those directories. Then the HTTP probes the tls component
        uses turn 200, gRPC answers over mutual TLS with a client certificate
        of the CA but not without one nor in plaintext, and Models.Load is
        refused without the Secret's token and served with it."""
        combination = kr.name("cpu", self.arg_components())
        objects, _, container, _, ports = self.parts(combination)
        volumes = {v["name"]: v for v in kr.pod_spec(objects)["volumes"]}
        with tempfile.TemporaryDirectory() as tmp:
            pki = make_pki(tmp)
            token = secrets.token_hex(32)  # as `openssl rand -hex 32`, no newline
            user_secrets = {
                "bertserve-management-token": {"token": token},
                "bertserve-tls": {"tls.crt": pki["server.crt"], "tls.key": pki["server.key"],
                                  "ca.crt": pki["ca.crt"]},
            }
            self.assertEqual(set(user_secrets), set(kr.USER_SECRETS))
            args = self.args(container)
            for mount in container["volumeMounts"]:
                volume = volumes[mount["name"]]
                sources = kr.volume_sources(volume)
                if not sources:
                    continue
                files = {}
                for kind, name, items in sources:
                    data = (objects[(kind, name)]["data"] if (kind, name) in objects
                            else user_secrets[name])
                    for item in items or [{"key": k, "path": k} for k in data]:
                        files[item["path"]] = data[item["key"]]
                source = next(volume[k] for k in ("secret", "configMap", "projected")
                              if k in volume)
                local = os.path.join(tmp, "volumes", mount["name"])
                kubelet_volume(local, files, source.get("defaultMode", 0o644))
                prefix = mount["mountPath"].rstrip("/") + "/"
                args = [a.replace("=" + prefix, "=" + local + "/", 1) for a in args]
                self.assertFalse([a for a in args if "=" + prefix in a], combination)
            server = self.start_on_manifest_ports(args, ports)
            try:
                # The kubelet's probes, as the tls component asks them.
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    http = container[probe]["httpGet"]
                    wait_http_ok(kr.container_port(container, http["port"]), http["path"])

                target = f"127.0.0.1:{ports['grpc']}"
                options = [("grpc.ssl_target_name_override", "localhost")]
                mutual = grpc.ssl_channel_credentials(
                    root_certificates=pki["ca.crt"].encode(),
                    private_key=pki["client.key"].encode(),
                    certificate_chain=pki["client.crt"].encode())
                with grpc.secure_channel(target, mutual, options) as channel:
                    health = harness.Stub(
                        channel, harness.health_pb2.DESCRIPTOR.services_by_name["Health"])
                    models = harness.Stub(
                        channel, harness.models_pb2.DESCRIPTOR.services_by_name["Models"])
                    request = harness.health_pb2.HealthCheckRequest(service=harness_readiness())
                    self.assertEqual(health.Check(request).status, harness.SERVING)
                    load = harness.models_pb2.LoadModelRequest(name="tt-tuple")
                    with self.assertRaises(grpc.RpcError) as refused:
                        models.Load(load)
                    self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
                    status = models.Load(load, metadata=[("authorization", f"Bearer {token}")])
                    self.assertEqual(harness.state_name(status.state), "READY")

                request = harness.health_pb2.HealthCheckRequest(service="")
                server_only = grpc.ssl_channel_credentials(root_certificates=pki["ca.crt"].encode())
                with grpc.secure_channel(target, server_only, options) as channel:
                    health = harness.Stub(
                        channel, harness.health_pb2.DESCRIPTOR.services_by_name["Health"])
                    with self.assertRaises(grpc.RpcError, msg="no client certificate"):
                        health.Check(request, timeout=10)
                with grpc.insecure_channel(target) as channel:
                    health = harness.Stub(
                        channel, harness.health_pb2.DESCRIPTOR.services_by_name["Health"])
                    with self.assertRaises(grpc.RpcError, msg="plaintext"):
                        health.Check(request, timeout=10)
            finally:
                server.stop()


def harness_liveness():
    return ""


def harness_readiness():
    return "readiness"


class ManifestServer(harness.Server):
    """The server with exactly the given arguments (no test listen overrides,
    no token file of the harness's own)."""

    def __init__(self, args):
        super().__init__(model_repository="", management_token=False)
        self.args = args

    def command(self):
        return [harness.require_env("BERTSERVE_BIN")] + self.args


if __name__ == "__main__":
    unittest.main()
