"""The Kubernetes manifests agree with the binary, for every overlay with every
set of components: every flag they pass is one `bertserve --help` documents
(with $(VAR) references expanded as the kubelet does), every port they name is
one the server really listens on with the ConfigMap's config and the cpu
overlay's arguments, the probes ask health services the server really
answers, the threads are the ones the server reports, and the drain and
memory settings fit. (test_kustomize.py checks the layout itself.)"""

import math
import os
import re
import subprocess
import sys
import tempfile
import unittest

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

    def test_config_ports_match_container_ports_and_probes(self):
        for overlay in self.rendered:
            _, _, container, config, ports = self.parts(overlay)
            self.assertEqual(ports["grpc"], port_of(config["listen"]), overlay)
            self.assertEqual(ports["metrics"], port_of(config["metrics_listen"]), overlay)
            live = container["livenessProbe"]["grpc"]
            self.assertEqual(live["port"], ports["grpc"])
            self.assertEqual(live.get("service", ""), harness_liveness())
            for probe in ("readinessProbe", "startupProbe"):
                self.assertEqual(container[probe]["grpc"]["port"], ports["grpc"])
                self.assertEqual(container[probe]["grpc"]["service"], harness_readiness())

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

    def test_server_listens_where_the_manifests_say(self):
        """The cpu overlay's args (env references expanded) and ConfigMap, run
        for real (the model repository path swapped for the test models). The
        components change neither, so this run stands for every cpu
        combination."""
        _, _, container, config, ports = self.parts("cpu")
        for combination in self.rendered:
            if combination.split("+")[0] != "cpu":
                continue
            _, _, other, other_config, _ = self.parts(combination)
            self.assertEqual((other["args"], other.get("env"), other_config),
                             (container["args"], container.get("env"), config), combination)
        cpus = math.ceil(kr.cpu_cores(container["resources"]["requests"]["cpu"]))
        with tempfile.TemporaryDirectory() as tmp:
            config_path = os.path.join(tmp, "bertserve.pbtxt")
            with open(config_path, "w") as f:
                f.write(self.rendered["cpu"][("ConfigMap", "bertserve-config")]["data"][
                    "bertserve.pbtxt"])
            args = [a.replace("/etc/bertserve/bertserve.pbtxt", config_path)
                    for a in self.args(container)]
            server = ManifestServer(args + ["--model-repository", harness.models_dir(),
                                            "--load", "tt-tuple"])
            server.start()
            try:
                self.assertEqual(server.grpc_port, ports["grpc"])
                self.assertEqual(server.metrics_port, ports["metrics"])
                server.wait_ready()
                self.assertEqual(server.health_check(harness_liveness()), 1)  # SERVING
                self.assertEqual(server.health_check(harness_readiness()), 1)
                body = harness.scrape_metrics(ports["metrics"])
                self.assertIn("bertserve_ready 1", body)
                # The pod's CPU request, not this machine's cores.
                self.assertIn(f"{cpus} worker threads, {cpus} intra-op threads", server.log())
            finally:
                server.stop()


def harness_liveness():
    return ""


def harness_readiness():
    return "readiness"


class ManifestServer(harness.Server):
    """The server with exactly the given arguments (no test listen overrides)."""

    def __init__(self, args):
        super().__init__(model_repository="")
        self.args = args

    def command(self):
        return [harness.require_env("BERTSERVE_BIN")] + self.args


if __name__ == "__main__":
    unittest.main()
