#!/usr/bin/env bash
# Run the test suite N times in a row (default 5) while a CPU hog keeps every core
# busy, and report how many runs passed and which tests failed.
#
#   bash scripts/stress-tests.sh [N] [--full]
#
# By default each run is `cargo test --locked` (every Rust test: unit, integration,
# the real binary) plus the end-to-end step against the independent simulator. With
# --full each run is the README's whole test command (scripts/test.sh), which adds
# formatting, lints and the operations-kit checks and takes several minutes a run.
# Not part of CI: it is for checking that a change did not make the suite depend on
# timing. Logs of failed runs stay under target/stress/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

runs=5
full=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    ''|*[!0-9]*) echo "usage: $0 [N] [--full]" >&2; exit 2 ;;
    *) runs=$arg ;;
  esac
done

logs=target/stress
rm -rf "$logs"
mkdir -p "$logs"

# Build first, unloaded, so that the runs measure the tests and not the compiler.
cargo test --locked --no-run >/dev/null 2>&1 || { echo "the tests do not build" >&2; exit 1; }
if [ "$full" -eq 0 ]; then
  cargo build --locked --release >/dev/null 2>&1 || { echo "the release build fails" >&2; exit 1; }
fi

hogs=()
stop_hogs() {
  [ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null
  hogs=()
}
trap stop_hogs EXIT INT TERM
cores=$(nproc)
for _ in $(seq "$cores"); do
  yes >/dev/null &
  hogs+=($!)
done
echo "==> $runs runs with $cores CPU hogs running"

one_run() {
  if [ "$full" -eq 1 ]; then
    bash scripts/test.sh
  else
    cargo test --locked --no-fail-fast &&
      python3 scripts/e2e/check.py "$PWD/target/release/balance-exporter"
  fi
}

passed=0
failed=0
failures=()
for i in $(seq "$runs"); do
  log="$logs/run-$i.log"
  started=$(date +%s)
  if one_run >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i: passed in $(($(date +%s) - started)) s"
    rm -f "$log"
  else
    failed=$((failed + 1))
    names=$(grep -E '^test .* \.\.\. FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | sort -u | tr '\n' ' ')
    [ -n "$names" ] || names="(no Rust test failed; see $log)"
    failures+=("run $i: $names")
    echo "run $i: FAILED in $(($(date +%s) - started)) s: $names"
  fi
done
stop_hogs

for f in "${failures[@]}"; do
  echo "  $f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
