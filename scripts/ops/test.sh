#!/usr/bin/env bash
# Proves the operations kit (grafana/, deploy/) with the real tools that
# consume each piece, and fails if any of them rejects it.
#
# Usage: scripts/ops/test.sh
#   BALANCE_EXPORTER_BIN  exporter binary for the live checks
#                         (default target/release/balance-exporter; build it first)
#
# Installs what it needs on first use (Debian packages; a Python venv and npm
# packages under target/ops-tools/, pinned in scripts/ops/requirements.txt and
# scripts/ops/package-lock.json) and reuses them afterwards.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
ops=scripts/ops
tools=$root/target/ops-tools
bin=${BALANCE_EXPORTER_BIN:-target/release/balance-exporter}
rules=deploy/prometheus/balance-exporter.rules.yml
dashboard=grafana/dashboards/balance-exporter.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/apt.sh
source "$root/scripts/lib/apt.sh"
# shellcheck source=scripts/lib/http.sh
source "$root/scripts/lib/http.sh"

# --- tools -----------------------------------------------------------------

install_debian_packages() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v yamllint >/dev/null || missing+=(yamllint)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v curl >/dev/null || missing+=(curl)
  command -v npm >/dev/null || missing+=(nodejs npm)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  apt_install_missing "${missing[@]}"
}

install_python_tools() {
  if ! cmp -s "$ops/requirements.txt" "$tools/venv/requirements.txt"; then
    echo "installing Python tools into $tools/venv"
    rm -rf "$tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q --disable-pip-version-check -r "$ops/requirements.txt"
    cp "$ops/requirements.txt" "$tools/venv/requirements.txt"
  fi
}

install_node_tools() {
  if ! cmp -s "$ops/package-lock.json" "$tools/package-lock.json" || [[ ! -d $tools/node_modules ]]; then
    echo "installing npm packages into $tools/node_modules"
    rm -rf "$tools/node_modules" "$tools/schemas"
    cp "$ops/package.json" "$ops/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  # JSON Schemas generated from the published TypeScript types.
  if [[ ! -f $tools/schemas/PrometheusRule.json ]]; then
    echo "generating JSON Schemas from @grafana/schema and @kubernetes-models/prometheus-operator"
    mkdir -p "$tools/schemas"
    local gen=(node "$tools/node_modules/ts-json-schema-generator/bin/ts-json-schema-generator.js")
    local models=$tools/node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1
    printf '%s\n' '{"compilerOptions": {"module": "nodenext", "moduleResolution": "nodenext", "strict": true, "skipLibCheck": true}}' \
      >"$tools/schemas/tsconfig.json"
    "${gen[@]}" --path "$tools/node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts" \
      --type Dashboard -o "$tools/schemas/Dashboard.json"
    for kind in ServiceMonitor PrometheusRule; do
      "${gen[@]}" --tsconfig "$tools/schemas/tsconfig.json" --path "$models/$kind.d.ts" \
        --type "I$kind" -o "$tools/schemas/$kind.json.tmp"
      mv "$tools/schemas/$kind.json.tmp" "$tools/schemas/$kind.json"
    done
  fi
  # The node scripts import the packages installed next to them.
  cp "$ops"/*.mjs "$tools/"
}

# --- checks ----------------------------------------------------------------
# Each check runs in its own subshell with errexit in force; the script goes
# on with the next one and fails at the end if any failed.

check_shell() {
  shellcheck -x "$ops"/*.sh scripts/lib/*.sh
}

check_yaml() {
  yamllint -s -c "$ops/yamllint.yml" grafana deploy
}

check_rules() {
  promtool check rules "$rules"
  (cd deploy/prometheus && promtool test rules balance-exporter.rules.test.yml)
}

check_prometheus_alertmanager_examples() {
  promtool check config deploy/prometheus/prometheus.yml
  amtool check-config deploy/prometheus/alertmanager.yml
  local alert expected got
  while read -r alert expected; do
    got=$(amtool config routes test --config.file=deploy/prometheus/alertmanager.yml "alertname=$alert" provider=acedata account=main 2>/dev/null)
    echo "$alert -> $got"
    [[ $got == "$expected" ]] || { echo "expected $alert to go to $expected"; return 1; }
  done <<'ROUTES'
BalanceLow billing
BalanceRunningOut billing
ApplicationQuotaExhausted billing
AcedataSpendSpike billing
AcedataTopUpFailed billing
BalanceExporterCollectorFailing monitoring
BalanceExporterYeastarUnauthorized monitoring
SomethingElse default
ROUTES
}

check_dashboard() {
  "$tools/venv/bin/check-jsonschema" --schemafile "$tools/schemas/Dashboard.json" "$dashboard"
  node "$tools/check-dashboard.mjs" "$dashboard"
}

# Validates manifests (files or kustomize output): core objects with
# kubernetes-validate --strict, prometheus-operator objects with their models
# and a strict schema.
validate_manifests() {
  local out=$1
  shift
  node "$tools/check-k8s.mjs" "$out" "$rules" "$@"
  local report
  report=$("$tools/venv/bin/kubernetes-validate" --strict "$out"/core/*.yaml 2>&1) || { echo "$report"; return 1; }
  echo "$report"
  # A kind or apiVersion without a schema is only a warning there: not here.
  if grep -v '^INFO' <<<"$report" | grep -q .; then return 1; fi
  local kind files
  for kind in ServiceMonitor PrometheusRule; do
    files=("$out"/crd/"$kind".*.json)
    [[ -e ${files[0]} ]] || continue
    "$tools/venv/bin/check-jsonschema" --schemafile "$tools/schemas/$kind.json" "${files[@]}"
  done
}

check_kubernetes() {
  scripts/ops/gen-prometheusrule.sh "$work/prometheusrule.yaml"
  diff -u deploy/kubernetes/prometheusrule.yaml "$work/prometheusrule.yaml" ||
    { echo "deploy/kubernetes/prometheusrule.yaml is stale: run scripts/ops/gen-prometheusrule.sh"; return 1; }
  local manifests
  mapfile -t manifests < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
  validate_manifests "$work/k8s-files" "${manifests[@]}"
  if command -v kubectl >/dev/null; then
    local dir name
    for dir in deploy/kubernetes deploy/kubernetes/sidecar deploy/kubernetes/sharded; do
      name=${dir//\//-}
      kubectl kustomize "$dir" >"$work/$name.yaml"
      validate_manifests "$work/k8s-$name" "$work/$name.yaml"
    done
  else
    echo "kubectl not installed: kustomization.yaml files not rendered"
  fi
}

check_dockerfile() {
  "$tools/venv/bin/hadolint" --failure-threshold warning deploy/docker/Dockerfile deploy/docker/Dockerfile.release
}

# systemd-analyze verify needs ExecStart's binary to exist: the unit is
# verified as shipped, with only that path pointed at the real binary.
check_systemd() {
  local unit=$work/systemd/balance-exporter.service real out
  real=$(realpath "$bin")
  mkdir -p "$work/systemd"
  sed "s#^ExecStart=/usr/local/bin/balance-exporter #ExecStart=$real #" deploy/systemd/balance-exporter.service >"$unit"
  grep -q "^ExecStart=$real " "$unit"
  out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$out"; return 1; }
  [[ -z $out ]] || { echo "$out"; return 1; }
  echo "systemd-analyze verify: no findings"
  # The hardening that the unit promises, each directive by name.
  local directive absent=0
  for directive in DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    PrivateDevices=yes CapabilityBoundingSet= AmbientCapabilities= ProtectKernelTunables=yes \
    ProtectKernelModules=yes ProtectControlGroups=yes RestrictSUIDSGID=yes MemoryDenyWriteExecute=yes \
    SystemCallFilter=@system-service LoadCredential=secret:/etc/balance-exporter/secrets; do
    grep -qx "$directive" "$unit" || { echo "missing $directive"; absent=1; }
  done
  ((absent == 0))
  # Exposure 0.0 (locked down) .. 10.0 (unprotected), given here times ten;
  # the unit rates 1.1 with systemd 252.
  local verdict
  verdict=$(systemd-analyze security --offline=true --threshold=15 "$unit" 2>&1) ||
    { tail -n 1 <<<"$verdict"; echo "exposure above 1.5"; return 1; }
  tail -n 1 <<<"$verdict"
  check_systemd_socket
}

# Socket activation: the .socket unit and the service drop-in that adds
# --web.systemd-socket, verified together as systemd would load them (the unit
# path points at a copy of deploy/systemd/). The Rust test
# systemd_socket_activation_hands_over_the_listening_socket runs the exporter
# under systemd-socket-activate.
check_systemd_socket() {
  local dir=$work/systemd-socket real out
  real=$(realpath "$bin")
  rm -rf "$dir"
  mkdir -p "$dir/balance-exporter.service.d"
  sed "s#^ExecStart=/usr/local/bin/balance-exporter #ExecStart=$real #" deploy/systemd/balance-exporter.service >"$dir/balance-exporter.service"
  sed "s#^ExecStart=/usr/local/bin/balance-exporter #ExecStart=$real #" deploy/systemd/balance-exporter.service.d/socket-activation.conf \
    >"$dir/balance-exporter.service.d/socket-activation.conf"
  cp deploy/systemd/balance-exporter.socket "$dir/"
  grep -q "^ExecStart=$real .*--web.systemd-socket" "$dir/balance-exporter.service.d/socket-activation.conf"
  grep -q '^ListenStream=' "$dir/balance-exporter.socket"
  out=$(cd "$dir" && SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify balance-exporter.socket balance-exporter.service 2>&1) ||
    { echo "$out"; return 1; }
  [[ -z $out ]] || { echo "$out"; return 1; }
  echo "systemd-analyze verify (socket activation): no findings"
}

# The example configuration from the ConfigMap passes the exporter's own
# --config.check (secret paths pointed at files in a temporary directory).
check_config_example() {
  mkdir -p "$work/config/secrets"
  printf 'token\n' >"$work/config/secrets/acedata-token"
  printf 'secret\n' >"$work/config/secrets/yeastar-client-secret"
  # Run from $tools so that the yaml package resolves.
  (cd "$tools" && node --input-type=module -e '
    import fs from "node:fs";
    import YAML from "yaml";
    const cm = YAML.parse(fs.readFileSync(process.argv[1], "utf8"));
    process.stdout.write(cm.data["balance-exporter.yaml"]);
  ' "$root/deploy/kubernetes/configmap.yaml") >"$work/config/raw.yaml"
  sed "s#/run/secrets/balance-exporter/#$work/config/secrets/#" "$work/config/raw.yaml" >"$work/config/balance-exporter.yaml"
  "$bin" --config.check --config.file="$work/config/balance-exporter.yaml"
}

stop_live_processes() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait
}

# The real exporter in --demo, scraped by the real Prometheus with the rules
# loaded: names check against its /metrics, every rule evaluates, every
# dashboard query returns data. Also reports the exporter's memory use.
check_live() {
  local exporter_port prometheus_port
  SECONDS=0
  # Not local: the trap runs after this function has returned.
  pids=()
  trap stop_live_processes EXIT
  exporter_port=$(free_port)
  "$bin" --demo --web.listen-address "127.0.0.1:$exporter_port" --log.level warn >"$work/exporter.log" 2>&1 &
  pids+=($!)
  local exporter_pid=$!
  wait_http "http://127.0.0.1:$exporter_port/-/healthy" 20
  wait_http "http://127.0.0.1:$exporter_port/-/ready" 30
  curl -fsS "http://127.0.0.1:$exporter_port/metrics" >"$work/metrics.txt"
  echo "exporter --demo serves $(grep -vc '^#' "$work/metrics.txt") samples"
  promtool check metrics <"$work/metrics.txt"

  echo "-- metric names in rules and dashboard"
  node "$tools/check-promql-names.mjs" "$work/metrics.txt" "$rules" "$dashboard"

  echo "-- Prometheus scraping the exporter with the rules"
  prometheus_port=$(free_port)
  mkdir -p "$work/prometheus"
  cp "$rules" "$work/prometheus/"
  cat >"$work/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [balance-exporter.rules.yml]
scrape_configs:
  - job_name: balance-exporter
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
EOF
  prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
  pids+=($!)
  if ! node "$tools/e2e-queries.mjs" "http://127.0.0.1:$prometheus_port" "$dashboard" 90; then
    echo "--- prometheus log"; cat "$work/prometheus.log"
    echo "--- exporter log"; cat "$work/exporter.log"
    return 1
  fi
  check_demo_alerts "$prometheus_port"

  local rss hwm ticks limit_mib
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$exporter_pid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$exporter_pid/status")
  # utime + stime (fields 14 and 15; the command name in field 2 has no spaces).
  ticks=$(awk '{print $14 + $15}' "/proc/$exporter_pid/stat")
  echo "exporter after the run: RSS $((rss / 1024)) MiB, peak $((hwm / 1024)) MiB," \
    "CPU time $((ticks * 1000 / $(getconf CLK_TCK))) ms in $SECONDS s"
  # The Kubernetes memory limit leaves at least twice the measured peak.
  limit_mib=$(cd "$tools" && node --input-type=module -e '
    import fs from "node:fs";
    import YAML from "yaml";
    const d = YAML.parse(fs.readFileSync(process.argv[1], "utf8"));
    const c = d.spec.template.spec.containers.find((c) => c.name === "balance-exporter");
    console.log(/^([0-9]+)Mi$/.exec(c.resources.limits.memory)[1]);
  ' "$root/deploy/kubernetes/deployment.yaml")
  echo "deploy/kubernetes/deployment.yaml memory limit: ${limit_mib} MiB"
  ((limit_mib * 1024 >= 2 * hwm)) || { echo "memory limit is less than twice the measured peak"; return 1; }
}

# The demo's spend data sets off every spend alert (pending or firing: their
# `for` is longer than this check), and the quota-low alert of the application
# whose auto-recharge is Paused at warning severity.
check_demo_alerts() {
  local port=$1 query got i
  while read -r query; do
    got=none
    for ((i = 0; i < 300; i++)); do
      got=$(prom_value "$port" "count($query)")
      [[ $got == none ]] || break
      sleep 0.1
    done
    echo "$query: $got"
    [[ $got != none ]] || { echo "expected the demo to raise $query"; return 1; }
  done <<'ALERTS'
ALERTS{alertname="AcedataSpendSpike", api="Midjourney Imagine"}
ALERTS{alertname="AcedataCreditsRunningOutAtSpendRate", account="demo"}
ALERTS{alertname="AcedataTopUpFailed", account="demo"}
ALERTS{alertname="AcedataTopUpPending", account="demo"}
ALERTS{alertname="ApplicationQuotaLow", service="suno", severity="warning"}
ALERTS
}

# Waits until FILE exists, for at most $2 seconds.
wait_file() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [[ -s $1 ]] && return 0
    sleep 0.1
  done
  echo "$1 not written after $2 s"
  return 1
}

# The value of a PromQL query that returns one sample ("none" when it returns
# nothing).
prom_value() {
  curl -fsS "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}

# Three real exporters as shards 0-2 of one configuration of 220 accounts on
# the simulator (examples/balance-sim), scraped by a real Prometheus: every
# account arrives exactly once.
check_live_shards() {
  local sim_bin=${SIM_BIN:-target/debug/examples/balance-sim}
  [[ -x $sim_bin ]] || cargo build --locked --features test-control --example balance-sim
  pids=()
  trap stop_live_processes EXIT
  local dir=$work/shards i port prometheus_port targets="" accounts=220
  mkdir -p "$dir"
  "$sim_bin" --acedata-accounts 200 --yeastar-accounts 20 --collectors balance --interval 1h \
    --config-out "$dir/config.yaml" >"$dir/sim.log" 2>&1 &
  pids+=($!)
  wait_file "$dir/config.yaml" 30
  for i in 0 1 2; do
    port=$(free_port)
    "$bin" --config.file="$dir/config.yaml" --shard="$i" --total-shards=3 \
      --web.listen-address="127.0.0.1:$port" --log.level=warn >"$dir/exporter-$i.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$port/-/ready" 60
    targets+="\"127.0.0.1:$port\", "
  done
  prometheus_port=$(free_port)
  cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: balance-exporter-sharded
    static_configs:
      - targets: [${targets%, }]
EOF
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$dir/prometheus.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$prometheus_port/-/ready" 60
  # Every (collector, account) once, from three shards that agree on the total.
  local series="" twice="" shards="" total="" polled=""
  for ((i = 0; i < 900; i++)); do
    series=$(prom_value "$prometheus_port" 'count(count by (collector, account) (balance_exporter_collector_success{job="balance-exporter-sharded"}))')
    twice=$(prom_value "$prometheus_port" 'count(count by (collector, account) (balance_exporter_collector_success) > 1)')
    shards=$(prom_value "$prometheus_port" 'count(up{job="balance-exporter-sharded"} == 1)')
    total=$(prom_value "$prometheus_port" 'max(balance_exporter_total_shards)')
    polled=$(prom_value "$prometheus_port" 'sum(balance_exporter_accounts)')
    if [[ $series == "$accounts" && $twice == none && $shards == 3 && $total == 3 && $polled == "$accounts" ]]; then
      echo "Prometheus sees $series accounts from $shards shards, none twice; sum(balance_exporter_accounts) = $polled"
      return 0
    fi
    sleep 0.1
  done
  echo "after 900 tries: accounts $series (want $accounts), polled twice $twice, shards up $shards, total $total, polled $polled"
  cat "$dir/prometheus.log"
  return 1
}

# --- main ------------------------------------------------------------------

mkdir -p "$tools"
install_debian_packages
install_python_tools
install_node_tools

failed=()
run_check() {
  local name=$1
  printf '\n=== %s\n' "$name"
  ("$name") &
  if wait $!; then
    echo "--- PASS $name"
  else
    echo "--- FAIL $name"
    failed+=("$name")
  fi
}

run_check check_shell
run_check check_yaml
run_check check_rules
run_check check_prometheus_alertmanager_examples
run_check check_dashboard
run_check check_kubernetes
run_check check_dockerfile
if [[ -x $bin ]]; then
  run_check check_systemd
  run_check check_config_example
  run_check check_live
  run_check check_live_shards
else
  echo "exporter binary $bin not found: build it (cargo build --release) or set BALANCE_EXPORTER_BIN"
  failed+=("exporter binary")
fi

echo
if ((${#failed[@]} > 0)); then
  echo "ops checks failed: ${failed[*]}"
  exit 1
fi
echo "all ops checks passed"
