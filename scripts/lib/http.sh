# shellcheck shell=bash
# Shell functions of the scripts that run an exporter and wait for it to answer.
# Source it: `source "$root/scripts/lib/http.sh"`.

# Prints a TCP port on 127.0.0.1 that is free now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until URL answers 200, for at most $2 seconds.
wait_http() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from $1 after $2 s"
  return 1
}
