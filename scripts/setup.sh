#!/usr/bin/env bash
# Sets up a fresh machine for gearbox: Debian's redis-server when it is missing (the demo and the
# tests start throwaway servers from it), then the pinned npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's python3-redis (redis-py) is for the client-compatibility tests, which fail without it.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
/usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || missing+=(python3-redis)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update
    apt-get install -y "${missing[@]}"
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update
    sudo apt-get install -y "${missing[@]}"
  else
    echo "missing and this user cannot install them: apt-get install -y ${missing[*]}" >&2
    command -v redis-server >/dev/null 2>&1 || exit 1
  fi
fi
# The Debian package may start a system redis on 6379; gearbox never uses it (free ports only).

npm ci
