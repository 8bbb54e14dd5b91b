# shellcheck shell=bash
# Installing the Debian packages a script needs.
# Source it: `source "$root/scripts/lib/apt.sh"`.

# Installs those of the Debian packages PKG... that are not installed yet, quietly
# (through sudo when not root).
apt_install_missing() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]} > 0)) || return 0
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
