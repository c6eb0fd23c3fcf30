"""The kustomize layout of deploy/k8s holds for every overlay with every set of
components: the overlays alone apply on a bare cluster (built-in kinds only),
each component adds exactly its objects, GPU rollouts never ask for a spare
GPU, the threads follow the pod's CPU request, the monitoring objects carry
the alert rules and dashboard files of deploy/prometheus and deploy/grafana
unchanged, the NetworkPolicy admits each container port from its clients, the
management-token and tls components add exactly their Secret volume, mount
and arguments (tls also swaps the gRPC probes for HTTP ones), every file an
argument names is one a volume provides and the server can read, and every
Secret or ConfigMap the pods read is rendered or documented as created by the
user. (test_manifests.py checks the same renders against the binary.)"""

import collections
import copy
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
        ("PersistentVolumeClaim", "bertserve-models"), ("PodDisruptionBudget", "bertserve"),
        ("NetworkPolicy", "bertserve")}
ADDS = {
    "monitoring": {("ServiceMonitor", "bertserve"), ("PrometheusRule", "bertserve"),
                   ("ConfigMap", "bertserve-grafana-dashboard")},
    "autoscaling": {("HorizontalPodAutoscaler", "bertserve")},
    "models-emptydir": set(),
    "management-token": set(),
    "tls": set(),
}
# What the components that mount a user-created Secret add to the pod: one
# volume of that Secret, one read-only mount of it in the server container,
# and these flags (each once). Nothing else changes, but for tls the probes.
SECRET_COMPONENTS = {
    "management-token": ("bertserve-management-token", {"--management-token-file"}),
    "tls": ("bertserve-tls", {"--tls-cert", "--tls-key", "--tls-client-ca"}),
}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# The HTTP endpoint of the metrics port that stands for each probe's gRPC
# health service: readiness for startup and readiness, liveness for liveness.
HTTP_PROBE_PATHS = {"startupProbe": "/readyz", "readinessProbe": "/readyz",
                    "livenessProbe": "/healthz"}
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

    def without(self, label, components, component):
        """The render of the same overlay and components less `component`."""
        return kr.render(label.split("+")[0], tuple(c for c in components if c != component))

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

    def test_network_policy_admits_each_port_from_its_clients(self):
        """In every render: the policy selects the Deployment's pods, governs
        ingress only, and has one rule per container port (by name or
        number; no rule for a port the container lacks): gRPC from every pod
        of the namespace, metrics from the monitoring namespace. The exact
        `from` also shows that kustomize's labels added nothing to it."""
        for label, objects, _ in self.each():
            policy = objects[("NetworkPolicy", "bertserve")]["spec"]
            deployment = objects[("Deployment", "bertserve")]
            self.assertEqual(policy["podSelector"],
                             {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}, label)
            self.assertEqual(policy["policyTypes"], ["Ingress"], label)
            container = kr.server_container(objects)
            names = {p["containerPort"]: p["name"] for p in container["ports"]}
            rules = {}
            for rule in policy["ingress"]:
                self.assertEqual(len(rule["ports"]), 1, f"{label}: {rule}")
                port = rule["ports"][0]
                self.assertEqual(port.get("protocol", "TCP"), "TCP", label)
                number = kr.container_port(container, port["port"])
                self.assertIsNotNone(number, f"{label}: the container has no port {port['port']}")
                self.assertNotIn(names[number], rules, f"{label}: two rules for {number}")
                rules[names[number]] = rule["from"]
            self.assertEqual(set(rules), set(names.values()), label)
            self.assertEqual(rules["grpc"], [{"podSelector": {}}], label)
            self.assertEqual(rules["metrics"], [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "monitoring"}}}], label)

    def test_secret_components_add_exactly_their_volume_mount_and_args(self):
        for component, (secret, flags) in SECRET_COMPONENTS.items():
            for label, objects, components in self.each(having=component):
                before = self.without(label, components, component)
                pod, pod_before = kr.pod_spec(objects), kr.pod_spec(before)
                added = [v for v in pod["volumes"] if v not in pod_before["volumes"]]
                self.assertEqual([v for v in pod_before["volumes"] if v not in pod["volumes"]], [],
                                 label)
                self.assertEqual(len(added), 1, f"{label}: {added}")
                volume = added[0]
                self.assertEqual([(kind, name) for kind, name, _ in kr.volume_sources(volume)],
                                 [("Secret", secret)], label)
                self.assertFalse(volume["secret"].get("optional", False), label)

                server, server_before = kr.server_container(objects), kr.server_container(before)
                mounts = [m for m in server["volumeMounts"]
                          if m not in server_before["volumeMounts"]]
                self.assertEqual(len(mounts), 1, f"{label}: {mounts}")
                self.assertEqual(mounts[0]["name"], volume["name"], label)
                self.assertTrue(mounts[0].get("readOnly"), label)
                # A subPath mount never sees the Secret change (renewed certificates).
                self.assertNotIn("subPath", mounts[0], label)

                args = collections.Counter(server["args"])
                args_before = collections.Counter(server_before["args"])
                self.assertEqual(args_before - args, collections.Counter(), label)
                new_args = list((args - args_before).elements())
                self.assertEqual(sorted(a.split("=", 1)[0] for a in new_args), sorted(flags),
                                 label)

                # Nothing else changes (the probes aside, for tls).
                def rest(objs):
                    objs = copy.deepcopy(objs)
                    spec = kr.pod_spec(objs)
                    del spec["volumes"]
                    container = kr.server_container(objs)
                    for key in ("volumeMounts", "args") + (PROBES if component == "tls" else ()):
                        container.pop(key, None)
                    return objs
                self.assertEqual(rest(objects), rest(before), label)

    def test_tls_leaves_no_grpc_probe(self):
        """kubelet gRPC probes speak plaintext only: once the gRPC port
        serves TLS, each probe asks the metrics port's HTTP endpoint for the
        same health service instead, with the same timings."""
        for label, objects, components in self.each():
            container = kr.server_container(objects)
            tls = any(a.startswith("--tls-cert=") for a in container["args"])
            self.assertEqual(tls, "tls" in components, label)
            for probe in PROBES:
                self.assertIn(probe, container, f"{label}: no {probe}")
                handler = container[probe]
                if not tls:
                    self.assertIn("grpc", handler, f"{label}: {probe}")
                    continue
                self.assertNotIn("grpc", handler, f"{label}: {probe}")
                http = handler.get("httpGet")
                self.assertIsNotNone(http, f"{label}: {probe} is not an HTTP probe")
                self.assertEqual(http["path"], HTTP_PROBE_PATHS[probe], f"{label}: {probe}")
                self.assertEqual(http.get("scheme", "HTTP"), "HTTP", f"{label}: {probe}")
                self.assertEqual(kr.container_port(container, http["port"]),
                                 kr.container_port(container, "metrics"), f"{label}: {probe}")
                before = kr.server_container(self.without(label, components, "tls"))[probe]
                self.assertEqual({k: v for k, v in handler.items() if k != "httpGet"},
                                 {k: v for k, v in before.items() if k != "grpc"},
                                 f"{label}: {probe} timings")

    def test_management_is_off_without_its_component(self):
        """Only the management-token component turns management on; no render
        opens the token-less admin listener beyond the pod (loopback or a unix
        socket)."""
        for label, objects, components in self.each():
            args = kr.server_container(objects)["args"]
            config = objects[("ConfigMap", "bertserve-config")]["data"]["bertserve.pbtxt"]
            self.assertNotIn("management_token_file", config, label)
            self.assertEqual(sum(a.startswith("--management-token-file=") for a in args),
                             int("management-token" in components), label)
            admin = [a.split("=", 1)[1] for a in args if a.startswith("--admin-listen=")]
            admin += re.findall(r'^\s*admin_listen\s*:\s*"([^"]*)"', config, re.M)
            for address in admin:
                self.assertRegex(address, r"^((127\.0\.0\.1|\[::1\]|localhost):\d+|unix:.+)$",
                                 label)

    def test_file_arguments_are_files_the_server_can_read(self):
        """Each argument naming an absolute path lies in a volume mounted in
        the server container; in a Secret or ConfigMap volume it is one of
        the volume's files, whose key the object has (rendered) or the
        component documents (user-created), with a mode that lets the
        non-root server read it (the kubelet writes such files owned by root,
        with the pod's fsGroup as group)."""
        for label, objects, _ in self.each():
            pod = kr.pod_spec(objects)
            container = kr.server_container(objects)
            uid = container.get("securityContext", {}).get(
                "runAsUser", pod["securityContext"].get("runAsUser"))
            self.assertNotIn(uid, (None, 0), label)
            fs_group = pod["securityContext"].get("fsGroup")
            volumes = {v["name"]: v for v in pod["volumes"]}
            for arg in container["args"]:
                value = arg.split("=", 1)[1] if "=" in arg else ""
                if not value.startswith("/"):
                    continue
                mount = max((m for m in container["volumeMounts"]
                             if value == m["mountPath"]
                             or value.startswith(m["mountPath"].rstrip("/") + "/")),
                            key=lambda m: len(m["mountPath"]), default=None)
                self.assertIsNotNone(mount, f"{label}: {arg} is in no volume")
                relative = value[len(mount["mountPath"]):].strip("/")
                volume = volumes[mount["name"]]
                sources = kr.volume_sources(volume)
                if not sources or not relative:
                    continue
                self.assertNotIn("subPath", mount, f"{label}: {arg}")
                source = next(volume[k] for k in ("secret", "configMap", "projected")
                              if k in volume)
                files = {}
                for kind, name, items in sources:
                    if items is None:
                        obj = objects.get((kind, name))
                        self.assertIsNotNone(obj, f"{label}: {kind} {name} is created by the "
                                             "user: mount it with `items`, so its files are known")
                        keys = set(obj.get("data", {})) | set(obj.get("binaryData", {}))
                        items = [{"key": k, "path": k} for k in keys]
                    for item in items:
                        files[item["path"]] = (kind, name, item["key"], item.get("mode"))
                self.assertIn(relative, files, f"{label}: {arg} is no file of its volume")
                kind, name, key, mode = files[relative]
                obj = objects.get((kind, name))
                if obj is not None:
                    self.assertIn(key, set(obj.get("data", {})) | set(obj.get("binaryData", {})),
                                  f"{label}: {arg}")
                else:
                    doc = read(os.path.join(kr.K8S, "components", kr.USER_SECRETS[name],
                                            "kustomization.yaml"))
                    self.assertIn(f"={key}=", doc, f"{label}: how to create {name}'s {key}")
                if mode is None:
                    mode = source.get("defaultMode", 0o644)
                # With an fsGroup the kubelet ORs the mode with rw-rw---- (the
                # fsGroup field's documentation), and the server's processes
                # have the fsGroup as a supplementary group; the owner is root.
                if fs_group is not None:
                    mode |= 0o660
                readable = mode & 0o004 or (mode & 0o040 and fs_group is not None)
                self.assertTrue(readable, f"{label}: {arg} (mode {mode:o}, fsGroup {fs_group})"
                                " cannot be read by the server's uid")

    def test_mounts_do_not_nest(self):
        """No mount inside another one of the same container: the runtime
        cannot make a mount point inside a read-only ConfigMap or Secret
        volume (the config at /etc/bertserve is one)."""
        for label, objects, _ in self.each():
            pod = kr.pod_spec(objects)
            for container in pod.get("initContainers", []) + pod["containers"]:
                paths = [m["mountPath"].rstrip("/") for m in container.get("volumeMounts", [])]
                self.assertEqual(len(paths), len(set(paths)), f"{label}: {container['name']}")
                for a in paths:
                    for b in paths:
                        self.assertFalse(b.startswith(a + "/"),
                                         f"{label}: {container['name']} mounts {b} inside {a}")

    def test_referenced_secrets_and_configmaps_exist(self):
        """Every Secret and ConfigMap the pods read is rendered, or is a Secret
        the user creates, documented with its `kubectl create secret` command
        in the component that mounts it, and only with that component."""
        used = set()
        for label, objects, components in self.each():
            for kind, name in kr.config_references(kr.pod_spec(objects)):
                if (kind, name) in objects:
                    continue
                self.assertEqual(kind, "Secret", f"{label}: {kind} {name} is not rendered")
                self.assertIn(name, kr.USER_SECRETS, f"{label}: Secret {name} is not rendered")
                self.assertIn(kr.USER_SECRETS[name], components, f"{label}: Secret {name}")
                used.add(name)
        self.assertEqual(used, set(kr.USER_SECRETS))
        for name, component in kr.USER_SECRETS.items():
            doc = read(os.path.join(kr.K8S, "components", component, "kustomization.yaml"))
            self.assertRegex(doc, rf"kubectl .*create secret \w+ {re.escape(name)}\b", component)

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
