// Fails when a PromQL expression of the rules file or the dashboard names a
// metric that neither the exporter exposes nor a recording rule produces.
//
// Usage: node check-promql-names.mjs METRICS_TXT RULES_FILE DASHBOARD_JSON
// METRICS_TXT is a scrape of the real exporter (text exposition format).
import fs from "node:fs";
import YAML from "yaml";
import { parser } from "@prometheus-io/lezer-promql";
import { dashboardQueries } from "./grafana-queries.mjs";

const [metricsFile, rulesFile, dashboardFile] = process.argv.slice(2);

// Series that Prometheus itself adds for every target.
const known = new Set(["up", "scrape_duration_seconds", "scrape_samples_scraped",
  "scrape_samples_post_metric_relabeling", "scrape_series_added"]);
const exposed = new Set();
for (const line of fs.readFileSync(metricsFile, "utf8").split("\n")) {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
  if (m !== null) exposed.add(m[1]);
}
if (exposed.size === 0) throw new Error(`${metricsFile}: no samples`);
exposed.forEach((name) => known.add(name));

const exprs = [];
const rules = YAML.parse(fs.readFileSync(rulesFile, "utf8"));
for (const group of rules.groups) {
  for (const rule of group.rules) {
    if (rule.record) known.add(rule.record);
    exprs.push({ where: `rule ${rule.record ?? rule.alert}`, expr: String(rule.expr) });
  }
}
exprs.push(...dashboardQueries(dashboardFile));

/** Metric names an expression selects, or throws on a syntax error. */
function metricNames(expr) {
  const names = [];
  let error = null;
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) error ??= `syntax error at ${node.from}: ${expr.slice(node.from, node.from + 20)}`;
      if (node.name === "VectorSelector") {
        const id = node.node.getChild("Identifier");
        if (id) names.push(expr.slice(id.from, id.to));
      }
      if (node.name === "UnquotedLabelMatcher") {
        const text = expr.slice(node.from, node.to);
        const m = /^__name__\s*=\s*"([^"]*)"$/.exec(text);
        if (m) names.push(m[1]);
        else if (text.startsWith("__name__")) error ??= `cannot check regex name matcher ${text}`;
      }
    },
  });
  if (error) throw new Error(error);
  return names;
}

let problems = 0;
const used = new Set();
for (const { where, expr } of exprs) {
  let names;
  try {
    names = metricNames(expr);
  } catch (e) {
    console.error(`FAIL ${where}: ${e.message}`);
    problems++;
    continue;
  }
  if (names.length === 0) {
    console.error(`FAIL ${where}: selects no metric: ${expr}`);
    problems++;
  }
  for (const name of names) {
    used.add(name);
    if (!known.has(name)) {
      console.error(`FAIL ${where}: unknown metric ${name}`);
      problems++;
    }
  }
}
const unused = [...exposed].filter((n) => !used.has(n) && !/^(process_|balance_exporter_build_info)/.test(n)).sort();
console.log(`${exprs.length} expressions checked; ${used.size} metric names used, all known: ${problems === 0}`);
if (unused.length) console.log(`exposed but used by no rule or panel (fine, for information): ${unused.join(", ")}`);
process.exit(problems > 0 ? 1 : 0);
