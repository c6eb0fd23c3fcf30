"""The kustomize layout of deploy/k8s holds for every overlay with every set of
components: the overlays alone apply on a bare cluster (built-in kinds only),
each component adds exactly its objects, GPU rollouts never ask for a spare
GPU, the threads follow the pod's CPU request, and the monitoring objects
carry the alert rules and dashboard files of deploy/prometheus and
deploy/grafana unchanged. (test_manifests.py checks the same renders against
the binary.)"""

import math
import os
import re
import subprocess
import tempfile
import unittest

import yaml

import kustomize_renders as kr

# Groups served by every API server; any other group with a dot is a
# CustomResourceDefinition's, which a bare cluster lacks.
BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}

BARE = {("ConfigMap", "bertserve-config"), ("Deployment", "bertserve"),
        ("Service", "bertserve"), ("Service", "bertserve-headless"),
        ("PersistentVolumeClaim", "bertserve-models"), ("PodDisruptionBudget", "bertserve")}
ADDS = {
    "monitoring": {("ServiceMonitor", "bertserve"), ("PrometheusRule", "bertserve"),
                   ("ConfigMap", "bertserve-grafana-dashboard")},
    "autoscaling": {("HorizontalPodAutoscaler", "bertserve")},
    "models-emptydir": set(),
}
REMOVES = {"models-emptydir": {("PersistentVolumeClaim", "bertserve-models")}}

GRAFANA_JSON = os.path.join(kr.ROOT, "deploy", "grafana", "bertserve.json")


def group(api_version):
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def is_custom_resource(obj):
    g = group(obj["apiVersion"])
    return g not in BUILT_IN_GROUPS and not g.endswith(".k8s.io")


def read(path):
    with open(path) as f:
        return f.read()


class KustomizeTest(unittest.TestCase):

    def each(self, *, having=None):
        """(label, objects, components) of every combination (with the
        component `having`, if given); fails when there is none."""
        combos = [(o, c) for o, c in kr.combinations() if having is None or having in c]
        self.assertTrue(combos, f"no combination has {having}")
        for overlay, components in combos:
            yield kr.name(overlay, components), kr.render(overlay, components), components

    def test_layout(self):
        self.assertEqual(kr.OVERLAYS, ["cpu", "gpu"])
        self.assertEqual(kr.COMPONENTS, sorted(ADDS))
        for c in kr.COMPONENTS:
            k = yaml.safe_load(read(os.path.join(kr.K8S, "components", c, "kustomization.yaml")))
            self.assertEqual(k["kind"], "Component", c)
        for o in kr.OVERLAYS:
            k = yaml.safe_load(read(os.path.join(kr.K8S, "overlays", o, "kustomization.yaml")))
            self.assertEqual(k["kind"], "Kustomization", o)
            self.assertNotIn("components", k, f"overlays/{o} must stay bare")
        self.assertEqual(len(kr.combinations()), len(kr.OVERLAYS) << len(kr.COMPONENTS))

    def test_bare_overlays_apply_on_a_bare_cluster(self):
        for overlay in kr.OVERLAYS:
            objects = kr.render(overlay)
            for (kind, name), obj in objects.items():
                self.assertFalse(is_custom_resource(obj),
                                 f"{overlay}: {kind}/{name} ({obj['apiVersion']}) needs a CRD")
            # An HPA on a custom metric needs prometheus-adapter: not bare either.
            self.assertEqual(set(objects), BARE, overlay)

    def test_each_component_adds_exactly_its_objects(self):
        for label, objects, components in self.each():
            expected = set(BARE)
            for c in components:
                expected |= ADDS[c]
            for c in components:
                expected -= REMOVES.get(c, set())
            self.assertEqual(set(objects), expected, label)
            custom = {k for k, o in objects.items() if is_custom_resource(o)}
            self.assertEqual(bool(custom), "monitoring" in components, f"{label}: {custom}")

    def test_every_object_is_labelled(self):
        for label, objects, _ in self.each():
            for key, obj in objects.items():
                self.assertEqual(obj["metadata"].get("labels", {}).get("app.kubernetes.io/name"),
                                 "bertserve", f"{label}: {key}")

    def test_prometheus_rule_is_the_rules_file(self):
        rules = yaml.safe_load(read(os.path.join(kr.ROOT, "deploy", "prometheus",
                                                 "bertserve-rules.yaml")))
        for label, objects, _ in self.each(having="monitoring"):
            rule = objects[("PrometheusRule", "bertserve")]
            self.assertEqual(rule["spec"]["groups"], rules["groups"], label)

    def test_monitoring_release_label_is_documented(self):
        readme = read(os.path.join(kr.ROOT, "README.md"))
        for label, objects, _ in self.each(having="monitoring"):
            monitor = objects[("ServiceMonitor", "bertserve")]["metadata"]["labels"]
            rule = objects[("PrometheusRule", "bertserve")]["metadata"]["labels"]
            self.assertIn("release", monitor, label)
            self.assertEqual(rule.get("release"), monitor["release"], label)
            self.assertTrue(f"release: {monitor['release']}" in readme,
                            "README does not document the ServiceMonitor's release label")

    def test_dashboard_configmap_carries_the_dashboard_json(self):
        dashboard = read(GRAFANA_JSON)
        copy = os.path.join(kr.K8S, "components", "monitoring", "bertserve.json")
        self.assertEqual(read(copy), dashboard,
                         f"{copy} differs from {GRAFANA_JSON}: run scripts/make_dashboard.py")
        for label, objects, _ in self.each(having="monitoring"):
            cm = objects[("ConfigMap", "bertserve-grafana-dashboard")]
            self.assertEqual(cm["metadata"]["labels"].get("grafana_dashboard"), "1", label)
            self.assertNotIn("binaryData", cm, label)
            self.assertEqual(cm["data"], {"bertserve.json": dashboard}, label)

    def test_gpu_rollouts_never_surge(self):
        gpu_combos = 0
        for label, objects, _ in self.each():
            deployment = objects[("Deployment", "bertserve")]
            pod = deployment["spec"]["template"]["spec"]
            if not any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
                       for c in pod["containers"]):
                continue
            gpu_combos += 1
            self.assertEqual(deployment["spec"].get("strategy"),
                             {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, label)
        self.assertEqual(gpu_combos, 1 << len(kr.COMPONENTS))

    def test_threads_follow_the_pod(self):
        for label, objects, _ in self.each():
            container = kr.server_container(objects)
            resources = container["resources"]
            values = kr.env_values(container)  # raises on a limit the pod does not set
            args = dict(kr.expand(a, values).split("=", 1) for a in container["args"]
                        if "=" in a)
            request = math.ceil(kr.cpu_cores(resources["requests"]["cpu"]))
            for flag in ("--intra-op-threads", "--worker-threads"):
                self.assertIn(flag, args, label)
                self.assertEqual(int(args[flag]), request, f"{label}: {flag}")
            if "cpu" in resources.get("limits", {}):
                self.assertLessEqual(request, math.ceil(kr.cpu_cores(resources["limits"]["cpu"])),
                                     label)

    def test_autoscaling_owns_the_replica_count(self):
        readme = read(os.path.join(kr.ROOT, "README.md"))
        for label, objects, components in self.each():
            deployment = objects[("Deployment", "bertserve")]
            if "autoscaling" not in components:
                self.assertEqual(deployment["spec"]["replicas"], 1, label)
                continue
            self.assertNotIn("replicas", deployment["spec"], label)
            hpa = objects[("HorizontalPodAutoscaler", "bertserve")]
            self.assertEqual(hpa["spec"]["scaleTargetRef"],
                             {"apiVersion": deployment["apiVersion"], "kind": "Deployment",
                              "name": deployment["metadata"]["name"]}, label)
            metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
            self.assertTrue(metric in readme,
                            f"README documents no prometheus-adapter rule for {metric}")

    def test_model_volume(self):
        for label, objects, components in self.each():
            pod = objects[("Deployment", "bertserve")]["spec"]["template"]["spec"]
            volume = next(v for v in pod["volumes"] if v["name"] == "models")
            fill = next(c for c in pod["initContainers"] if c["name"] == "fill-models")
            self.assertIn({"name": "models", "mountPath": "/models"}, fill["volumeMounts"], label)
            server_mount = next(m for m in kr.server_container(objects)["volumeMounts"]
                                if m["name"] == "models")
            self.assertTrue(server_mount["readOnly"], label)
            if "models-emptydir" in components:
                self.assertEqual(set(volume), {"name", "emptyDir"}, label)
                size = kr.byte_size(volume["emptyDir"]["sizeLimit"])
                requests = kr.server_container(objects)["resources"]["requests"]
                self.assertGreaterEqual(kr.byte_size(requests["ephemeral-storage"]), size, label)
            else:
                self.assertEqual(set(volume), {"name", "persistentVolumeClaim"}, label)
                pvc = objects[("PersistentVolumeClaim",
                               volume["persistentVolumeClaim"]["claimName"])]
                # Every replica mounts it, on any node.
                self.assertTrue(set(pvc["spec"]["accessModes"]) & {"ReadWriteMany", "ReadOnlyMany"},
                                label)

    def test_readme_example_renders(self):
        """The README's overlay of one's own, with its `../bertserve/` paths
        pointing at this checkout: it renders, with its components and the
        release label it sets."""
        readme = read(os.path.join(kr.ROOT, "README.md"))
        blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                  if "kind: Kustomization" in b]
        self.assertEqual(len(blocks), 1, "README shows no example overlay")
        example = yaml.safe_load(blocks[0])
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.relpath(kr.ROOT, tmp) + "/"
            text = blocks[0].replace("../bertserve/", prefix)
            with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
                f.write(text)
            out = subprocess.run(["kubectl", "kustomize", tmp], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out.stdout)}
        overlay = os.path.basename(example["resources"][0])
        components = tuple(sorted(os.path.basename(c) for c in example["components"]))
        self.assertEqual(set(objects), set(kr.render(overlay, components)))
        release = example["patches"][0]["patch"].rsplit("value:", 1)[1].strip()
        for kind in ("ServiceMonitor", "PrometheusRule"):
            self.assertEqual(objects[(kind, "bertserve")]["metadata"]["labels"]["release"],
                             release)


if __name__ == "__main__":
    unittest.main()
