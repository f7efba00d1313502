#!/usr/bin/env bash
# Run a command with a private dockerd and the sandbox image built. Usage: scripts/with-dockerd.sh CMD [ARGS...]
# The engine is started here and stopped on exit, unless one was already answering on the
# project's socket: an engine this script did not start is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
state="$PWD/.cache/docker"
if [ -S "$state/docker.sock" ] && DOCKER_HOST="unix://$state/docker.sock" docker info >/dev/null 2>&1; then
  export DOCKER_HOST="unix://$state/docker.sock"
else
  export DOCKER_HOST="$(scripts/dockerd.sh start "$state")"
  trap 'scripts/dockerd.sh stop "$state"' EXIT
fi
.venv/bin/python -m sandboxes.image_build >/dev/null
"$@"
