#!/bin/bash
# Build the local base image for machines that cannot pull from a registry: a Debian bookworm
# root filesystem made with debootstrap from Debian's archive, with Python 3.11, its venv
# module and the CA certificates, imported into Docker. `make base-image` runs this; the
# Dockerfiles then take it with --build-arg BASE_IMAGE=voice-agent/base:bookworm-py3.11.
#
# The host's own extra CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. the CA of
# an intercepting proxy) are added, so that pip inside `docker build` reaches the package index
# the way the host does. Needs root, debootstrap and a running Docker engine.
#
#   deploy/docker/base-image.sh [TAG]     (default voice-agent/base:bookworm-py3.11)
set -euo pipefail

TAG=${1:-voice-agent/base:bookworm-py3.11}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

if [ "$(id -u)" != 0 ]; then
  echo "base-image: debootstrap needs root" >&2
  exit 1
fi
if docker image inspect "$TAG" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ]; then
  echo "base-image: $TAG exists (FORCE=1 rebuilds it)"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "==> Installing debootstrap (Debian package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /tmp/voice-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "==> debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" \
  > "$root.log" 2>&1 || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

shopt -s nullglob
extra=(/usr/local/share/ca-certificates/*.crt)
if [ ${#extra[@]} -gt 0 ]; then
  echo "==> adding ${#extra[@]} CA certificate(s) from /usr/local/share/ca-certificates"
  cp "${extra[@]}" "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi

# What a container never needs: package lists, caches, docs, man pages, locales.
cat > "$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +

echo "==> docker import $TAG"
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  --message "Debian $SUITE minbase with Python 3.11 (deploy/docker/base-image.sh)" \
  - "$TAG" >/dev/null
docker run --rm "$TAG" python -c 'import sys, ssl, venv; print("   ", sys.version.split()[0], ssl.OPENSSL_VERSION)'
docker image ls "$TAG" --format '    {{.Repository}}:{{.Tag}} {{.Size}}'
