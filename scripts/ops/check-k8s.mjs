// Splits Kubernetes manifests for validation and checks the prometheus-operator
// objects with @kubernetes-models/prometheus-operator.
//
// Usage: node check-k8s.mjs OUTDIR RULES_FILE MANIFEST...
//
// Core objects go to OUTDIR/core/*.yaml (for kubernetes-validate --strict);
// prometheus-operator objects are validated here against the CRD models (types,
// required fields, patterns) and written to OUTDIR/crd/<Kind>.*.json for a
// strict JSON Schema check (unknown fields), and every PrometheusRule's spec
// must equal the plain rules file.
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
