// The PromQL that a Grafana dashboard sends, with Grafana's variables replaced
// by concrete values, as the checks in this directory need it.
import fs from "node:fs";

/** Values given to the dashboard's variables when its queries are run by hand. */
export const substitutions = {
  __rate_interval: "15s",
  __interval: "5s",
  __interval_ms: "5000",
  __range: "60s",
  __range_s: "60",
  __range_ms: "60000",
  // Multi-value variables with "All" selected: Grafana sends allValue (".*").
  account: ".*",
};

/** Replaces $name, ${name} and ${name:format} by its value from `substitutions`. */
export function substitute(expr) {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced, bare) => {
    const name = braced ?? bare;
    if (!(name in substitutions)) throw new Error(`unknown Grafana variable ${whole} in: ${expr}`);
    return substitutions[name];
  });
}

function* allPanels(panels) {
  for (const panel of panels ?? []) {
    yield panel;
    yield* allPanels(panel.panels);
  }
}

/**
 * Every query of the dashboard: { where, expr } for panel targets (expr already
 * substituted) and { where, metric } for label_values() variable queries.
 */
export function dashboardQueries(file) {
  const dashboard = JSON.parse(fs.readFileSync(file, "utf8"));
  const out = [];
  for (const panel of allPanels(dashboard.panels)) {
    for (const target of panel.targets ?? []) {
      if (target.hide) continue;
      out.push({ where: `panel "${panel.title}" ${target.refId}`, expr: substitute(target.expr) });
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== "query") continue;
    const query = typeof variable.query === "string" ? variable.query : variable.query.query;
    const m = /^label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)$/.exec(query);
    if (m === null) throw new Error(`variable ${variable.name}: unsupported query ${query}`);
    out.push({ where: `variable $${variable.name}`, expr: substitute(m[1]), label: m[2] });
  }
  return out;
}
