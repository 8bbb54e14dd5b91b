// End-to-end check against a running Prometheus that scrapes the exporter and
// has loaded the rules: every rule evaluates without error and every query of
// the dashboard returns data.
//
// Usage: node e2e-queries.mjs PROMETHEUS_URL DASHBOARD_JSON TIMEOUT_SECONDS
import { dashboardQueries } from "./grafana-queries.mjs";

const [base, dashboardFile, timeoutArg] = process.argv.slice(2);
const deadline = Date.now() + Number(timeoutArg) * 1000;
const queries = dashboardQueries(dashboardFile);

async function api(path, params = {}) {
  const url = new URL(`/api/v1/${path}`, base);
  for (const [k, v] of Object.entries(params)) url.searchParams.append(k, v);
  const res = await fetch(url);
  // Prometheus listens before it is ready and answers 503 meanwhile (longer on a
  // loaded machine): that is a reason to wait, not a failure.
  if (res.status === 503) throw Object.assign(new Error(`${url}: 503 (Prometheus not ready)`), { starting: true });
  const body = await res.json();
  if (body.status !== "success") throw new Error(`${url}: ${body.errorType}: ${body.error}`);
  return body.data;
}

/** Number of series or values a query returns now; throws on a bad query. */
async function resultSize(q) {
  if (q.label) return (await api(`label/${q.label}/values`, { "match[]": q.expr })).length;
  return (await api("query", { query: q.expr })).result.length;
}

async function check() {
  const problems = [];
  const targets = (await api("targets")).activeTargets;
  if (targets.length === 0 || targets.some((t) => t.health !== "up")) {
    problems.push(`targets not all up: ${JSON.stringify(targets.map((t) => [t.scrapeUrl, t.health, t.lastError]))}`);
  }
  const groups = (await api("rules")).groups;
  const rules = groups.flatMap((g) => g.rules);
  if (rules.length === 0) problems.push("no rules loaded");
  for (const r of rules) {
    if (r.health !== "ok") problems.push(`rule ${r.name}: health ${r.health} ${r.lastError ?? ""}`);
  }
  const sizes = [];
  for (const q of queries) {
    const n = await resultSize(q); // a bad query throws: no point in waiting
    sizes.push(n);
    if (n === 0) problems.push(`no data: ${q.where}: ${q.expr}`);
  }
  return { problems, sizes, rules };
}

let last;
for (;;) {
  try {
    last = await check();
  } catch (e) {
    if ((e.cause?.code === "ECONNREFUSED" || e.starting) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    console.error(`FAIL ${e.message}`);
    process.exit(1);
  }
  if (last.problems.length === 0 || Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 2000));
}
queries.forEach((q, i) => console.log(`${last.sizes[i] > 0 ? "ok  " : "FAIL"} ${String(last.sizes[i]).padStart(2)} series  ${q.where}`));
const firing = last.rules.filter((r) => r.type === "alerting" && r.state !== "inactive").map((r) => `${r.name} (${r.state})`);
console.log(`${last.rules.length} rules evaluate without error; alerts active on the demo: ${firing.join(", ") || "none"}`);
for (const p of last.problems) console.error(`FAIL ${p}`);
process.exit(last.problems.length > 0 ? 1 : 0);
