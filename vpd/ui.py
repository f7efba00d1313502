"""`vpd ui`: a local Prefect server on 127.0.0.1 plus the project's deployments, served."""

from __future__ import annotations

import os


def prefect_env() -> None:
    """Project-local Prefect state, no telemetry (set before prefect is imported)."""
    os.environ.setdefault("PREFECT_HOME", os.path.abspath(".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", os.path.join(os.environ["PREFECT_HOME"], "storage"))


def serve_ui(port: int = 4200) -> int:
    """The project's shared server (started on `port` if none runs) with the deployments served:
    runs started by DVC stages and CLI commands appear in the same UI."""
    prefect_env()
    from vpd.prefect_server import ensure_server

    api = ensure_server(port=port)
    print(f"Prefect UI: {api.removesuffix('/api')}  (deployments: pipeline/vpd-pipeline, sweep/nightly-sweep)")
    from prefect import serve

    from flows.deployments import deployments

    serve(*deployments(), pause_on_shutdown=False)  # restarting `vpd ui` keeps the schedule active
    return 0
