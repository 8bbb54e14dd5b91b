#!/usr/bin/env bash
# Fuzz every upstream response parser and the config loader with cargo-fuzz (libFuzzer),
# each for a bounded time, keeping the corpus in fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh                 every target, 60 s each
#   FUZZ_SECONDS=10 scripts/fuzz.sh acedata_balance config_yaml
#
# The committed corpus files (fuzz/corpus/<target>/seed-*) are the vendors' JSON
# examples from the API documents and the example configuration; inputs the fuzzer
# finds are kept next to them (ignored by git). A crash leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit non-zero.
#
# cargo-fuzz needs a nightly compiler (for -Zsanitizer). A nightly toolchain is used
# when rustup has one; otherwise (or with FUZZ_TOOLCHAIN=stable) the stable compiler
# runs with RUSTC_BOOTSTRAP=1, which unlocks the same unstable flags.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
all_targets=(
  acedata_balance
  acedata_statuses
  acedata_levels
  acedata_history_page
  acedata_usage
  acedata_orders
  acedata_auto_recharge
  yeastar_balance
  yeastar_token
  config_yaml
)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

toolchain=()
if [ "${FUZZ_TOOLCHAIN:-auto}" != stable ] && rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
  echo "==> using $(rustup run nightly rustc --version)"
else
  export RUSTC_BOOTSTRAP=1
  echo "==> no nightly toolchain: using $(rustc --version) with RUSTC_BOOTSTRAP=1"
fi

# Build every target in one go (a sanitizer build of the whole crate: the slow part);
# `cargo fuzz run` below then finds them up to date.
echo "==> building the fuzz targets"
cargo "${toolchain[@]}" fuzz build

failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  before=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "==> fuzzing $t for ${seconds}s"
  # -rss_limit_mb bounds memory: a parser must not blow up on any input.
  if cargo "${toolchain[@]}" fuzz run "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 \
      -print_final_stats=1 2>"fuzz/$t.log"; then
    after=$(find "fuzz/corpus/$t" -type f | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/$t.log" | grep -o '[0-9]*$' || echo "?")
    echo "    ok: $runs executions, corpus $before -> $after inputs"
    rm -f "fuzz/$t.log"
  else
    echo "    FAILED: see fuzz/$t.log and fuzz/artifacts/$t/"
    tail -n 30 "fuzz/$t.log"
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}"
  exit 1
fi
echo "fuzzing: ${#targets[@]} target(s), ${seconds}s each, no crash"
