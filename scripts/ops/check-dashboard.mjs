// Checks on the dashboard that its JSON Schema cannot express: it is current
// (schemaVersion of the installed @grafana/schema), importable as-is (no
// __inputs, every query on the $datasource variable), and its panel ids and
// query refIds are unique.
//
// Usage: node check-dashboard.mjs DASHBOARD_JSON
import fs from "node:fs";
import { defaultDashboard } from "@grafana/schema";

const file = process.argv[2];
const dashboard = JSON.parse(fs.readFileSync(file, "utf8"));
const problems = [];

if (dashboard.schemaVersion !== defaultDashboard.schemaVersion) {
  problems.push(`schemaVersion ${dashboard.schemaVersion}, current is ${defaultDashboard.schemaVersion}`);
}
if ("__inputs" in dashboard || "__requires" in dashboard) problems.push("has __inputs/__requires: not importable as-is");
const variables = new Map((dashboard.templating?.list ?? []).map((v) => [v.name, v]));
if (variables.get("datasource")?.type !== "datasource" || variables.get("datasource")?.query !== "prometheus") {
  problems.push("no Prometheus data source variable named datasource");
}
if (variables.get("account")?.type !== "query") problems.push("no account query variable");

const ids = new Set();
const walk = (panels) => {
  for (const panel of panels ?? []) {
    if (ids.has(panel.id)) problems.push(`duplicate panel id ${panel.id}`);
    ids.add(panel.id);
    if (panel.type !== "row") {
      if (!panel.title) problems.push(`panel ${panel.id} has no title`);
      if ((panel.targets ?? []).length === 0) problems.push(`panel "${panel.title}" has no query`);
    }
    const refIds = new Set();
    for (const t of panel.targets ?? []) {
      if (refIds.has(t.refId)) problems.push(`panel "${panel.title}": duplicate refId ${t.refId}`);
      refIds.add(t.refId);
      for (const ds of [panel.datasource, t.datasource]) {
        if (ds?.uid !== "${datasource}") problems.push(`panel "${panel.title}" ${t.refId}: data source is not \${datasource}`);
      }
    }
    walk(panel.panels);
  }
};
walk(dashboard.panels);

for (const p of problems) console.error(`FAIL ${file}: ${p}`);
if (problems.length === 0) console.log(`ok ${file}: schemaVersion ${dashboard.schemaVersion}, ${ids.size} panels`);
process.exit(problems.length > 0 ? 1 : 0);
