"""Every way to deploy bertserve with deploy/k8s: each overlay alone and with
each set of components, rendered by `kubectl kustomize`.

An overlay alone is rendered from its own directory (what `kubectl apply -k
deploy/k8s/overlays/cpu` applies); an overlay with components through a
temporary kustomization that names the real overlay and components by
relative path (kustomize refuses absolute ones), as an overlay of a user's
own would. validate_manifests.mjs builds the same combinations."""

import functools
import itertools
import os
import re
import subprocess
import tempfile

import yaml

ROOT = os.environ.get("BERTSERVE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
# libyaml's loader when there is one: the tests parse every render many times.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _dirs(parent):
    return sorted(d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d)))


OVERLAYS = _dirs(os.path.join(K8S, "overlays"))
COMPONENTS = _dirs(os.path.join(K8S, "components"))

# Secrets that the manifests reference but never carry (users create them, as
# the comment of the component that mounts each says): {name: component}.
USER_SECRETS = {
    "bertserve-management-token": "management-token",
    "bertserve-tls": "tls",
}


def combinations():
    """[(overlay, (component, ...))] for every overlay and every subset of
    the components, the empty one first."""
    subsets = [c for n in range(len(COMPONENTS) + 1)
               for c in itertools.combinations(COMPONENTS, n)]
    return [(o, s) for o in OVERLAYS for s in subsets]


def name(overlay, components):
    return "+".join((overlay,) + tuple(components))


@functools.lru_cache(maxsize=None)
def render_text(overlay, components=()):
    overlay_dir = os.path.join(K8S, "overlays", overlay)
    if not components:
        return _kustomize(overlay_dir)
    with tempfile.TemporaryDirectory() as tmp:
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(overlay_dir, tmp)],
            "components": [os.path.relpath(os.path.join(K8S, "components", c), tmp)
                           for c in components],
        }
        with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
            yaml.safe_dump(kustomization, f)
        return _kustomize(tmp)


def render(overlay, components=()):
    """{(kind, name): object} of one combination (a fresh copy each call)."""
    objects = {}
    for obj in yaml.load_all(render_text(overlay, tuple(components)), Loader=_LOADER):
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in objects, f"{name(overlay, components)}: two {key}"
        objects[key] = obj
    return objects


def _kustomize(directory):
    proc = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return proc.stdout


def pod_spec(objects):
    return objects[("Deployment", "bertserve")]["spec"]["template"]["spec"]


def server_container(objects):
    return next(c for c in pod_spec(objects)["containers"] if c["name"] == "bertserve")


def container_port(container, port):
    """The containerPort that a probe's or NetworkPolicy's port (a name or a
    number) means in this container; None when it names none."""
    for p in container.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    return None


def volume_sources(volume):
    """[(kind, name, items)] of the Secrets and ConfigMaps a pod volume reads
    (a projected volume may read several); items is None for every key."""
    sources = []
    if "secret" in volume:
        sources.append(("Secret", volume["secret"]["secretName"], volume["secret"].get("items")))
    if "configMap" in volume:
        sources.append(("ConfigMap", volume["configMap"]["name"], volume["configMap"].get("items")))
    for source in volume.get("projected", {}).get("sources", []):
        for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
            if key in source:
                sources.append((kind, source[key]["name"], source[key].get("items")))
    return sources


def config_references(pod):
    """{(kind, name)} of every Secret and ConfigMap a pod spec reads: volumes,
    env valueFrom and envFrom of every container, image pull secrets."""
    refs = {(kind, name) for v in pod.get("volumes", []) for kind, name, _ in volume_sources(v)}
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        for var in c.get("env", []):
            source = var.get("valueFrom", {})
            if "secretKeyRef" in source:
                refs.add(("Secret", source["secretKeyRef"]["name"]))
            if "configMapKeyRef" in source:
                refs.add(("ConfigMap", source["configMapKeyRef"]["name"]))
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                refs.add(("Secret", source["secretRef"]["name"]))
            if "configMapRef" in source:
                refs.add(("ConfigMap", source["configMapRef"]["name"]))
    refs |= {("Secret", s["name"]) for s in pod.get("imagePullSecrets", [])}
    return refs


def byte_size(quantity):
    """A memory quantity ("12Gi", "6GiB", "512Mi", "1024") in bytes."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?B?", str(quantity).replace("iB", "i"))
    return int(m.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30,
                              "Ti": 1 << 40}[m.group(2)]


def cpu_cores(quantity):
    """A CPU quantity ("4", "500m", "1.5") in cores."""
    text = str(quantity)
    if text.endswith("m"):
        return int(text[:-1]) / 1000
    return float(text)


def env_values(container):
    """{name: value} of the container's environment as the kubelet resolves
    it: plain values and resourceFieldRef of its own CPU request or limit
    (rounded up to the divisor, as the downward API does). A limit the
    container does not set is the node's allocatable CPU, which no manifest
    knows: that raises."""
    values = {}
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"]["resourceFieldRef"]
        assert ref.get("containerName", container["name"]) == container["name"], ref
        kind, resource = ref["resource"].split(".", 1)
        assert resource == "cpu", f"{var['name']}: only CPU fields are resolved here"
        amount = container["resources"].get(kind, {}).get("cpu")
        if amount is None:
            raise ValueError(f"{var['name']} reads {ref['resource']}, which the container "
                             "does not set (the kubelet would pass the node's allocatable CPU)")
        divisor = cpu_cores(ref.get("divisor", "1"))
        values[var["name"]] = str(-(-round(cpu_cores(amount) * 1000) // round(divisor * 1000)))
    return values


def expand(arg, values):
    """An argument with $(VAR) replaced as the kubelet does ($$ is a literal $).
    A reference to an undefined variable stays as written: that raises, since
    the binary would then get the literal text."""
    out, i = [], 0
    while i < len(arg):
        if arg.startswith("$$", i):
            out.append("$")
            i += 2
        elif arg.startswith("$(", i) and ")" in arg[i:]:
            end = arg.index(")", i)
            var = arg[i + 2:end]
            if var not in values:
                raise ValueError(f"{arg}: $({var}) is not in the container's env")
            out.append(values[var])
            i = end + 1
        else:
            out.append(arg[i])
            i += 1
    return "".join(out)
