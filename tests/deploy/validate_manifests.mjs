// Renders every kustomize overlay under deploy/k8s/overlays with
// `kubectl kustomize` and validates each object against the Kubernetes (and
// Prometheus Operator) JSON schemas of the npm `kubernetes-models` packages.
// Exits non-zero naming the object and the schema error.
//
//   node tests/deploy/validate_manifests.mjs REPO_ROOT
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = process.argv[2];
const modules = join(root, ".deps", "node_modules");
const load = async (spec) => import(pathToFileURL(join(modules, spec)).href);

const { parseAllDocuments } = await load("yaml/dist/index.js");
// kind -> [module under node_modules, export name]; anything else is refused.
const models = {
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment.js", "Deployment"],
  "v1/Service": ["kubernetes-models/v1/Service.js", "Service"],
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap.js", "ConfigMap"],
  "v1/PersistentVolumeClaim": ["kubernetes-models/v1/PersistentVolumeClaim.js",
    "PersistentVolumeClaim"],
  "autoscaling/v2/HorizontalPodAutoscaler": [
    "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler.js", "HorizontalPodAutoscaler"],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget.js",
    "PodDisruptionBudget"],
  "monitoring.coreos.com/v1/ServiceMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
    "ServiceMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js",
    "PrometheusRule"],
};

let failures = 0;
const overlays = readdirSync(join(root, "deploy", "k8s", "overlays"));
if (overlays.length === 0) throw new Error("no overlays to validate");
for (const overlay of overlays) {
  const rendered = execFileSync("kubectl", ["kustomize", join(root, "deploy", "k8s", "overlays",
    overlay)], { encoding: "utf8" });
  let count = 0;
  for (const doc of parseAllDocuments(rendered)) {
    if (doc.errors.length) throw new Error(`${overlay}: YAML error ${doc.errors[0]}`);
    const obj = doc.toJSON();
    const key = `${obj.apiVersion}/${obj.kind}`;
    const where = `${overlay}: ${obj.kind}/${obj.metadata?.name}`;
    if (!(key in models)) {
      console.error(`${where}: no schema for ${key}`);
      failures++;
      continue;
    }
    const [spec, name] = models[key];
    const Model = (await load(spec))[name];
    try {
      new Model(obj).validate();
      count++;
    } catch (e) {
      console.error(`${where}: ${e.message}`);
      failures++;
    }
  }
  console.log(`${overlay}: ${count} objects valid`);
}
process.exit(failures ? 1 : 0);
