#!/usr/bin/env bash
# Builds every release artefact into target/dist/, with their SHA-256 sums:
#
#   balance-exporter-<version>.linux-<arch>.tar.gz      static (musl) binary, README, example configuration
#   balance-exporter_<version>-1_<arch>.deb             Debian package (the glibc build: x86_64- and aarch64-unknown-linux-gnu)
#   balance-exporter-<version>.linux-<arch>.image.tar   container image balance-exporter:<version> (docker-archive)
#   SHA256SUMS
#
# for <arch> amd64 and arm64 (x86_64- and aarch64-unknown-linux-musl), all
# built on this machine. Usage: scripts/package.sh
#
# Installs what it needs when missing (as root: Debian packages with apt-get,
# the Rust musl targets with rustup, cargo-deb pinned below into
# target/package-tools/). Scratch space: target/package/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib/apt.sh
source "$root/scripts/lib/apt.sh"

cargo_deb_version=3.8.0
tools=$root/target/package-tools
work=$root/target/package
dist=$root/target/dist

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $version ]] || { echo "no version in Cargo.toml" >&2; exit 1; }
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Reproducible dates (man page, tarballs, image): the commit's, not the clock's.
# Not exported: C build scripts watch SOURCE_DATE_EPOCH, and a change rebuilds
# them and everything above them.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# Debian architecture -> Rust target of the static binary (tarball, image) and
# of the package's binary (glibc, linked against Debian's libc6; amd64 is the
# host's plain `cargo build`).
declare -A rust_target=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl)
declare -A deb_target=([amd64]="" [arm64]=aarch64-unknown-linux-gnu)
# The arm64 package's libc6 dependency (Cargo.toml, variant arm64): dpkg-shlibdeps
# cannot compute it on amd64, so the build checks the binary needs no newer glibc.
arm64_glibc=2.34
arches=(amd64 arm64)

log() { printf '\n--> %s\n' "$*"; }

# --- tools -----------------------------------------------------------------

install_tools() {
  # musl-tools: the C compiler for ring on x86_64 musl; gcc-aarch64-linux-gnu and
  # its libc headers: compiler and linker for aarch64 (Rust brings musl's crt
  # and libc itself); dpkg-dev: dpkg-shlibdeps for the package's Depends.
  apt_install_missing musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross dpkg-dev help2man buildah
  local installed
  installed=$(rustup target list --installed)
  local target
  for target in "${rust_target[@]}" "${deb_target[@]}"; do
    [[ -z $target ]] || grep -qx "$target" <<<"$installed" || rustup target add "$target"
  done
  if [[ $("$tools/bin/cargo-deb" --version 2>/dev/null) != *" $cargo_deb_version" ]]; then
    echo "installing cargo-deb $cargo_deb_version into $tools"
    cargo install --quiet --locked --version "$cargo_deb_version" --root "$tools" cargo-deb
  fi
}

# --- builds ----------------------------------------------------------------

build_binaries() {
  log "cargo build --release (glibc, for the amd64 package and the man page)"
  cargo build --locked --release
  log "cargo build --release --target x86_64-unknown-linux-musl"
  CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --locked --release --target x86_64-unknown-linux-musl
  log "cargo build --release --target aarch64-unknown-linux-musl"
  CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
    cargo build --locked --release --target aarch64-unknown-linux-musl
  log "cargo build --release --target aarch64-unknown-linux-gnu (the arm64 package)"
  # jemalloc (the glibc builds' allocator) fixes its page size when it is built; 64 KiB
  # pages work on kernels of 4, 16 and 64 KiB pages alike (arm64 distributions use all
  # three), the build host's 4 KiB only on the first.
  JEMALLOC_SYS_WITH_LG_PAGE=16 \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    cargo build --locked --release --target aarch64-unknown-linux-gnu
  local needed
  needed=$(readelf -W --dyn-syms target/aarch64-unknown-linux-gnu/release/balance-exporter |
    grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  if [[ $(printf '%s\n' "$needed" "$arm64_glibc" | sort -V | tail -n 1) != "$arm64_glibc" ]]; then
    echo "the arm64 binary needs glibc $needed; Cargo.toml's arm64 variant says libc6 (>= $arm64_glibc)" >&2
    return 1
  fi
  grep -qF "libc6 (>= $arm64_glibc)" Cargo.toml
  local arch bin
  for arch in "${arches[@]}"; do
    bin=target/${rust_target[$arch]}/release/balance-exporter
    # Static: no program interpreter, no shared library.
    if readelf -lW "$bin" | grep -q 'Requesting program interpreter' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
      echo "$bin is not statically linked" >&2
      return 1
    fi
  done
}

# The package's systemd units are deploy/systemd's with the binary where the
# package puts it; the man page is --help.
stage_package_files() {
  rm -rf "$work/units" "$work/man"
  mkdir -p "$work/units" "$work/man"
  local file
  for file in balance-exporter.service balance-exporter.service.d/socket-activation.conf; do
    sed 's#^ExecStart=/usr/local/bin/balance-exporter #ExecStart=/usr/bin/balance-exporter #' \
      "deploy/systemd/$file" >"$work/units/${file##*/}"
    grep -q '^ExecStart=/usr/bin/balance-exporter ' "$work/units/${file##*/}" ||
      { echo "deploy/systemd/$file: no ExecStart=/usr/local/bin/balance-exporter line" >&2; return 1; }
  done
  cp deploy/systemd/balance-exporter.socket deploy/debian/balance-exporter.sysusers "$work/units/"
  SOURCE_DATE_EPOCH=$epoch help2man --no-info --section 1 \
    --name "Prometheus exporter for Ace Data Cloud and Yeastar Partner Portal balances" \
    --output "$work/man/balance-exporter.1" target/release/balance-exporter
}

build_debs() {
  local arch
  for arch in "${arches[@]}"; do
    log "cargo deb ($arch)"
    if [[ $arch == amd64 ]]; then
      PATH="$tools/bin:$PATH" cargo deb --no-build --no-strip --output "$dist/"
    else
      PATH="$tools/bin:$PATH" cargo deb --no-build --no-strip --variant "$arch" --target "${deb_target[$arch]}" --output "$dist/"
    fi
  done
}

build_tarballs() {
  local arch name
  for arch in "${arches[@]}"; do
    name=balance-exporter-$version.linux-$arch
    log "$name.tar.gz"
    rm -rf "${work:?}/$name"
    mkdir -p "$work/$name"
    cp "target/${rust_target[$arch]}/release/balance-exporter" "$work/$name/"
    cp README.md config/balance-exporter.example.yaml "$work/$name/"
    tar -C "$work" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner -cf - "$name" |
      gzip -9n >"$dist/$name.tar.gz"
  done
}

# buildah as root without a daemon: its own storage under target/ (vfs works on
# any file system, overlay needs kernel support this machine may lack) and
# chroot isolation (no runc or crun needed; the image has no RUN step anyway).
buildah_() {
  buildah --storage-driver vfs --root "$work/containers/storage" --runroot "$work/containers/run" "$@"
}

build_images() {
  local arch ctx created id
  created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
  rm -rf "$work/containers"
  for arch in "${arches[@]}"; do
    log "image balance-exporter:$version (linux/$arch)"
    ctx=$work/image-$arch
    rm -rf "$ctx"
    mkdir -p "$ctx"
    cp -r deploy/docker/rootfs/etc "$ctx/"
    cp "target/${rust_target[$arch]}/release/balance-exporter" "$ctx/"
    # Built unnamed, named only in the archive: a local name (localhost/…)
    # would be stored there too.
    buildah_ bud --quiet --isolation chroot --platform "linux/$arch" --timestamp "$epoch" \
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
      --iidfile "$work/iid-$arch" -f deploy/docker/Dockerfile.release "$ctx" >/dev/null
    id=$(<"$work/iid-$arch")
    # The archive names the image as the Kubernetes manifests do.
    buildah_ push --quiet "$id" "docker-archive:$dist/balance-exporter-$version.linux-$arch.image.tar:balance-exporter:$version"
    buildah_ rmi "$id" >/dev/null
  done
  rm -rf "$work/containers"
}

# --- main ------------------------------------------------------------------

install_tools
rm -rf "$dist"
mkdir -p "$dist" "$work"
build_binaries
stage_package_files
build_debs
build_tarballs
build_images
(cd "$dist" && sha256sum -- * >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
log "target/dist/"
(cd "$dist" && ls -l && cat SHA256SUMS)
