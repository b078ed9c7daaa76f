#!/usr/bin/env bash
# Installs everything lazarus needs to build, test and run its demo (Debian 12, as root).
# Idempotent: apt runs only when a package is missing.
set -euo pipefail
pkgs="build-essential cmake pkg-config liburing-dev libprotobuf-dev protobuf-compiler
libcap-dev libnl-3-dev libzstd-dev libbenchmark-dev libgtest-dev clang python3 redis-server
redis-tools iproute2 nginx-light memcached postgresql nodejs
dbus-daemon dbus-bin"
missing=""
for p in $pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
