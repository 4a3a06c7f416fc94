#!/usr/bin/env bash
# Install the system programs the tests talk to (curl, Debian's chromium, the openssl CLI
# that makes test certificates, redis-server for the RESP codec and the Redis bridge,
# mosquitto and its clients for MQTT), if missing.
# Runs apt-get only when something is missing; needs root or passwordless sudo.
set -euo pipefail
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Debian puts the broker in /usr/sbin, which is not on a non-root user's PATH
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
echo "sysdeps: installing ${need[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
