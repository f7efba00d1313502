"""`vpd ui`: a local Prefect server on 127.0.0.1 plus the project's deployments, served."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request


def prefect_env() -> None:
    """Project-local Prefect state, no telemetry (set before prefect is imported)."""
    os.environ.setdefault("PREFECT_HOME", os.path.abspath(".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", os.path.join(os.environ["PREFECT_HOME"], "storage"))


def serve_ui(port: int = 4200) -> int:
    prefect_env()
    api = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)])
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        else:
            print("error: the Prefect server did not answer in 120 s", file=sys.stderr)
            return 1
        os.environ["PREFECT_API_URL"] = api
        print(f"Prefect UI: http://127.0.0.1:{port}  (deployments: pipeline/vpd-pipeline, sweep/nightly-sweep)")
        from prefect import serve

        from flows.deployments import deployments

        serve(*deployments(), pause_on_shutdown=False)  # restarting `vpd ui` keeps the schedule active
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
