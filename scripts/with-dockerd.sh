#!/usr/bin/env bash
# Run a command with a private dockerd (started here, stopped on exit) and the sandbox
# image built. Usage: scripts/with-dockerd.sh CMD [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
state="$PWD/.cache/docker"
export DOCKER_HOST="$(scripts/dockerd.sh start "$state")"
trap 'scripts/dockerd.sh stop "$state"' EXIT
.venv/bin/python -m sandboxes.image_build >/dev/null
"$@"
