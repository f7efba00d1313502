#!/usr/bin/env bash
# The test suite with every service it uses: a private dockerd and the sandbox image
# (scripts/with-dockerd.sh). The vllm group runs in its own environment (scripts/test-vllm.sh).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The default suite leaves out the `slow` group (long end-to-end tests; `make test-slow`, or pass -m slow).
exec scripts/with-dockerd.sh env HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q -m "not vllm and not slow" "$@"
