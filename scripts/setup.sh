#!/usr/bin/env bash
# Sets up a fresh machine for gearbox: Debian's redis-server when it is missing (the demo and the
# tests start throwaway servers from it), then the pinned npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update
    apt-get install -y redis-server
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update
    sudo apt-get install -y redis-server
  else
    echo "redis-server is missing and this user cannot install it: apt-get install -y redis-server" >&2
    exit 1
  fi
fi
# The Debian package may start a system redis on 6379; gearbox never uses it (free ports only).

npm ci
