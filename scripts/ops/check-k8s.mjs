// Splits Kubernetes manifests for validation and checks the prometheus-operator
// objects with @kubernetes-models/prometheus-operator.
//
// Usage: node check-k8s.mjs OUTDIR RULES_FILE MANIFEST...
//
// Core objects go to OUTDIR/core/*.yaml (for kubernetes-validate --strict);
// prometheus-operator objects are validated here against the CRD models (types,
// required fields, patterns) and written to OUTDIR/crd/<Kind>.*.json for a
// strict JSON Schema check (unknown fields), and every PrometheusRule's spec
// must equal the plain rules file. Every Deployment and StatefulSet must run its containers
// non-root, read-only, without capabilities and with resources set, and the
// exporter container must be probed on /-/healthy and /-/ready.
import fs from "node:fs";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import YAML from "yaml";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = { PodMonitor, PrometheusRule, ServiceMonitor };
const [outDir, rulesFile, ...files] = process.argv.slice(2);
const rules = YAML.parse(fs.readFileSync(rulesFile, "utf8"));
fs.mkdirSync(path.join(outDir, "core"), { recursive: true });
fs.mkdirSync(path.join(outDir, "crd"), { recursive: true });

let problems = 0;
let n = 0;
const problem = (where, msg) => {
  console.error(`FAIL ${where}: ${msg}`);
  problems++;
};

function checkPodSpec(where, pod) {
  const podSc = pod.securityContext ?? {};
  if (podSc.seccompProfile?.type !== "RuntimeDefault") problem(where, "pod seccompProfile is not RuntimeDefault");
  if (pod.automountServiceAccountToken !== false) problem(where, "service account token is mounted");
  for (const c of pod.containers ?? []) {
    const at = `${where} container ${c.name}`;
    const sc = c.securityContext ?? {};
    if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) problem(at, "not runAsNonRoot");
    if (sc.allowPrivilegeEscalation !== false) problem(at, "allowPrivilegeEscalation is not false");
    if (sc.readOnlyRootFilesystem !== true) problem(at, "root filesystem is not read-only");
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) problem(at, "capabilities ALL not dropped");
    if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory) {
      problem(at, "resources.requests.{cpu,memory} and resources.limits.memory must be set");
    }
    if (!String(c.image).startsWith("balance-exporter:")) continue;
    const ports = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
    if (!(c.ports ?? []).some((p) => p.containerPort === 9977)) problem(at, "does not expose 9977");
    for (const [probe, path] of [["livenessProbe", "/-/healthy"], ["readinessProbe", "/-/ready"]]) {
      const get = c[probe]?.httpGet;
      if (get?.path !== path || !ports.has(get?.port)) problem(at, `${probe} is not an httpGet of ${path} on the metrics port`);
    }
    if (!(c.args ?? []).some((a) => a.startsWith("--config.file="))) problem(at, "no --config.file");
  }
}

for (const file of files) {
  YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).forEach((doc, i) => {
    const where = `${file} (document ${i + 1})`;
    if (doc.errors.length > 0) {
      problem(where, doc.errors.map((e) => e.message).join("; "));
      return;
    }
    const obj = doc.toJS();
    if (obj === null) return;
    n++;
    if (obj.kind === "Deployment" || obj.kind === "StatefulSet") checkPodSpec(where, obj.spec?.template?.spec ?? {});
    if (!String(obj.apiVersion).startsWith("monitoring.coreos.com/")) {
      fs.writeFileSync(path.join(outDir, "core", `${n}.yaml`), YAML.stringify(obj));
      return;
    }
    const Model = models[obj.kind];
    if (Model === undefined || obj.apiVersion !== Model.apiVersion) {
      problem(where, `no model for ${obj.apiVersion} ${obj.kind}`);
      return;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problem(where, `${obj.kind}/${obj.metadata?.name}: ${e.message}`);
      return;
    }
    if (obj.kind === "PrometheusRule" && !isDeepStrictEqual(obj.spec, rules)) {
      problem(where, `spec differs from ${rulesFile}; run scripts/ops/gen-prometheusrule.sh`);
      return;
    }
    fs.writeFileSync(path.join(outDir, "crd", `${obj.kind}.${n}.json`), JSON.stringify(obj, null, 2));
    console.log(`ok ${where}: ${obj.kind}/${obj.metadata?.name}`);
  });
}
if (n === 0) problem("input", "no Kubernetes objects found");
process.exit(problems > 0 ? 1 : 0);
