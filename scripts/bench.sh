#!/usr/bin/env bash
# Measure balance-exporter on this machine and print one table (method: BENCHMARKS.md).
#
#   scripts/bench.sh             build (release, and the musl target when installed), then measure
#   scripts/bench.sh --no-build  measure the binaries already in target/
#
# Environment:
#   EXPORTER_BIN     exporter binary to measure (default target/release/balance-exporter)
#   MUSL_BIN         musl binary to measure (default target/x86_64-unknown-linux-musl/release/…)
#   SIM_BIN          simulator binary (default target/release/examples/balance-sim)
#   BENCH_DURATION   seconds of each wrk run (default 3)
#   BENCH_ROUNDS     wrk runs per server and connection count, alternating (default 3)
#   BENCH_MUSL       0 to skip building and measuring the musl binary
#   BENCH_ONLY_SCALE 1 to measure only section 6 (10,000 accounts, shards)
#   BENCH_COLLECTORS section 6 only: the Ace Data Cloud collectors each account runs
#                    (comma-separated, as balance-sim --collectors); default: all of them
#
# Everything runs on 127.0.0.1 and every process started here is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=1
[[ "${1:-}" == "--no-build" ]] && BUILD=0
DURATION=${BENCH_DURATION:-3}
ROUNDS=${BENCH_ROUNDS:-3}
MUSL_TARGET=x86_64-unknown-linux-musl
EXPORTER_BIN=${EXPORTER_BIN:-$ROOT/target/release/balance-exporter}
MUSL_BIN=${MUSL_BIN:-$ROOT/target/$MUSL_TARGET/release/balance-exporter}
SIM_BIN=${SIM_BIN:-$ROOT/target/release/examples/balance-sim}
BENCH_MUSL=${BENCH_MUSL:-1}
ONLY_SCALE=${BENCH_ONLY_SCALE:-0}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools ---------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- build ---------------------------------------------------------------------------
musl_available() {
    command -v musl-gcc >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET"
}
if ((BUILD)); then
    log "building the release binary and the simulator (LTO: this takes a while)"
    # Two invocations: building the example pulls in dev-dependencies, whose features
    # would otherwise be unified into the exporter binary (and change its size).
    cargo build --release --locked --bin balance-exporter >&2
    cargo build --release --locked --features test-control --example balance-sim >&2
    if [[ "$BENCH_MUSL" != 0 ]] && musl_available; then
        log "building the static musl binary"
        cargo build --release --locked --target "$MUSL_TARGET" --bin balance-exporter >&2
    fi
fi
[[ -x "$EXPORTER_BIN" ]] || die "no exporter binary at $EXPORTER_BIN"
[[ -x "$SIM_BIN" ]] || die "no simulator binary at $SIM_BIN"
HAVE_MUSL=0
[[ "$BENCH_MUSL" != 0 && -x "$MUSL_BIN" ]] && HAVE_MUSL=1

# --- process bookkeeping -------------------------------------------------------------
WORK=$(mktemp -d /tmp/balance-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() { # stop PID and forget it
    local pid=$1 p keep=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ "$p" != "$pid" ]] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
NEXT_PORT=$((20000 + RANDOM % 20000))
free_port() {
    while ! port_free "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    echo "$NEXT_PORT"
    NEXT_PORT=$((NEXT_PORT + 1))
}

now_ns() { date +%s%N; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN {printf "%.0f", (b - a) / 1e6}'; }

# wait_ok URL SECONDS [PID]: poll URL until it answers 2xx; fail after SECONDS or when
# PID has exited.
wait_ok() {
    local url=$1 deadline=$(($(date +%s) + $2)) pid=${3:-}
    until curl -fs -o /dev/null "$url"; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail -5 "$WORK/exporter.log" >&2
            die "process $pid exited before $url answered"
        fi
        (($(date +%s) < deadline)) || die "$url not ready within $2 s"
    done
}

# Start the simulator with flags; sets SIM_PID and SIM_URL.
start_sim() {
    local out=$WORK/sim.$RANDOM.log
    rm -f "$WORK/stats.json"
    "$SIM_BIN" --stats-file "$WORK/stats.json" "$@" >"$out" 2>&1 &
    SIM_PID=$!
    PIDS+=("$SIM_PID")
    for _ in $(seq 1 600); do
        SIM_URL=$(sed -n 's/^balance-sim listening on //p' "$out")
        [[ -n "$SIM_URL" && -s "$WORK/stats.json" ]] && return 0
        sleep 0.05
    done
    cat "$out" >&2
    die "the simulator did not start"
}

# simstat NAME: a field of the simulator's stats file.
simstat() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$WORK/stats.json"; }

# Start an exporter binary with arguments; sets EXP_PID, EXP_URL.
start_exporter() {
    local bin=$1
    shift
    local port
    port=$(free_port)
    "$bin" --web.listen-address="127.0.0.1:$port" --log.level=error "$@" >>"$WORK/exporter.log" 2>&1 &
    EXP_PID=$!
    PIDS+=("$EXP_PID")
    EXP_URL=http://127.0.0.1:$port
}

declare -A R # results
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)

if ((ONLY_SCALE == 0)); then
# --- 5. start-up, 2. idle RSS --------------------------------------------------------
log "start-up to /-/ready in demo mode (5 runs)"
startups=()
for run in 1 2 3 4 5; do
    t0=$(now_ns)
    start_exporter "$EXPORTER_BIN" --demo
    wait_ok "$EXP_URL/-/ready" 30 "$EXP_PID"
    startups+=("$(ms_since "$t0")")
    ((run == 5)) || stop "$EXP_PID"
done
R[startup]=$(printf '%s\n' "${startups[@]}" | sort -n | sed -n 3p)
R[startup_max]=$(printf '%s\n' "${startups[@]}" | sort -n | tail -1)
curl -fs -o /dev/null "$EXP_URL/metrics"
sleep 3
R[rss_idle]=$(rss_kib "$EXP_PID")
DEMO_PID=$EXP_PID
DEMO_URL=$EXP_URL

# --- 1. /metrics throughput against nginx serving the same bytes ---------------------
mkdir -p "$WORK/www" "$WORK/nginx"
curl -fs "$DEMO_URL/metrics" -o "$WORK/www/metrics"
chmod 644 "$WORK/www/metrics"
R[body]=$(stat -c %s "$WORK/www/metrics" 2>/dev/null || wc -c <"$WORK/www/metrics")
NGINX_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    types { }
    default_type "text/plain; version=0.0.4; charset=utf-8";
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        location = /metrics { }
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_ok "http://127.0.0.1:$NGINX_PORT/metrics" 10

# to_ms "123.45us" → milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
# run_wrk KEY URL CONNECTIONS: one wrk run; appends "rps p50 p99" to R[KEY_runs].
run_wrk() {
    local key=$1 url=$2 c=$3 threads=2 out err
    ((c < 2)) && threads=1
    out=$(wrk -t"$threads" -c"$c" -d"${DURATION}s" --latency "$url")
    err=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    [[ -z "$err" ]] || log "$key: $err"
    R[${key}_runs]+="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out") $(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
"
}
# median KEY: R[KEY_rps|p50|p99] = the median of each column over the runs.
median() {
    local key=$1 col name
    for col in 1 2 3; do
        name=$(sed -n "${col}p" <<<$'rps\np50\np99')
        R[${key}_$name]=$(awk -v c="$col" 'NF {print $c}' <<<"${R[${key}_runs]}" | sort -g |
            awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    done
}
# Each server gets ROUNDS runs per connection count, alternating with the other, so that
# a burst of load from outside lands on both; the table shows the medians.
for c in 1 16 64; do
    log "wrk: $c connection(s), $ROUNDS rounds of ${DURATION}s, exporter and nginx alternating"
    threads=2
    ((c < 2)) && threads=1
    wrk -t"$threads" -c"$c" -d1s "$DEMO_URL/metrics" >/dev/null 2>&1 || true # warm-up
    wrk -t"$threads" -c"$c" -d1s "http://127.0.0.1:$NGINX_PORT/metrics" >/dev/null 2>&1 || true
    for _ in $(seq 1 "$ROUNDS"); do
        run_wrk "exp$c" "$DEMO_URL/metrics" "$c"
        run_wrk "ngx$c" "http://127.0.0.1:$NGINX_PORT/metrics" "$c"
    done
    median "exp$c"
    median "ngx$c"
done
R[rss_loaded]=$(rss_kib "$DEMO_PID")
R[rss_hwm]=$(awk '/^VmHWM:/ {print $2}' "/proc/$DEMO_PID/status")
stop "$DEMO_PID"

if ((HAVE_MUSL)); then
    log "static musl binary: idle RSS and wrk at 64 connections"
    start_exporter "$MUSL_BIN" --demo
    wait_ok "$EXP_URL/-/ready" 30 "$EXP_PID"
    curl -fs -o /dev/null "$EXP_URL/metrics"
    sleep 3
    R[musl_rss_idle]=$(rss_kib "$EXP_PID")
    wrk -t2 -c64 -d1s "$EXP_URL/metrics" >/dev/null 2>&1 || true # warm-up
    for _ in $(seq 1 "$ROUNDS"); do run_wrk musl64 "$EXP_URL/metrics" 64; done
    median musl64
    R[musl_rss_loaded]=$(rss_kib "$EXP_PID")
    stop "$EXP_PID"
fi
stop "$NGINX_PID"

# --- 3. 1,000 accounts, 50 ms upstream latency; 2. RSS at 1,000 accounts -------------
for conc in 16 64; do
    log "1000 accounts, 50 ms latency, max_concurrent_requests $conc"
    start_sim --acedata-accounts 1000 --latency 50ms --max-concurrent-requests "$conc" \
        --interval 10m --config-out "$WORK/scale.yaml"
    t0=$(now_ns)
    start_exporter "$EXPORTER_BIN" --config.file="$WORK/scale.yaml"
    wait_ok "$EXP_URL/-/ready" 120 "$EXP_PID"
    R[cycle$conc]=$(ms_since "$t0")
    sleep 0.2
    R[cycle${conc}_req]=$(simstat total)
    R[cycle${conc}_peak]=$(simstat max_in_flight)
    R[cycle${conc}_ideal]=$(awk -v r="${R[cycle${conc}_req]}" -v c="$conc" 'BEGIN {printf "%.0f", r / c * 50}')
    t1=$(now_ns)
    curl -fs "$EXP_URL/metrics" -o "$WORK/scale.txt"
    R[scale_scrape_first]=$(ms_since "$t1")
    t1=$(now_ns)
    curl -fs -o /dev/null "$EXP_URL/metrics"
    R[scale_scrape_cached]=$(ms_since "$t1")
    R[scale_body]=$(wc -c <"$WORK/scale.txt")
    R[scale_series]=$(grep -vc '^#' "$WORK/scale.txt")
    sleep 2
    R[rss_1000_$conc]=$(rss_kib "$EXP_PID")
    R[hwm_1000_$conc]=$(awk '/^VmHWM:/ {print $2}' "/proc/$EXP_PID/status")
    stop "$EXP_PID"
    stop "$SIM_PID"
done

# --- 4. commission history: N records ------------------------------------------------
for n in 1000 100000; do
    log "commission history with $n records"
    start_sim --acedata-accounts 1 --history-records "$n" --collectors distribution_history \
        --interval 2s --config-out "$WORK/history.yaml"
    t0=$(now_ns)
    start_exporter "$EXPORTER_BIN" --config.file="$WORK/history.yaml"
    wait_ok "$EXP_URL/-/ready" 120 "$EXP_PID"
    R[hist${n}_ms]=$(ms_since "$t0")
    sleep 0.2
    R[hist${n}_req]=$(simstat AcedataHistory)
    # Steady cycles (2 s interval): note the request count each time the collector's
    # last-success timestamp moves, and divide by the cycles between the first and the
    # last move.
    last="" moves=0 req_first="" req_last=""
    for _ in $(seq 1 80); do
        curl -fs "$EXP_URL/metrics" -o "$WORK/history.txt"
        ts=$(sed -n 's/^balance_exporter_collector_last_success_timestamp_seconds{account="sim-1",collector="acedata_distribution_history"} //p' "$WORK/history.txt")
        if [[ -n "$last" && "$ts" != "$last" ]]; then
            sleep 0.1 # the stats file is rewritten every 50 ms
            req_last=$(simstat AcedataHistory)
            [[ -z "$req_first" ]] && req_first=$req_last
            moves=$((moves + 1))
            ((moves == 4)) && break
        fi
        last=$ts
        sleep 0.1
    done
    ((moves >= 2)) || die "history collector did not run steady cycles"
    R[hist${n}_steady]=$(awk -v a="$req_last" -v b="$req_first" -v k="$((moves - 1))" 'BEGIN {printf "%.2f", (a - b) / k}')
    R[hist${n}_rss]=$(rss_kib "$EXP_PID")
    curl -fs "$EXP_URL/metrics" -o "$WORK/history.txt"
    grep -q 'acedata_distribution_history_records{account="sim-1",invalid="false"}' "$WORK/history.txt" ||
        die "history metrics missing"
    stop "$EXP_PID"
    stop "$SIM_PID"
done

fi # ONLY_SCALE

# --- 6. 10,000 accounts in one process; 3 shards of them ------------------------------
# 10,000 Ace Data Cloud accounts (all collectors) and 1,000 Yeastar accounts on a
# simulator without latency, concurrency 64.
# scrape_time URL [ACCEPT]: curl's total time of one scrape, in ms.
scrape_time() {
    local enc=()
    [[ -n "${2:-}" ]] && enc=(-H "Accept-Encoding: $2")
    curl -fs "${enc[@]}" -o /dev/null -w '%{time_total}' "$1" | awk '{printf "%.1f", $1 * 1000}'
}
# median_of COMMAND...: the median of five runs of a command that prints a number.
median_of() {
    local i
    for i in 1 2 3 4 5; do "$@"; echo; done | sort -g | sed -n 3p
}
log "10000 accounts (+1000 Yeastar), concurrency 64"
SCALE_COLLECTORS=()
[[ -n "${BENCH_COLLECTORS:-}" ]] && SCALE_COLLECTORS=(--collectors "$BENCH_COLLECTORS")
start_sim --acedata-accounts 10000 --yeastar-accounts 1000 --max-concurrent-requests 64 \
    --interval 10m --config-out "$WORK/big.yaml" "${SCALE_COLLECTORS[@]}"
t0=$(now_ns)
start_exporter "$EXPORTER_BIN" --config.file="$WORK/big.yaml"
wait_ok "$EXP_URL/-/ready" 900 "$EXP_PID"
R[big_cycle]=$(ms_since "$t0")
R[big_req]=$(simstat total)
t1=$(now_ns)
curl -fs "$EXP_URL/metrics" -o "$WORK/big.txt"
R[big_first]=$(ms_since "$t1")
R[big_series]=$(grep -vc '^#' "$WORK/big.txt")
R[big_plain]=$(wc -c <"$WORK/big.txt")
rm -f "$WORK/big.txt"
curl -fs -H 'Accept-Encoding: gzip' -D "$WORK/big.headers" -o "$WORK/big.gz" "$EXP_URL/metrics"
R[big_gzip]=$(wc -c <"$WORK/big.gz")
R[big_gzip_note]=""
grep -qi '^content-encoding: gzip' "$WORK/big.headers" || R[big_gzip_note]=" (not compressed)"
R[big_gzip_cached]=$(median_of scrape_time "$EXP_URL/metrics" gzip)
R[big_plain_cached]=$(median_of scrape_time "$EXP_URL/metrics")
# Prometheus-like load: a gzip scrape every second for 20 s, then the RSS.
for _ in $(seq 1 20); do
    curl -fs -H 'Accept-Encoding: gzip' -o /dev/null "$EXP_URL/metrics"
    sleep 1
done
R[big_rss]=$(rss_kib "$EXP_PID")
R[big_hwm]=$(awk '/^VmHWM:/ {print $2}' "/proc/$EXP_PID/status")
stop "$EXP_PID"

# The same accounts polled every 30 s, so that the next cycles (51,000 attempts each)
# run while a gzip scrape comes every second for 60 s: each scrape after a poll
# re-encodes and re-compresses the whole text. Meanwhile /-/healthy is probed 100
# times a second on one keep-alive connection (curl --rate): a server that encodes on
# its async workers, or whose metric writes wait for the encoder, answers it late.
# RSS and peak after it, the scrape times and the probes' p99 and slowest.
log "10000 accounts polled every 30 s: gzip scrapes every second and /-/healthy 100/s for 60 s"
sed 's/^  interval: 10m$/  interval: 30s/' "$WORK/big.yaml" >"$WORK/busy.yaml"
grep -q '^  interval: 30s$' "$WORK/busy.yaml" || die "no interval to change in $WORK/big.yaml"
start_exporter "$EXPORTER_BIN" --config.file="$WORK/busy.yaml"
wait_ok "$EXP_URL/-/ready" 900 "$EXP_PID"
req0=$(simstat total)
curl -s --rate 100/s -w 'T %{time_total}\n' "$EXP_URL/-/healthy?[1-6000]" >"$WORK/healthy.txt" &
PROBE_PID=$!
PIDS+=("$PROBE_PID")
busy_times=""
for _ in $(seq 1 60); do
    busy_times+="$(scrape_time "$EXP_URL/metrics" gzip) "
    sleep 1
done
wait "$PROBE_PID" || true
R[busy_req]=$(($(simstat total) - req0))
R[busy_rss]=$(rss_kib "$EXP_PID")
R[busy_hwm]=$(awk '/^VmHWM:/ {print $2}' "/proc/$EXP_PID/status")
R[busy_slow]=$(tr ' ' '\n' <<<"$busy_times" | sed '/^$/d' | sort -g | tail -1)
R[busy_median]=$(tr ' ' '\n' <<<"$busy_times" | sed '/^$/d' | sort -g | sed -n 30p)
# Probe times in ms, sorted: the count, p99 (nearest rank) and the slowest.
awk '$1 == "T" {printf "%.3f\n", $2 * 1000}' "$WORK/healthy.txt" | sort -g >"$WORK/healthy.ms"
R[healthy_n]=$(wc -l <"$WORK/healthy.ms")
R[healthy_p99]=$(awk -v n="${R[healthy_n]}" 'NR == int(n * 0.99 + 0.999) {print; exit}' "$WORK/healthy.ms")
R[healthy_max]=$(tail -1 "$WORK/healthy.ms")
stop "$EXP_PID"

SHARD_PIDS=() SHARD_URLS=()
R[sh_cycle]="n/a" R[sh_series]="n/a" R[sh_gzip]="n/a" R[sh_rss]="n/a" R[sh_cached]="n/a"
if "$EXPORTER_BIN" --help | grep -q -- --total-shards; then
log "3 shards of the same 11,000 accounts"

t0=$(now_ns)
for i in 0 1 2; do
    start_exporter "$EXPORTER_BIN" --config.file="$WORK/big.yaml" --shard="$i" --total-shards=3
    # Listening before the next one picks a port (free_port runs in a subshell).
    wait_ok "$EXP_URL/-/healthy" 30 "$EXP_PID"
    SHARD_PIDS+=("$EXP_PID")
    SHARD_URLS+=("$EXP_URL")
done
for i in 0 1 2; do wait_ok "${SHARD_URLS[$i]}/-/ready" 900 "${SHARD_PIDS[$i]}"; done
R[sh_cycle]="$(ms_since "$t0") ms"
R[sh_series]="" R[sh_gzip]="" R[sh_rss]="" R[sh_cached]=""
for i in 0 1 2; do
    url=${SHARD_URLS[$i]}
    R[sh_series]+="$(curl -fs "$url/metrics" | grep -vc '^#') "
    R[sh_gzip]+="$(curl -fs -H 'Accept-Encoding: gzip' "$url/metrics" | wc -c) "
    R[sh_cached]+="$(median_of scrape_time "$url/metrics" gzip) "
done
for _ in $(seq 1 20); do
    for i in 0 1 2; do curl -fs -H 'Accept-Encoding: gzip' -o /dev/null "${SHARD_URLS[$i]}/metrics"; done
    sleep 1
done
for i in 0 1 2; do R[sh_rss]+="$(mib "$(rss_kib "${SHARD_PIDS[$i]}")") "; done
for i in 0 1 2; do stop "${SHARD_PIDS[$i]}"; done
else
    log "$EXPORTER_BIN has no --total-shards: no shard rows"
fi
stop "$SIM_PID"

# --- 5. sizes ------------------------------------------------------------------------
R[size]=$(stat -c %s "$EXPORTER_BIN")
if ((HAVE_MUSL)); then
    R[musl_size]=$(stat -c %s "$MUSL_BIN")
    R[musl_static]=$(file -b "$MUSL_BIN" 2>/dev/null | grep -o 'static[a-z-]*' | head -1 || true)
fi
DOCKERFILE=$ROOT/deploy/docker/Dockerfile
R[image_copy]="n/a (no $DOCKERFILE)"
if [[ -f "$DOCKERFILE" ]]; then
    # COPY lines of the last stage.
    R[image_copy]=$(awk '/^FROM/ {c = ""} /^COPY/ {c = c $0 "; "} END {print c}' "$DOCKERFILE")
fi

# --- the table -----------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
ok() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
    r = (op == "<=") ? (v + 0 <= t + 0) : (v + 0 >= t + 0); print (r ? "yes" : "NO") }'; }
MiB=1048576

echo
echo "balance-exporter benchmark - $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $("$EXPORTER_BIN" --version 2>/dev/null | head -1)"
echo "wrk: median of $ROUNDS alternating runs of ${DURATION}s; /metrics body ${R[body]:-n/a} bytes (demo accounts); load average at start: ${LOAD_START}"
echo "10,000-account collectors: ${BENCH_COLLECTORS:-all (the default)}"
echo
printf '| %-58s | %-26s | %-16s | %-4s |\n' "measure" "value" "target" "met"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..60})" "$(printf -- '-%.0s' {1..28})" "$(printf -- '-%.0s' {1..18})" "------"
row() { printf '| %-58s | %-26s | %-16s | %-4s |\n' "$1" "$2" "$3" "$4"; }
if ((ONLY_SCALE == 0)); then
for c in 1 16 64; do
    ex=${R[exp${c}_rps]} ng=${R[ngx${c}_rps]}
    rt=$(ratio "$ex" "$ng")
    row "1. /metrics c=$c: req/s exporter / nginx (ratio)" "$ex / $ng (${rt}x)" ">= 0.9x" "$(ok "$rt" 0.9 '>=')"
    if ((c == 64)); then
        row "1. /metrics c=$c: p50 / p99 ms exporter" "${R[exp${c}_p50]} / ${R[exp${c}_p99]}" "p99 < 2 ms" "$(ok "${R[exp${c}_p99]}" 1.999 '<=')"
    else
        row "1. /metrics c=$c: p50 / p99 ms exporter" "${R[exp${c}_p50]} / ${R[exp${c}_p99]}" "" ""
    fi
    row "1. /metrics c=$c: p50 / p99 ms nginx" "${R[ngx${c}_p50]} / ${R[ngx${c}_p99]}" "" ""
done
if ((HAVE_MUSL)); then
    rt=$(ratio "${R[musl64_rps]}" "${R[ngx64_rps]}")
    row "1. musl binary c=64: req/s (ratio to nginx), p99 ms" "${R[musl64_rps]} (${rt}x), ${R[musl64_p99]}" "" ""
fi
row "2. RSS idle, demo accounts (glibc)" "$(mib "${R[rss_idle]}") MiB" "<= 8 MiB" "$(ok "${R[rss_idle]}" 8192 '<=')"
row "2. RSS after the wrk runs / peak (glibc)" "$(mib "${R[rss_loaded]}") / $(mib "${R[rss_hwm]}") MiB" "" ""
if ((HAVE_MUSL)); then
    row "2. RSS idle / after wrk c=64, demo (musl)" "$(mib "${R[musl_rss_idle]}") / $(mib "${R[musl_rss_loaded]}") MiB" "<= 8 MiB" "$(ok "${R[musl_rss_idle]}" 8192 '<=')"
fi
for conc in 16 64; do
    row "2. RSS, 1000 accounts polled (conc $conc) / peak" "$(mib "${R[rss_1000_$conc]}") / $(mib "${R[hwm_1000_$conc]}") MiB" "<= 32 MiB" "$(ok "${R[rss_1000_$conc]}" 32768 '<=')"
done
for conc in 16 64; do
    early="" requests=${R[cycle${conc}_req]} ideal=${R[cycle${conc}_ideal]}
    ((requests >= 4000)) || early=" EARLY READY"
    row "3. first cycle, 1000 accounts, 50 ms, conc $conc (ideal)" "${R[cycle$conc]} ms ($ideal ms)$early" "<= 2x ideal" "$(ok "${R[cycle$conc]}" "$((2 * ideal))" '<=')"
    row "3.   upstream requests / peak in flight (bound $conc)" "${R[cycle${conc}_req]} / ${R[cycle${conc}_peak]}" "peak <= $conc" "$(ok "${R[cycle${conc}_peak]}" "$conc" '<=')"
done
row "3. 1000 accounts: series / body bytes" "${R[scale_series]} / ${R[scale_body]}" "" ""
row "3. 1000 accounts: first scrape / cached scrape (curl)" "${R[scale_scrape_first]} ms / ${R[scale_scrape_cached]} ms" "" ""
for n in 1000 100000; do
    row "4. history $n records: first sync requests / time" "${R[hist${n}_req]} / ${R[hist${n}_ms]} ms" "" ""
    row "4. history $n records: requests per steady cycle" "${R[hist${n}_steady]}" "<= 2" "$(ok "${R[hist${n}_steady]}" 2 '<=')"
    row "4. history $n records: RSS" "$(mib "${R[hist${n}_rss]}") MiB" "flat with N" ""
done
row "5. start-up to /-/ready, demo (median / max of 5)" "${R[startup]} / ${R[startup_max]} ms" "" ""
row "5. stripped binary, x86_64-unknown-linux-gnu" "$(mib $((R[size] / 1024))) MiB (${R[size]} B)" "<= 8 MiB" "$(ok "${R[size]}" $((8 * MiB)) '<=')"
if ((HAVE_MUSL)); then
    row "5. static binary, $MUSL_TARGET${R[musl_static]:+ (${R[musl_static]})}" "$(mib $((R[musl_size] / 1024))) MiB (${R[musl_size]} B)" "<= 8 MiB" "$(ok "${R[musl_size]}" $((8 * MiB)) '<=')"
else
    row "5. static binary, $MUSL_TARGET" "not built (no musl target)" "<= 8 MiB" ""
fi
fi # ONLY_SCALE
row "6. 10000 accounts: first cycle, conc 64 (upstream requests)" "${R[big_cycle]} ms (${R[big_req]})" "" ""
row "6. 10000 accounts: series" "${R[big_series]}" "" ""
row "6. 10000 accounts: body bytes plain / gzip" "${R[big_plain]} / ${R[big_gzip]}${R[big_gzip_note]}" "" ""
row "6. 10000 accounts: first scrape (plain, curl)" "${R[big_first]} ms" "" ""
row "6. 10000 accounts: cached scrape gzip / plain (median of 5)" "${R[big_gzip_cached]} / ${R[big_plain_cached]} ms" "gzip < 20 ms" "$(ok "${R[big_gzip_cached]}" 20 '<=')"
row "6. 10000 accounts: RSS after 20 s of gzip scrapes / peak" "$(mib "${R[big_rss]}") / $(mib "${R[big_hwm]}") MiB" "<= 64 MiB" "$(ok "${R[big_rss]}" 65536 '<=')"
row "6. 10000 accounts polled every 30 s: upstream requests in 60 s" "${R[busy_req]}" "" ""
row "6.   gzip scrape every 1 s: median / slowest (re-encode)" "${R[busy_median]} / ${R[busy_slow]} ms" "" ""
row "6.   /-/healthy 100/s meanwhile: p99 (of ${R[healthy_n]})" "${R[healthy_p99]} ms" "<= 5 ms" "$(ok "${R[healthy_p99]}" 5 '<=')"
row "6.   /-/healthy 100/s meanwhile: slowest" "${R[healthy_max]} ms" "<= 50 ms" "$(ok "${R[healthy_max]}" 50 '<=')"
row "6.   RSS after 60 s of polls and scrapes / peak" "$(mib "${R[busy_rss]}") / $(mib "${R[busy_hwm]}") MiB" "<= 64 MiB" "$(ok "${R[busy_rss]}" 65536 '<=')"
row "6. 3 shards x 3333: first cycle (all ready)" "${R[sh_cycle]}" "" ""
row "6. 3 shards: series per shard" "${R[sh_series]% }" "" ""
row "6. 3 shards: gzip bytes per shard" "${R[sh_gzip]% }" "" ""
row "6. 3 shards: cached gzip scrape ms per shard" "${R[sh_cached]% }" "" ""
row "6. 3 shards: RSS MiB per shard after 20 s of scrapes" "${R[sh_rss]% }" "" ""
if ((ONLY_SCALE == 0)); then
echo
echo "Docker runtime stage copies: ${R[image_copy]}"
fi
