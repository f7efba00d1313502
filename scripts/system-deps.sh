#!/usr/bin/env bash
# Debian packages the sandboxes need: a Docker engine, bubblewrap, debootstrap (to build the
# sandbox's base image without a registry) and the Python packages programs may import. With --test, also headless Chromium
# (the DVC plots page is checked to draw in a browser). Idempotent.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v debootstrap >/dev/null || need+=(debootstrap)
# the packages sandboxed programs may import: bwrap runs the host's /usr/bin/python3 (the Docker
# image gets the same Debian packages, sandboxes/image/build-base.sh)
while read -r pkg; do
  [ -n "$pkg" ] && ! dpkg -s "$pkg" >/dev/null 2>&1 && need+=("$pkg")
done < "$(dirname "$0")/../sandboxes/image/python-packages.txt"
[ "${1:-}" = "--test" ] && { command -v chromium >/dev/null || need+=(chromium); }
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing ${need[*]}" >&2
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
