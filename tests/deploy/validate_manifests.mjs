// Renders every kustomize overlay under deploy/k8s/overlays, alone and with
// every set of the components under deploy/k8s/components, with
// `kubectl kustomize`, and validates each object against the Kubernetes (and
// Prometheus Operator) JSON schemas of the npm `kubernetes-models` packages.
// An overlay alone must render built-in kinds only (it applies on a bare
// cluster). Exits non-zero naming the combination, the object and the error.
// (tests/deploy/kustomize_renders.py builds the same combinations.)
//
//   node tests/deploy/validate_manifests.mjs REPO_ROOT
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";

const root = process.argv[2];
const modules = join(root, ".deps", "node_modules");
const load = async (spec) => import(pathToFileURL(join(modules, spec)).href);

const { parseAllDocuments } = await load("yaml/dist/index.js");
// kind -> [module under node_modules, export name, built in]; anything else is
// refused. Built-in kinds are served by every API server; the others need
// their CRDs.
const models = {
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment.js", "Deployment", true],
  "v1/Service": ["kubernetes-models/v1/Service.js", "Service", true],
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap.js", "ConfigMap", true],
  "v1/PersistentVolumeClaim": ["kubernetes-models/v1/PersistentVolumeClaim.js",
    "PersistentVolumeClaim", true],
  "autoscaling/v2/HorizontalPodAutoscaler": [
    "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler.js", "HorizontalPodAutoscaler", true],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget.js",
    "PodDisruptionBudget", true],
  "networking.k8s.io/v1/NetworkPolicy": ["kubernetes-models/networking.k8s.io/v1/NetworkPolicy.js",
    "NetworkPolicy", true],
  "monitoring.coreos.com/v1/ServiceMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
    "ServiceMonitor", false],
  "monitoring.coreos.com/v1/PrometheusRule": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js",
    "PrometheusRule", false],
};

const k8s = join(root, "deploy", "k8s");
const dirs = (parent) => readdirSync(parent)
  .filter((d) => statSync(join(parent, d)).isDirectory()).sort();
const overlays = dirs(join(k8s, "overlays"));
const components = dirs(join(k8s, "components"));
if (overlays.length === 0 || components.length === 0) {
  throw new Error("no overlays or no components to validate");
}
// Every subset of the components, the empty one first.
const subsets = [[]];
for (const c of components) {
  for (const s of subsets.slice()) subsets.push([...s, c]);
}
subsets.sort((a, b) => a.length - b.length);

// An overlay alone from its own directory (what `kubectl apply -k` applies);
// with components, through a kustomization in a temporary directory naming
// them by relative path (kustomize refuses absolute ones).
function render(overlay, chosen) {
  const overlayDir = join(k8s, "overlays", overlay);
  if (chosen.length === 0) {
    return execFileSync("kubectl", ["kustomize", overlayDir], { encoding: "utf8" });
  }
  const tmp = mkdtempSync(join(tmpdir(), "bertserve-kustomize-"));
  try {
    const lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization",
      "resources:", `  - ${relative(tmp, overlayDir)}`, "components:",
      ...chosen.map((c) => `  - ${relative(tmp, join(k8s, "components", c))}`)];
    writeFileSync(join(tmp, "kustomization.yaml"), lines.join("\n") + "\n");
    return execFileSync("kubectl", ["kustomize", tmp], { encoding: "utf8" });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

let failures = 0;
let combinations = 0;
for (const overlay of overlays) {
  for (const chosen of subsets) {
    const label = [overlay, ...chosen].join("+");
    combinations++;
    let rendered;
    try {
      rendered = render(overlay, chosen);
    } catch (e) {
      console.error(`${label}: kubectl kustomize failed: ${e.stderr || e.message}`);
      failures++;
      continue;
    }
    let count = 0;
    for (const doc of parseAllDocuments(rendered)) {
      if (doc.errors.length) throw new Error(`${label}: YAML error ${doc.errors[0]}`);
      const obj = doc.toJSON();
      const key = `${obj.apiVersion}/${obj.kind}`;
      const where = `${label}: ${obj.kind}/${obj.metadata?.name}`;
      if (!(key in models)) {
        console.error(`${where}: no schema for ${key}`);
        failures++;
        continue;
      }
      const [spec, name, builtIn] = models[key];
      if (chosen.length === 0 && !builtIn) {
        console.error(`${where}: ${key} needs a CRD; a plain overlay must apply on a bare cluster`);
        failures++;
      }
      const Model = (await load(spec))[name];
      try {
        new Model(obj).validate();
        count++;
      } catch (e) {
        console.error(`${where}: ${e.message}`);
        failures++;
      }
    }
    if (count === 0) {
      console.error(`${label}: renders nothing valid`);
      failures++;
    }
    console.log(`${label}: ${count} objects valid`);
  }
}
console.log(`${combinations} combinations of ${overlays.length} overlays and ` +
  `${components.length} components`);

// deploy/kserve: KServe's kinds (ServingRuntime, InferenceService) have no
// schema package here (tests/deploy/test_kserve.py checks their fields), but
// the runtime's containers become a pod's: they are validated as one.
const { Pod } = await load("kubernetes-models/v1/Pod.js");
const kserve = join(root, "deploy", "kserve");
let runtimes = 0;
for (const file of readdirSync(kserve).filter((f) => f.endsWith(".yaml")).sort()) {
  for (const doc of parseAllDocuments(readFileSync(join(kserve, file), "utf8"))) {
    if (doc.errors.length) throw new Error(`deploy/kserve/${file}: YAML error ${doc.errors[0]}`);
    const obj = doc.toJSON();
    if (obj?.kind !== "ServingRuntime") continue;
    runtimes++;
    const where = `deploy/kserve/${file}: ServingRuntime/${obj.metadata?.name}`;
    try {
      new Pod({ apiVersion: "v1", kind: "Pod", metadata: { name: obj.metadata.name },
        spec: { containers: obj.spec.containers } }).validate();
      console.log(`${where}: containers valid as a Pod's`);
    } catch (e) {
      console.error(`${where}: ${e.message}`);
      failures++;
    }
  }
}
if (runtimes === 0) {
  console.error("deploy/kserve: no ServingRuntime to validate");
  failures++;
}
process.exit(failures ? 1 : 0);
