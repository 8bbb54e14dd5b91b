#!/usr/bin/env bash
# Load check: wrk on /metrics against the release binary in --demo (its collectors poll
# the embedded simulator every 10 s throughout). Fails on any request error or non-2xx
# answer, on a collector that failed, and when the resident memory grew by more than
# a small bound between before and after the run (after a short warm-up).
#
#   scripts/load.sh
#   LOAD_SECONDS=60 LOAD_CONNECTIONS=128 LOAD_MAX_RSS_GROWTH_KIB=8192 scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${LOAD_SECONDS:-30}"
connections="${LOAD_CONNECTIONS:-64}"
max_growth_kib="${LOAD_MAX_RSS_GROWTH_KIB:-8192}"
warmup="${LOAD_WARMUP_SECONDS:-5}"

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing wrk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is missing: apt-get install wrk" >&2
    exit 2
  fi
fi

echo "==> cargo build --release"
cargo build --release --locked --quiet
bin=target/release/balance-exporter

work=$(mktemp -d)
pid=
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" --demo --web.listen-address 127.0.0.1:0 --log.level info --log.format logfmt \
  2>"$work/log" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*message=listening address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/log" | head -n 1)
  [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
if [ -z "$port" ] || ! curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then
  echo "the exporter did not become ready" >&2
  cat "$work/log" >&2
  exit 1
fi
url="http://127.0.0.1:$port/metrics"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

echo "==> warm-up: ${warmup}s"
wrk -t2 -c"$connections" -d"${warmup}s" "$url" >/dev/null
rss_before=$(rss)

echo "==> wrk -t2 -c$connections -d${seconds}s $url"
wrk -t2 -c"$connections" -d"${seconds}s" --latency "$url" | tee "$work/wrk"
rss_after=$(rss)

requests=$(awk '/requests in/ {print $1}' "$work/wrk")
rate=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk")
socket_errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$work/wrk")
non_2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk")
socket_errors=${socket_errors:-0}
non_2xx=${non_2xx:-0}
growth=$((rss_after - rss_before))
failed_collectors=$(curl -fsS "$url" | awk '/^balance_exporter_collector_success/ && $2 != "1"' | wc -l)

echo
echo "requests:           $requests ($rate/s)"
echo "socket errors:      $socket_errors"
echo "non-2xx answers:    $non_2xx"
echo "RSS before/after:   ${rss_before} KiB / ${rss_after} KiB (growth ${growth} KiB, bound ${max_growth_kib} KiB)"
echo "failed collectors:  $failed_collectors"

status=0
[ "$socket_errors" -eq 0 ] || { echo "FAIL: socket errors"; status=1; }
[ "$non_2xx" -eq 0 ] || { echo "FAIL: non-2xx answers"; status=1; }
[ "$growth" -le "$max_growth_kib" ] || { echo "FAIL: memory grew by ${growth} KiB"; status=1; }
[ "$failed_collectors" -eq 0 ] || { echo "FAIL: collectors failed during the run"; status=1; }

kill -TERM "$pid"
wait "$pid" || { echo "FAIL: the exporter did not exit cleanly"; status=1; }
pid=
[ "$status" -eq 0 ] && echo "load check passed"
exit "$status"
