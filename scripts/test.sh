#!/usr/bin/env bash
# The whole test suite. On a fresh machine it first installs what the tests need
# (Debian packages with apt-get, crates through cargo), then runs every check.
set -euo pipefail
cd "$(dirname "$0")/.."

# Install Debian packages that are missing (needs root, as on CI).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    if [ ! -f /var/lib/apt/lists/.balance-exporter-updated ]; then
      apt-get update -qq
      touch /var/lib/apt/lists/.balance-exporter-updated
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

step() { echo; echo "==> $*"; }

# promtool (package prometheus) checks the exposition in the Rust tests;
# systemd-socket-activate (package systemd) hands the exporter its socket in one.
apt_install prometheus systemd
export PROMTOOL="${PROMTOOL:-$(command -v promtool)}"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked

step "cargo build --release"
cargo build --locked --release
export BALANCE_EXPORTER_BIN="$PWD/target/release/balance-exporter"

step "the release build carries no simulator test surface (feature test-control off)"
cargo build --locked --release --message-format=json | python3 -c '
import json, sys
built = [m for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact"
         and m["target"]["name"] in ("balance_exporter", "balance-exporter")]
for m in built:
    print(m["target"]["name"], "features:", m["features"])
sys.exit(0 if built and all(not m["features"] for m in built) else 1)'

step "end to end against an independent simulator (scripts/e2e)"
python3 scripts/e2e/check.py "$BALANCE_EXPORTER_BIN"

step "status page in headless Chromium (scripts/status-page.sh)"
apt_install chromium curl
bash scripts/status-page.sh "$BALANCE_EXPORTER_BIN"

step "operations kit: rules, dashboard, Kubernetes, Docker, systemd (scripts/ops)"
bash scripts/ops/test.sh

step "release artefacts: Debian packages, images, arm64 (scripts/package-test.sh)"
bash scripts/package-test.sh

step "shellcheck"
apt_install shellcheck
shellcheck scripts/*.sh scripts/ops/*.sh scripts/lib/*.sh .ci/run

echo
echo "==> all checks passed"
