#!/usr/bin/env bash
# Build a minimal Debian base image with python3 locally (no registry needed):
#   debootstrap --variant=minbase --include=python3,$PACKAGES bookworm <rootfs> ; tar | docker import
# PACKAGES: what LiveCodeBench programs commonly import beyond the standard library (numpy,
# sortedcontainers), pinned by the Debian release (bookworm: numpy 1.24, sortedcontainers 2.4); the
# same packages on the host serve the bubblewrap backend (scripts/system-deps.sh).
# Usage: build-base.sh IMAGE_NAME [MIRROR]     (needs root, debootstrap, a running dockerd)
set -euo pipefail
name="${1:?image name}"
mirror="${2:-http://deb.debian.org/debian}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
packages="$(cat "$(dirname "$0")/python-packages.txt" | tr '\n' ',' | sed 's/,$//')"
debootstrap --variant=minbase --include="python3,$packages" bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# apt caches and docs are dead weight in a sandbox image
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/doc "$work"/rootfs/usr/share/man
tar -C "$work/rootfs" -c . | docker import - "$name" >/dev/null
echo "$name"
