#!/bin/bash
# Make sure a Docker engine answers: start dockerd when it is installed but not running, and
# install Debian's docker.io first where that is possible (root, apt-get). `make engine` runs
# this; `make images`, `make base-image` and `make test-containers` depend on it.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> Installing Debian's docker.io (the Docker engine)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  else
    echo "engine: no Docker engine here; install Docker (or Debian's docker.io) and start it" >&2
    exit 1
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "engine: dockerd is installed but not running, and starting it needs root" >&2
  exit 1
fi
echo "==> Starting dockerd (log: $LOG)"
nohup dockerd >"$LOG" 2>&1 &
for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    docker version --format '    engine {{.Server.Version}}'
    exit 0
  fi
  sleep 1
done
echo "engine: dockerd did not answer within 60 s; see $LOG" >&2
tail -20 "$LOG" >&2
exit 1
