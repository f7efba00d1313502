#!/usr/bin/env bash
# Build a minimal Debian base image with python3 locally (no registry needed):
#   debootstrap --variant=minbase --include=python3 bookworm <rootfs> ; tar | docker import
# Usage: build-base.sh IMAGE_NAME [MIRROR]     (needs root, debootstrap, a running dockerd)
set -euo pipefail
name="${1:?image name}"
mirror="${2:-http://deb.debian.org/debian}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=python3 bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# apt caches and docs are dead weight in a sandbox image
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/doc "$work"/rootfs/usr/share/man
tar -C "$work/rootfs" -c . | docker import - "$name" >/dev/null
echo "$name"
