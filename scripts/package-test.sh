#!/usr/bin/env bash
# Builds the release artefacts (scripts/package.sh) and proves each with the
# tool its users use: lintian and dpkg for the Debian packages (installed on
# this machine, run, purged), buildah for the container image (run, scraped
# from outside), qemu-user-static for arm64. Fails if any check fails.
#
# Needs root (dpkg -i, apt-get). Installs what it needs when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dist=$root/target/dist
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
pkg=balance-exporter
work=$(mktemp -d)
# Container storage of the checks: the image is loaded from its archive in
# target/dist/, as a user would, not taken from scripts/package.sh's storage.
containers=$root/target/package-test/containers
trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/apt.sh
source "$root/scripts/lib/apt.sh"
# shellcheck source=scripts/lib/http.sh
source "$root/scripts/lib/http.sh"

[[ $(id -u) -eq 0 ]] || { echo "scripts/package-test.sh installs a package: run it as root" >&2; exit 1; }

install_tools() {
  # lintian: the Debian package checker; qemu-user-static: runs the arm64
  # binary; systemd: systemd-analyze; prometheus: promtool; iproute2: ss.
  apt_install_missing lintian qemu-user-static libc6-arm64-cross systemd prometheus curl iproute2 buildah
}

# Prints what CMD... printed and fails unless a line matches PATTERN (grep -E).
expect_line() {
  local pattern=$1 out
  shift
  out=$("$@")
  echo "$out"
  grep -Eq -- "$pattern" <<<"$out" || { echo "expected a line matching $pattern"; return 1; }
}

# /metrics of a --demo exporter at PORT: both vendors' series, valid for promtool.
check_demo_metrics() {
  local port=$1 out=$work/metrics-$1.txt
  curl -fsS "http://127.0.0.1:$port/metrics" >"$out"
  grep -q '^acedata_balance_credits{account="demo"}' "$out" || { echo "no acedata_balance_credits in /metrics"; return 1; }
  grep -q '^yeastar_account_balance{account="demo"}' "$out" || { echo "no yeastar_account_balance in /metrics"; return 1; }
  promtool check metrics <"$out"
  echo "/metrics on port $port: $(grep -vc '^#' "$out") samples, promtool clean"
}

# The pid listening on 127.0.0.1:PORT.
listener_pid() {
  ss -ltnpH "sport = :$1" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

# dpkg takes its lock at once or fails: wait for another apt or dpkg to finish.
dpkg_() {
  local i out
  for ((i = 0; i < 60; i++)); do
    if out=$(dpkg "$@" 2>&1); then
      echo "$out"
      return 0
    fi
    grep -q 'lock' <<<"$out" || { echo "$out"; return 1; }
    sleep 2
  done
  echo "$out"
  return 1
}

# --- checks ----------------------------------------------------------------

check_dist() {
  local arch expected=(SHA256SUMS)
  for arch in amd64 arm64; do
    expected+=("${pkg}_$version-1_$arch.deb" "$pkg-$version.linux-$arch.tar.gz" "$pkg-$version.linux-$arch.image.tar")
  done
  local f
  for f in "${expected[@]}"; do
    [[ -s $dist/$f ]] || { echo "missing target/dist/$f"; return 1; }
  done
  [[ $(find "$dist" -type f | wc -l) -eq ${#expected[@]} ]] || { echo "unexpected files in target/dist/:"; ls "$dist"; return 1; }
  (cd "$dist" && sha256sum --strict -c SHA256SUMS)
  [[ $(wc -l <"$dist/SHA256SUMS") -eq $((${#expected[@]} - 1)) ]]
}

# lintian: no error; every warning it gives, and every override, is one README.md
# names and justifies (a table row starting with | `<tag>` |).
check_lintian() {
  local deb out tags tag undocumented=0
  for deb in "$dist"/*.deb; do
    echo "-- lintian ${deb##*/}"
    # With the overrides shown (O:), so that they too must be named in README.md;
    # an error (E:, not overridden) fails.
    out=$(lintian --fail-on none --display-info --show-overrides "$deb" 2>&1)
    echo "${out:-no tags}"
    if grep -q '^E: ' <<<"$out"; then echo "lintian reports an error"; return 1; fi
    tags=$(awk '/^[WEO]: / {print $3}' <<<"$out" | sort -u)
    for tag in $tags; do
      grep -q "^| \`$tag\` |" README.md || { echo "lintian warning $tag is not named in README.md"; undocumented=1; }
    done
  done
  ((undocumented == 0))
}

check_deb_fields() {
  local arch info contents
  for arch in amd64 arm64; do
    info=$(dpkg-deb --info "$dist/${pkg}_$version-1_$arch.deb")
    echo "-- ${pkg}_$version-1_$arch.deb"
    grep -E '^ (Package|Version|Architecture|Depends):' <<<"$info"
    grep -qx " Architecture: $arch" <<<"$info" || { echo "not Architecture: $arch"; return 1; }
    grep -qx " Version: $version-1" <<<"$info"
    contents=$(dpkg-deb --contents "$dist/${pkg}_$version-1_$arch.deb" | awk '{print $1, $2, $6}')
    local want
    for want in "-rwxr-xr-x 0/0 ./usr/bin/balance-exporter" \
      "-rw-r----- 0/0 ./etc/balance-exporter/balance-exporter.yaml" \
      "-rw-r--r-- 0/0 ./etc/default/balance-exporter" \
      "-rw-r--r-- 0/0 ./usr/lib/systemd/system/balance-exporter.service" \
      "-rw-r--r-- 0/0 ./usr/lib/systemd/system/balance-exporter.socket" \
      "-rw-r--r-- 0/0 ./usr/lib/sysusers.d/balance-exporter.conf" \
      "-rw-r--r-- 0/0 ./usr/share/man/man1/balance-exporter.1.gz" \
      "-rw-r--r-- 0/0 ./usr/share/doc/balance-exporter/copyright" \
      "-rw-r--r-- 0/0 ./usr/share/doc/balance-exporter/examples/balance-exporter.example.yaml"; do
      grep -qxF -- "$want" <<<"$contents" || { echo "missing: $want"; echo "$contents"; return 1; }
    done
    dpkg-deb --ctrl-tarfile "$dist/${pkg}_$version-1_$arch.deb" | tar -xOf - ./conffiles >"$work/conffiles-$arch"
    grep -qx /etc/balance-exporter/balance-exporter.yaml "$work/conffiles-$arch"
    grep -qx /etc/default/balance-exporter "$work/conffiles-$arch"
  done
  # The arm64 package carries an aarch64 glibc binary: run it under qemu with
  # Debian's arm64 libc (libc6-arm64-cross).
  dpkg-deb -x "$dist/${pkg}_$version-1_arm64.deb" "$work/arm64-deb"
  expect_line 'ARM aarch64.*dynamically linked' file "$work/arm64-deb/usr/bin/balance-exporter"
  expect_line "^balance-exporter $version " \
    qemu-aarch64-static -L /usr/aarch64-linux-gnu "$work/arm64-deb/usr/bin/balance-exporter" --version
}

# Every path under the directories a package may write to (dpkg's own
# database and caches aside), to compare before install and after purge.
snapshot() {
  find /etc /usr /var /opt /srv -xdev \
    \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache -o -path /var/log -o -path /var/tmp \
    -o -path /var/lib/containers -o -path /etc/ld.so.cache \) -prune -o -print 2>/dev/null | sort
}

purge_if_installed() {
  if dpkg -s "$pkg" >/dev/null 2>&1; then dpkg_ --purge "$pkg" >/dev/null; fi
}

# The amd64 package on this machine: install, the installed files checked and
# run as the service would run them, purge.
check_deb_install() {
  trap 'purge_if_installed; rm -rf /run/credentials/balance-exporter.service' EXIT
  purge_if_installed
  snapshot >"$work/before"
  dpkg_ -i "$dist/${pkg}_$version-1_amd64.deb"

  echo "-- installed binary"
  expect_line "^balance-exporter $version " /usr/bin/balance-exporter --version
  man -w balance-exporter | grep -q '/usr/share/man/man1/balance-exporter.1.gz'

  echo "-- service user, configuration, secrets directory"
  expect_line ':/usr/sbin/nologin$' getent passwd balance-exporter
  (($(id -u balance-exporter) < 1000)) || { echo "balance-exporter is not a system user"; return 1; }
  local conf=/etc/balance-exporter/balance-exporter.yaml
  [[ $(stat -c '%a %U:%G' "$conf") == "640 root:balance-exporter" ]] || { stat -c '%a %U:%G %n' "$conf"; return 1; }
  [[ $(stat -c '%a %U:%G' /etc/balance-exporter/secrets) == "700 root:root" ]]
  setpriv --reuid=balance-exporter --regid=balance-exporter --init-groups cat "$conf" >/dev/null
  if setpriv --reuid=nobody --regid=nogroup --clear-groups cat "$conf" >/dev/null 2>&1; then
    echo "$conf is readable by nobody"
    return 1
  fi

  echo "-- systemd-analyze verify (installed units)"
  local unit=/usr/lib/systemd/system/balance-exporter.service out
  out=$(systemd-analyze verify "$unit" /usr/lib/systemd/system/balance-exporter.socket 2>&1) || { echo "$out"; return 1; }
  [[ -z $out ]] || { echo "$out"; return 1; }
  # The shipped unit is deploy/systemd's, hardening and all, with the binary in /usr/bin.
  diff <(sed 's#^ExecStart=/usr/local/bin/#ExecStart=/usr/bin/#' deploy/systemd/balance-exporter.service) "$unit"
  systemd-analyze security --offline=true --threshold=15 "$unit" | tail -n 1

  echo "-- --config.check on the installed configuration, as the service user"
  local check=(setpriv --reuid=balance-exporter --regid=balance-exporter --init-groups
    /usr/bin/balance-exporter --config.check --config.file="$conf")
  # Without the credentials systemd would hand over, it names what is missing.
  if out=$("${check[@]}" 2>&1); then
    echo "--config.check passed without the secret files: $out"
    return 1
  fi
  grep -q 'secret_acedata-token' <<<"$out" || { echo "$out"; return 1; }
  # The secrets where the administrator puts them, then where LoadCredential=
  # hands them to the service (a directory of the service user's).
  grep -qx 'LoadCredential=secret:/etc/balance-exporter/secrets' "$unit"
  printf 'acedata-token-value\n' >/etc/balance-exporter/secrets/acedata-token
  printf 'yeastar-secret-value\n' >/etc/balance-exporter/secrets/yeastar-client-secret
  chmod 0600 /etc/balance-exporter/secrets/*
  local creds=/run/credentials/balance-exporter.service f
  install -d -m 0500 -o balance-exporter -g balance-exporter "$creds"
  for f in /etc/balance-exporter/secrets/*; do
    install -m 0400 -o balance-exporter -g balance-exporter "$f" "$creds/secret_${f##*/}"
  done
  "${check[@]}"

  echo "-- the unit's ExecStart, run by hand as the service user, with ARGS from /etc/default"
  local port exec_line args word cmd=()
  port=$(free_port)
  grep -qx 'EnvironmentFile=-/etc/default/balance-exporter' "$unit"
  sed -i "s#^ARGS=.*#ARGS=\"--demo --web.listen-address=127.0.0.1:$port --log.level=warn\"#" /etc/default/balance-exporter
  # shellcheck disable=SC1091,SC2153
  args=$(. /etc/default/balance-exporter && printf '%s' "$ARGS")
  exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
  echo "ExecStart=$exec_line  (ARGS=$args)"
  # systemd splits an unquoted $ARGS at white space.
  for word in $exec_line; do
    # shellcheck disable=SC2016
    if [[ $word == '$ARGS' ]]; then
      read -ra split <<<"$args"
      cmd+=("${split[@]}")
    else
      cmd+=("$word")
    fi
  done
  (cd / && exec setpriv --reuid=balance-exporter --regid=balance-exporter --init-groups -- "${cmd[@]}") \
    >"$work/deb-exporter.log" 2>&1 &
  local exporter=$!
  if ! wait_http "http://127.0.0.1:$port/-/ready" 30; then cat "$work/deb-exporter.log"; kill "$exporter"; return 1; fi
  check_demo_metrics "$port"
  local uid
  uid=$(awk '/^Uid:/ {print $2 "," $3 "," $4 "," $5}' "/proc/$(listener_pid "$port")/status")
  kill "$exporter"
  wait "$exporter" || true
  [[ $uid == "$(id -u balance-exporter),$(id -u balance-exporter),$(id -u balance-exporter),$(id -u balance-exporter)" ]] ||
    { echo "exporter ran with uids $uid"; return 1; }
  echo "exporter ran as balance-exporter (uid $(id -u balance-exporter))"
  rm -rf "$creds"

  echo "-- dpkg --purge"
  dpkg_ --purge "$pkg"
  snapshot >"$work/after"
  # Debian policy keeps the system user (files may still be owned by it): only
  # the contents of /etc/passwd, /etc/group and their shadows change.
  if ! diff "$work/before" "$work/after"; then
    echo "dpkg --purge left the paths above (> ) behind"
    return 1
  fi
  echo "nothing left behind but the user: $(getent passwd balance-exporter)"
}

# The static binaries of the tarballs: x86_64 runs here, aarch64 under qemu.
check_tarballs() {
  local arch dir port pid run=()
  for arch in amd64 arm64; do
    dir=$work/tar-$arch
    mkdir -p "$dir"
    tar -C "$dir" -xzf "$dist/$pkg-$version.linux-$arch.tar.gz"
    local bin=$dir/$pkg-$version.linux-$arch/balance-exporter
    expect_line 'static-pie linked|statically linked' file "$bin"
    run=("$bin")
    [[ $arch == arm64 ]] && run=(qemu-aarch64-static "$bin")
    if [[ $arch == arm64 ]] && "$bin" --version >/dev/null 2>&1; then
      echo "the aarch64 binary ran without qemu: binfmt_misc would hide whether qemu works"
      return 1
    fi
    echo "-- $arch: ${run[*]} --version"
    expect_line "^balance-exporter $version " "${run[@]}" --version
    port=$(free_port)
    "${run[@]}" --demo --web.listen-address "127.0.0.1:$port" --log.level warn >"$work/tar-$arch.log" 2>&1 &
    pid=$!
    if ! wait_http "http://127.0.0.1:$port/-/ready" 60; then cat "$work/tar-$arch.log"; kill "$pid"; return 1; fi
    check_demo_metrics "$port"
    kill "$pid"
    wait "$pid" || true
  done
}

buildah_() {
  buildah --storage-driver vfs --root "$containers/storage" --runroot "$containers/run" "$@"
}

# The image archive loaded into a fresh store, its configuration checked, run
# with chroot isolation on the host's network, and scraped from outside.
check_image() {
  rm -rf "$containers"
  trap 'rm -rf "$containers"' EXIT
  local arch image names
  for arch in amd64 arm64; do
    echo "-- $pkg-$version.linux-$arch.image.tar"
    image=$(buildah_ pull --quiet "docker-archive:$dist/$pkg-$version.linux-$arch.image.tar")
    # One name, the one the Kubernetes manifests use.
    names=$(buildah_ images --format '{{.Name}}:{{.Tag}}')
    # (a name without a registry is stored with the default one in front)
    [[ $(wc -l <<<"$names") -eq 1 && ${names##*/} == "balance-exporter:$version" ]] ||
      { echo "the archive names the image: $names (want balance-exporter:$version)"; return 1; }
    buildah_ inspect --type image "$image" >"$work/image-$arch.json"
    python3 - "$work/image-$arch.json" "$arch" "$version" "$(git rev-parse --short=12 HEAD)" <<'PY'
import json, sys
path, arch, version, revision = sys.argv[1:]
with open(path) as f:
    oci = json.load(f)["OCIv1"]
cfg = oci["config"]
want = {
    "architecture": (oci["architecture"], arch),
    "os": (oci["os"], "linux"),
    "User": (cfg.get("User"), "65532:65532"),
    "ExposedPorts": (sorted(cfg.get("ExposedPorts", {})), ["9977/tcp"]),
    "Entrypoint": (cfg.get("Entrypoint"), ["/usr/bin/balance-exporter"]),
    "Cmd": (cfg.get("Cmd"), ["--config.file=/etc/balance-exporter/balance-exporter.yaml"]),
}
labels = cfg.get("Labels", {})
for key, value in [("title", "balance-exporter"), ("version", version), ("revision", revision),
                   ("licenses", "Apache-2.0")]:
    want["label " + key] = (labels.get("org.opencontainers.image." + key), value)
for key in ("description", "created"):
    want["label " + key] = (bool(labels.get("org.opencontainers.image." + key)), True)
bad = [f"{k}: {got!r}, want {exp!r}" for k, (got, exp) in want.items() if got != exp]
for k, (got, _) in want.items():
    print(f"  {k}: {got}")
if bad:
    sys.exit("\n".join(bad))
PY
    local ctr mnt files
    ctr=$(buildah_ from --quiet "$image")
    mnt=$(buildah_ mount "$ctr")
    # Nothing in the image but the binary and the user database.
    files=$(cd "$mnt" && find . -type f | sort | tr '\n' ' ')
    [[ $files == "./etc/group ./etc/passwd ./usr/bin/balance-exporter " ]] || { echo "image files: $files"; return 1; }
    grep -q '^nonroot:x:65532:65532:' "$mnt/etc/passwd"
    if [[ $arch == arm64 ]]; then
      expect_line "^balance-exporter $version " qemu-aarch64-static "$mnt/usr/bin/balance-exporter" --version
    else
      run_image_container "$ctr"
    fi
    buildah_ umount "$ctr" >/dev/null
    buildah_ rm "$ctr" >/dev/null
    buildah_ rmi "$image" >/dev/null
  done
}

# Runs the image's ENTRYPOINT with --demo (buildah run applies the image's
# USER), scrapes it from the host, and reads its uid from /proc.
run_image_container() {
  local ctr=$1 port pid uid root_dir entrypoint
  port=$(free_port)
  entrypoint=$(buildah_ inspect --format '{{index .OCIv1.Config.Entrypoint 0}}' "$ctr")
  buildah_ run --isolation chroot "$ctr" -- "$entrypoint" --demo --web.listen-address "127.0.0.1:$port" --log.level warn \
    >"$work/image-run.log" 2>&1 &
  local runner=$!
  if ! wait_http "http://127.0.0.1:$port/-/ready" 60; then cat "$work/image-run.log"; kill "$runner"; return 1; fi
  check_demo_metrics "$port"
  pid=$(listener_pid "$port")
  uid=$(awk '/^Uid:/ {print $2 "," $3 "," $4 "," $5}' "/proc/$pid/status")
  root_dir=$(readlink "/proc/$pid/root")
  kill "$pid"
  wait "$runner" || true
  echo "container process $pid: uids $uid, root $root_dir"
  [[ $uid == "65532,65532,65532,65532" ]] || { echo "the container ran as uid $uid"; return 1; }
  [[ $root_dir != / ]] || { echo "the exporter did not run inside the container's root"; return 1; }
}

# The Kubernetes manifests run the image scripts/package.sh builds.
check_kubernetes_image() {
  local images bad=0 line
  images=$(grep -rhE '^\s+image: .*balance-exporter' deploy/kubernetes || true)
  [[ -n $images ]] || { echo "no balance-exporter image in deploy/kubernetes"; return 1; }
  while read -r line; do
    echo "$line"
    [[ $line == "image: balance-exporter:$version" ]] || bad=1
  done <<<"$images"
  while read -r line; do
    echo "kustomization $line"
    [[ $line == "newTag: $version" ]] || bad=1
  done < <(grep -rhE '^\s+newTag:' deploy/kubernetes | sed 's/^ *//')
  ((bad == 0)) || { echo "deploy/kubernetes names another image than balance-exporter:$version"; return 1; }
}

report_sizes() {
  local f
  for f in "$dist"/*; do
    printf '%10d  %s\n' "$(stat -c %s "$f")" "${f##*/}"
  done
  local arch
  for arch in x86_64 aarch64; do
    printf '%10d  target/%s-unknown-linux-musl/release/balance-exporter\n' \
      "$(stat -c %s "target/$arch-unknown-linux-musl/release/balance-exporter")" "$arch"
  done
  printf '%10d  target/release/balance-exporter (glibc)\n' "$(stat -c %s target/release/balance-exporter)"
}

# --- main ------------------------------------------------------------------

install_tools
SECONDS=0
bash scripts/package.sh
echo "scripts/package.sh: $SECONDS s"

failed=()
run_check() {
  local name=$1 start=$SECONDS
  printf '\n=== %s\n' "$name"
  ("$name") &
  if wait $!; then
    echo "--- PASS $name ($((SECONDS - start)) s)"
  else
    echo "--- FAIL $name"
    failed+=("$name")
  fi
}

run_check check_dist
run_check check_lintian
run_check check_deb_fields
run_check check_deb_install
run_check check_tarballs
run_check check_image
run_check check_kubernetes_image
run_check report_sizes

echo
if ((${#failed[@]} > 0)); then
  echo "package checks failed: ${failed[*]}"
  exit 1
fi
echo "all package checks passed ($SECONDS s)"
