"""The Kubernetes manifests agree with the binary: every flag they pass is one
`bertserve --help` documents, every port they name is one the server really
listens on with the ConfigMap's config, the probes ask health services the
server really answers, and the drain, memory and alert settings fit."""

import os
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

ROOT = harness.require_env("BERTSERVE_SOURCE_DIR")
OVERLAYS = sorted(os.listdir(os.path.join(ROOT, "deploy", "k8s", "overlays")))


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy", "k8s", "overlays",
                                                               overlay)],
                         check=True, capture_output=True, text=True).stdout
    objects = {}
    for obj in yaml.safe_load_all(out):
        objects[(obj["kind"], obj["metadata"]["name"])] = obj
    return objects


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


def byte_size(text):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?B?", text.replace("iB", "i"))
    return int(m.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[m.group(2)]


class ManifestsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        help_text = subprocess.run([harness.require_env("BERTSERVE_BIN"), "--help"], check=True,
                                   capture_output=True, text=True).stdout
        cls.flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
        cls.rendered = {o: render(o) for o in OVERLAYS}

    def parts(self, overlay):
        objects = self.rendered[overlay]
        deployment = objects[("Deployment", "bertserve")]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        config = pbtxt_fields(objects[("ConfigMap", "bertserve-config")]["data"]["bertserve.pbtxt"])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        return objects, deployment, container, config, ports

    def test_overlays_exist(self):
        self.assertEqual(OVERLAYS, ["cpu", "gpu"])

    def test_every_flag_is_one_the_binary_has(self):
        for overlay in OVERLAYS:
            _, _, container, _, _ = self.parts(overlay)
            for arg in container["args"]:
                flag = arg.split("=", 1)[0]
                self.assertIn(flag, self.flags, f"{overlay}: {arg} is not in bertserve --help")

    def test_config_ports_match_container_ports_and_probes(self):
        for overlay in OVERLAYS:
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
        for overlay in OVERLAYS:
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
            monitor = objects[("ServiceMonitor", "bertserve")]
            main = objects[("Service", "bertserve")]
            names = {p["name"]: p["targetPort"] for p in main["spec"]["ports"]}
            self.assertEqual(names[monitor["spec"]["endpoints"][0]["port"]], "metrics")
            for key, value in monitor["spec"]["selector"]["matchLabels"].items():
                self.assertEqual(main["metadata"]["labels"].get(key), value)

    def test_drain_memory_and_scaling_fit(self):
        for overlay in OVERLAYS:
            objects, deployment, container, config, _ = self.parts(overlay)
            pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
            grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            self.assertGreaterEqual(grace, float(config["drain_timeout_seconds"]) + pre_stop + 5)
            limit = byte_size(container["resources"]["limits"]["memory"])
            self.assertGreaterEqual(limit, byte_size(config["host_budget"]) + (2 << 30), overlay)
            sc = container["securityContext"]
            self.assertTrue(sc["readOnlyRootFilesystem"])
            self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
            self.assertTrue(deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"])
            hpa = objects[("HorizontalPodAutoscaler", "bertserve")]
            self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "bertserve")
            with open(os.path.join(ROOT, "README.md")) as f:
                readme = f.read()
            metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
            self.assertTrue(metric in readme, f"README documents no prometheus-adapter rule for {metric}")

    def test_overlay_devices(self):
        _, _, gpu, _, _ = self.parts("gpu")
        self.assertIn("--device=cuda:0", gpu["args"])
        self.assertEqual(gpu["resources"]["limits"]["nvidia.com/gpu"], "1")
        _, _, cpu, _, _ = self.parts("cpu")
        self.assertIn("--device=cpu", cpu["args"])
        self.assertNotIn("nvidia.com/gpu", cpu["resources"]["limits"])

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

    def test_prometheus_rule_is_the_rules_file(self):
        with open(os.path.join(ROOT, "deploy", "prometheus", "bertserve-rules.yaml")) as f:
            rules = yaml.safe_load(f)
        for overlay in OVERLAYS:
            rule = self.rendered[overlay][("PrometheusRule", "bertserve")]
            self.assertEqual(rule["spec"]["groups"], rules["groups"])

    def test_server_listens_where_the_manifests_say(self):
        """The cpu overlay's args and ConfigMap, run for real (the model
        repository path swapped for the test models)."""
        _, _, container, config, ports = self.parts("cpu")
        with tempfile.TemporaryDirectory() as tmp:
            config_path = os.path.join(tmp, "bertserve.pbtxt")
            with open(config_path, "w") as f:
                f.write(self.rendered["cpu"][("ConfigMap", "bertserve-config")]["data"][
                    "bertserve.pbtxt"])
            args = [a.replace("/etc/bertserve/bertserve.pbtxt", config_path)
                    for a in container["args"]]
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
