#!/usr/bin/env bash
# The status page as a person sees it. Runs `--demo` with the Yeastar client secret
# broken on purpose (BALANCE_EXPORTER_DEMO_FAULT=yeastar-secret-echo: the embedded
# simulator also repeats the wrong secret in its error, as a careless upstream might),
# loads /status in headless Chromium, and checks the rendered DOM: the failing row
# with its reason, vendor code and message, the healthy rows, and no secret. The
# screenshots stay as test artifacts: target/status-page.png (desktop) and
# target/status-page-phone.png (a phone-sized window).
#
# Usage: scripts/status-page.sh [exporter binary]   (needs chromium, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-${BALANCE_EXPORTER_BIN:-target/release/balance-exporter}}
chromium=${CHROMIUM:-$(command -v chromium || true)}
[[ -x $bin ]] || { echo "exporter binary $bin not found (cargo build --release)"; exit 1; }
[[ -n $chromium ]] || { echo "chromium not found: install the Debian package chromium"; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
BALANCE_EXPORTER_DEMO_FAULT=yeastar-secret-echo "$bin" --demo \
  --web.listen-address "127.0.0.1:$port" >"$work/exporter.log" 2>&1 &
pid=$!

# Ready = every collector has finished its first attempt, the failing one included.
ready=0
for ((i = 0; i < 600; i++)); do
  if curl -fsS "$base/-/ready" >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if ((ready == 0)); then
  echo "the exporter never became ready:"
  cat "$work/exporter.log"
  exit 1
fi

chrome() {
  local profile
  profile=$(mktemp -d -p "$work")
  timeout 180 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" "$@" 2>>"$work/chromium.log"
}

mkdir -p target
rm -f target/status-page.png target/status-page-phone.png
chrome --dump-dom "$base/status" >"$work/dom.html" || { cat "$work/chromium.log"; exit 1; }
chrome --screenshot="$PWD/target/status-page.png" --window-size=1280,860 "$base/status" >/dev/null ||
  { cat "$work/chromium.log"; exit 1; }
chrome --screenshot="$PWD/target/status-page-phone.png" --window-size=390,1400 "$base/status?state=failing" >/dev/null ||
  { cat "$work/chromium.log"; exit 1; }

python3 - "$work/dom.html" <<'PY'
import sys
from html.parser import HTMLParser

class Rows(HTMLParser):
    """The text of each table row, by its id."""
    def __init__(self):
        super().__init__()
        self.rows, self.current, self.state = {}, None, {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "id" in a:
            self.current = a["id"]
            self.rows[self.current] = ""
            self.state[self.current] = a.get("data-state")
    def handle_endtag(self, tag):
        if tag == "tr":
            self.current = None
    def handle_data(self, data):
        if self.current:
            self.rows[self.current] += data + " "

dom = open(sys.argv[1], encoding="utf-8").read()
p = Rows()
p.feed(dom)
problems = []
if "balance-exporter status" not in dom:
    problems.append("no page title in the rendered DOM")
expected = {"demo/yeastar_balance", "demo/acedata_balance", "demo/acedata_distribution_status",
            "demo/acedata_distribution_levels", "demo/acedata_distribution_history",
            "demo/acedata_applications", "demo/acedata_usage", "demo/acedata_orders",
            "demo/acedata_auto_recharge"}
if set(p.rows) != expected:
    problems.append(f"rows {sorted(p.rows)}, expected {sorted(expected)}")
failing = p.rows.get("demo/yeastar_balance", "")
if p.state.get("demo/yeastar_balance") != "failing":
    problems.append(f"yeastar_balance is {p.state.get('demo/yeastar_balance')!r}, not failing")
for needle in ["failing", "api_error", "invalid_client", "Invalid client_secret [redacted]", "requestId"]:
    if needle not in failing:
        problems.append(f"failing row lacks {needle!r}: {failing!r}")
for rid in expected - {"demo/yeastar_balance"}:
    if p.state.get(rid) != "ok":
        problems.append(f"{rid} is {p.state.get(rid)!r}, not ok")
for secret in ["demo-wrong-yeastar-secret-4c1d", "demo-yeastar-client-secret", "demo-acedata-platform-token",
               "sk-never-export-this"]:
    if secret in dom:
        problems.append(f"secret {secret} in the page")
if "<script" in dom:
    problems.append("the page has a script")
if problems:
    print("\n".join(problems))
    print(dom)
    sys.exit(1)
print(f"rendered /status: {len(p.rows)} rows; demo/yeastar_balance failing:", " ".join(failing.split()))
PY

for png in target/status-page.png target/status-page-phone.png; do
  [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || { echo "$png is not a PNG"; exit 1; }
  echo "screenshot: $png ($(wc -c <"$png") bytes)"
done
