#!/usr/bin/env bash
# Prepare `make bench`: system peers (wrk, nginx-light), the Python peers (the `bench`
# extra: aiohttp, uvicorn[standard] with httptools + uvloop, websockets) in the venv,
# and the C load generator bench/loadgen/build/wsload (zlib for permessage-deflate). Each step runs only when needed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="${VENV:-$root/.venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# wsload links zlib for permessage-deflate (RFC 7692)
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
  echo "bench/setup.sh: installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! "$venv/bin/python" -c 'import aiohttp, uvicorn, httptools, uvloop, websockets' 2>/dev/null; then
  echo "bench/setup.sh: installing the bench extra into $venv" >&2
  (cd "$root" && "$venv/bin/python" -m pip install -q -e '.[bench]')
fi

# amqtt (the Python MQTT broker measured against) pins an old websockets; its TCP broker
# works with the newer one the test extra needs, so it is installed without its pins
if ! "$venv/bin/python" -c 'import amqtt' 2>/dev/null; then
  echo "bench/setup.sh: installing amqtt (no dependency pins) into $venv" >&2
  "$venv/bin/python" -m pip install -q --no-deps 'amqtt>=0.12'
  "$venv/bin/python" -m pip install -q transitions pwdlib PyYAML typer dacite psutil typing-extensions
fi

src="$here/loadgen/wsload.c"
out="$here/loadgen/build/wsload"
if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "$here/setup.sh" -nt "$out" ]; then
  mkdir -p "$here/loadgen/build"
  gcc -O2 -Wall -Wextra -o "$out" "$src" -lz
fi
